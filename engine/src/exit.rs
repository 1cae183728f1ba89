//! Exit criteria: after each core iteration of a token, decide whether it has thought enough.
//! Values and defaults follow the reference's adaptive-compute generation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExitCriterion {
    /// Always run the maximum number of iterations.
    None,
    /// KL(p_{i-1} || p_i) of the logit lens, with p_0 uniform, below the threshold.
    Kl { threshold: f32 },
    /// |s_i - s_{i-1}| / |s_i| below the threshold.
    LatentDiff { threshold: f32 },
    /// |H(p_i) - H(p_{i-1})| below the threshold (never after the first iteration).
    EntropyDiff { threshold: f32 },
    /// 1 - cos(s_i, s_{i-1}) below the threshold.
    Cosine { threshold: f32 },
    /// The lens' argmax unchanged for `steps` consecutive iterations.
    ArgmaxStable { steps: usize },
}

impl ExitCriterion {
    /// Whether the criterion reads the logit lens (and so needs the coda at every iteration).
    pub fn needs_lens(&self) -> bool {
        matches!(
            self,
            Self::Kl { .. } | Self::EntropyDiff { .. } | Self::ArgmaxStable { .. }
        )
    }

    /// Whether the criterion reads the raw states of consecutive iterations.
    pub fn needs_latents(&self) -> bool {
        matches!(self, Self::LatentDiff { .. } | Self::Cosine { .. })
    }

    /// The value below which the criterion is met (`None` for `none` and the argmax count).
    pub fn threshold(&self) -> Option<f32> {
        match *self {
            Self::Kl { threshold }
            | Self::LatentDiff { threshold }
            | Self::EntropyDiff { threshold }
            | Self::Cosine { threshold } => Some(threshold),
            Self::None | Self::ArgmaxStable { .. } => None,
        }
    }

    pub fn is_met(&self, value: Option<f32>) -> bool {
        let Some(value) = value else { return false };
        match (*self, self.threshold()) {
            (Self::ArgmaxStable { steps }, _) => value >= steps as f32,
            (_, Some(threshold)) => value < threshold,
            (_, None) => false,
        }
    }

    /// Reference default threshold per criterion, as DESIGN.md lists them.
    fn with_default(kind: &str) -> Option<Self> {
        Some(match kind {
            "none" => Self::None,
            "kl" => Self::Kl { threshold: 1e-3 },
            "latent-diff" => Self::LatentDiff { threshold: 0.03 },
            "entropy-diff" => Self::EntropyDiff { threshold: 1e-3 },
            "cosine" => Self::Cosine { threshold: 1e-3 },
            "argmax" => Self::ArgmaxStable { steps: 5 },
            _ => return None,
        })
    }
}

/// Parses `kind` or `kind:threshold`, e.g. `kl:1e-3`, `latent-diff:0.03`, `argmax:5`, `none`.
impl FromStr for ExitCriterion {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, value) = match text.split_once(':') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (text.trim(), None),
        };
        let bad = |m: String| EngineError::Setting(format!("exit criterion `{text}`: {m}"));
        let default = Self::with_default(kind).ok_or_else(|| {
            bad("unknown kind; use none, kl, latent-diff, entropy-diff, cosine or argmax".into())
        })?;
        let Some(value) = value else {
            return Ok(default);
        };
        Ok(match default {
            Self::None => return Err(bad("`none` takes no threshold".into())),
            Self::ArgmaxStable { .. } => Self::ArgmaxStable {
                steps: value
                    .parse()
                    .map_err(|_| bad("argmax takes a whole number of steps".into()))?,
            },
            _ => {
                let threshold: f32 = value
                    .parse()
                    .map_err(|_| bad("threshold is not a number".into()))?;
                if !(threshold.is_finite() && threshold >= 0.0) {
                    return Err(bad("threshold must be a finite non-negative number".into()));
                }
                match default {
                    Self::Kl { .. } => Self::Kl { threshold },
                    Self::LatentDiff { .. } => Self::LatentDiff { threshold },
                    Self::EntropyDiff { .. } => Self::EntropyDiff { threshold },
                    _ => Self::Cosine { threshold },
                }
            }
        })
    }
}

impl fmt::Display for ExitCriterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(f, "none"),
            Self::Kl { threshold } => write!(f, "kl:{threshold}"),
            Self::LatentDiff { threshold } => write!(f, "latent-diff:{threshold}"),
            Self::EntropyDiff { threshold } => write!(f, "entropy-diff:{threshold}"),
            Self::Cosine { threshold } => write!(f, "cosine:{threshold}"),
            Self::ArgmaxStable { steps } => write!(f, "argmax:{steps}"),
        }
    }
}

/// Distances between consecutive raw states of one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatentStep {
    /// |s_i - s_{i-1}|
    pub delta: f32,
    /// |s_i|
    pub norm: f32,
    /// |s_{i-1}|
    pub prev_norm: f32,
    /// <s_i, s_{i-1}>
    pub dot: f32,
}

impl From<&[f32]> for LatentStep {
    /// From the four values `latent_steps` computes per position: [delta, norm, prev_norm, dot].
    fn from(v: &[f32]) -> Self {
        Self {
            delta: v[0],
            norm: v[1],
            prev_norm: v[2],
            dot: v[3],
        }
    }
}

/// What one position has seen so far, to turn the next iteration into a criterion value.
#[derive(Debug, Clone)]
pub struct ExitTracker {
    criterion: ExitCriterion,
    /// log p_{i-1} of the lens; starts uniform.
    prev_log_probs: Vec<f64>,
    prev_entropy: Option<f64>,
    prev_argmax: Option<usize>,
    stable_for: usize,
}

impl ExitTracker {
    pub fn new(criterion: ExitCriterion, vocab: usize) -> Self {
        let prev_log_probs = if matches!(criterion, ExitCriterion::Kl { .. }) {
            vec![-(vocab as f64).ln(); vocab]
        } else {
            Vec::new()
        };
        Self {
            criterion,
            prev_log_probs,
            prev_entropy: None,
            prev_argmax: None,
            stable_for: 0,
        }
    }

    /// The criterion value after an iteration, from the lens logits and/or the latent step that
    /// the criterion needs. `None` when the value does not exist yet (entropy change at step 1).
    pub fn observe(
        &mut self,
        lens_logits: Option<&[f32]>,
        latent: Option<LatentStep>,
    ) -> Option<f32> {
        match self.criterion {
            ExitCriterion::None => None,
            ExitCriterion::Kl { .. } => {
                let log_probs = log_softmax(lens_logits?);
                let kl = self
                    .prev_log_probs
                    .iter()
                    .zip(&log_probs)
                    .map(|(&prev, &now)| prev.exp() * (prev - now))
                    .sum::<f64>();
                self.prev_log_probs = log_probs;
                Some(kl as f32)
            }
            ExitCriterion::EntropyDiff { .. } => {
                let h = entropy(lens_logits?);
                let change = self.prev_entropy.map(|prev| (h - prev).abs() as f32);
                self.prev_entropy = Some(h);
                change
            }
            ExitCriterion::ArgmaxStable { .. } => {
                let top = argmax(lens_logits?);
                self.stable_for = if self.prev_argmax == Some(top) {
                    self.stable_for + 1
                } else {
                    0
                };
                self.prev_argmax = Some(top);
                Some(self.stable_for as f32)
            }
            ExitCriterion::LatentDiff { .. } => latent.map(|l| l.delta / l.norm),
            ExitCriterion::Cosine { .. } => latent.map(|l| 1.0 - l.dot / (l.norm * l.prev_norm)),
        }
    }
}

/// log softmax in f64 (vocabularies of 65k make f32 sums lose digits).
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    logits.iter().map(|&x| x as f64 - log_sum).collect()
}

/// Entropy (nats) of softmax(logits).
pub fn entropy(logits: &[f32]) -> f64 {
    log_softmax(logits)
        .iter()
        .map(|&lp| if lp.is_finite() { -lp.exp() * lp } else { 0.0 })
        .sum()
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_thresholds() {
        assert_eq!(
            "kl:1e-3".parse::<ExitCriterion>().unwrap(),
            ExitCriterion::Kl { threshold: 1e-3 }
        );
        assert_eq!(
            "latent-diff".parse::<ExitCriterion>().unwrap(),
            ExitCriterion::LatentDiff { threshold: 0.03 }
        );
        assert_eq!(
            "argmax:7".parse::<ExitCriterion>().unwrap(),
            ExitCriterion::ArgmaxStable { steps: 7 }
        );
        assert_eq!(
            "none".parse::<ExitCriterion>().unwrap(),
            ExitCriterion::None
        );
        for bad in ["kl:x", "foo", "argmax:1.5", "none:3", "kl:-1", "cosine:nan"] {
            assert!(
                bad.parse::<ExitCriterion>().is_err(),
                "{bad} should be refused"
            );
        }
        for c in [
            "kl:0.001",
            "cosine:0.5",
            "argmax:3",
            "none",
            "entropy-diff:0.01",
            "latent-diff:0.03",
        ] {
            assert_eq!(c.parse::<ExitCriterion>().unwrap().to_string(), c);
        }
    }

    #[test]
    fn kl_from_uniform_is_log_vocab_minus_entropy() {
        let logits = [1.0f32, 2.0, 0.5, -1.0];
        let mut t = ExitTracker::new(ExitCriterion::Kl { threshold: 0.0 }, 4);
        let first = t.observe(Some(&logits), None).unwrap() as f64;
        // KL(u || p) = -ln V - mean(log p)
        let lp = log_softmax(&logits);
        let expected = -(4f64).ln() - lp.iter().sum::<f64>() / 4.0;
        assert!((first - expected).abs() < 1e-6);
        assert!(t.observe(Some(&logits), None).unwrap().abs() < 1e-9);
    }

    #[test]
    fn argmax_counts_unchanged_steps() {
        let mut t = ExitTracker::new(ExitCriterion::ArgmaxStable { steps: 2 }, 3);
        let a = [0.0f32, 1.0, 0.0];
        let b = [2.0f32, 1.0, 0.0];
        let seen: Vec<f32> = [a, a, a, b, b]
            .iter()
            .map(|l| t.observe(Some(l), None).unwrap())
            .collect();
        assert_eq!(seen, vec![0.0, 1.0, 2.0, 0.0, 1.0]);
    }
}
