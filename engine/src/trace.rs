//! What a generation recorded: plain serde data the page draws and snapshots store.

use serde::{Deserialize, Serialize};

use crate::dynamics::Dynamics;
use crate::settings::ThinkingSettings;

/// Which per-iteration fields to record. Everything off costs nothing beyond plain generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Record {
    /// The raw state s_i.
    pub states: bool,
    /// ln_f(s_i), the vectors the paper projects with PCA.
    pub normed: bool,
    /// |s_i - s_{i-1}| and |s_i|.
    pub deltas: bool,
    /// The exit criterion's value after each iteration.
    pub exit_values: bool,
    /// Top-k tokens of the logit lens coda(ln_f(s_i)); 0 records none.
    pub lens_top_k: usize,
}

impl Record {
    pub fn everything(lens_top_k: usize) -> Self {
        Self {
            states: true,
            normed: true,
            deltas: true,
            exit_values: true,
            lens_top_k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Trace {
    pub settings: ThinkingSettings,
    pub record: Record,
    pub prompt_len: usize,
    /// One entry per processed position, in order.
    pub positions: Vec<PositionTrace>,
    /// Bytes of keys and values the KV cache held after the last position (f32).
    #[serde(default)]
    pub cache_bytes: usize,
}

/// Why a position stopped iterating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// The exit criterion was met.
    Converged,
    /// The criterion was never met before the maximum.
    MaxSteps,
    /// No criterion applied: a fixed count (no exit criterion, or a per-position override).
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionTrace {
    pub position: usize,
    /// The token at this position.
    pub token: u32,
    /// The token generated from this position; `None` inside the prompt.
    pub next: Option<u32>,
    pub iterations: usize,
    pub exit: Exit,
    /// s_0, recorded with `states`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<Vec<f32>>,
    /// ln_f(s_0), recorded with `normed`: where the trajectory starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_normed: Option<Vec<f32>>,
    /// One record per iteration run (empty when nothing is recorded).
    pub steps: Vec<IterationRecord>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IterationRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normed: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_value: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<Vec<TopToken>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    pub id: u32,
    pub prob: f32,
}

impl PositionTrace {
    /// ln_f(s_i) of every recorded iteration (not s_0), the rows the paper projects.
    pub fn normed(&self) -> impl Iterator<Item = &[f32]> {
        self.steps.iter().filter_map(|s| s.normed.as_deref())
    }

    /// What the recorded ln_f(s_i) do across iterations; `None` when they were not recorded.
    pub fn dynamics(&self) -> Option<Dynamics> {
        let rows: Vec<&[f32]> = self.normed().collect();
        (!rows.is_empty()).then(|| Dynamics::of(&rows))
    }
}

impl Trace {
    /// KV-cache bytes per processed position.
    pub fn cache_bytes_per_token(&self) -> f64 {
        self.cache_bytes as f64 / self.positions.len().max(1) as f64
    }

    /// The positions that produced a generated token.
    pub fn generated(&self) -> impl Iterator<Item = &PositionTrace> {
        self.positions.iter().filter(|p| p.next.is_some())
    }
}

/// The k most probable tokens of softmax(logits), most probable first.
pub fn top_tokens(logits: &[f32], k: usize) -> Vec<TopToken> {
    let log_probs = crate::exit::log_softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(order.len());
    if k == 0 {
        return Vec::new();
    }
    order.select_nth_unstable_by(k - 1, |&a, &b| {
        log_probs[b].total_cmp(&log_probs[a]).then(a.cmp(&b))
    });
    order.truncate(k);
    order.sort_by(|&a, &b| log_probs[b].total_cmp(&log_probs[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .map(|i| TopToken {
            id: i as u32,
            prob: log_probs[i].exp() as f32,
        })
        .collect()
}
