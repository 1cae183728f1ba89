//! Everything that decides how long the model thinks and which token it writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::exit::ExitCriterion;
use crate::sampling::Sampling;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingSettings {
    /// Maximum number of core iterations per token (exactly this many without an exit criterion).
    pub steps: usize,
    /// No exit before this many iterations.
    pub min_steps: usize,
    pub exit: ExitCriterion,
    /// Fixed iteration counts for chosen positions; they override `steps` and the exit criterion.
    pub overrides: BTreeMap<usize, usize>,
    /// Multiplies the spread of the random initial state (0 starts from zero).
    pub init_scale: f32,
    /// Continuous chain of thought: a token starts from the previous token's final state.
    pub warm_start: bool,
    pub sampling: Sampling,
    /// Seeds the one random generator behind initial states and sampling.
    pub seed: u64,
    /// KV sharing: core iteration i reads and writes cache slot i mod k, so the cache no longer
    /// grows with the iterations. `None` keeps one slot per iteration.
    #[serde(default)]
    pub kv_share: Option<usize>,
}

impl Default for ThinkingSettings {
    fn default() -> Self {
        Self {
            steps: 32,
            min_steps: 0,
            exit: ExitCriterion::None,
            overrides: BTreeMap::new(),
            init_scale: 1.0,
            warm_start: false,
            sampling: Sampling::default(),
            seed: 0,
            kv_share: None,
        }
    }
}

/// The most iterations a token may run; bounds memory (one KV slot per iteration and core layer).
pub const MAX_STEPS: usize = 1024;

impl ThinkingSettings {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Setting(m));
        let steps_ok = |n: usize| (1..=MAX_STEPS).contains(&n);
        if !steps_ok(self.steps) {
            return bad(format!(
                "steps must be between 1 and {MAX_STEPS}, got {}",
                self.steps
            ));
        }
        if let Some((pos, n)) = self.overrides.iter().find(|(_, &n)| !steps_ok(n)) {
            return bad(format!(
                "override for position {pos} must be between 1 and {MAX_STEPS}, got {n}"
            ));
        }
        if let Some(k) = self.kv_share.filter(|&k| !steps_ok(k)) {
            return bad(format!(
                "KV sharing needs between 1 and {MAX_STEPS} slots, got {k}"
            ));
        }
        if !(self.init_scale.is_finite() && self.init_scale >= 0.0) {
            return bad("init_scale must be a finite number >= 0".into());
        }
        self.sampling.validate()
    }

    /// (maximum iterations, whether the exit criterion applies) for a position.
    pub fn plan(&self, position: usize) -> (usize, bool) {
        match self.overrides.get(&position) {
            Some(&n) => (n, false),
            None => (self.steps, true),
        }
    }
}
