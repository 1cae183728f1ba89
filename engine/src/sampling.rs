//! Choosing the next token from the final logits: greedy, or temperature with top-k, top-p and
//! min-p filters applied in the reference's order.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::exit::argmax;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the most likely tokens while their cumulative probability stays within p (the top
    /// token always stays); 1 keeps all.
    pub top_p: f32,
    /// Drop tokens below min_p times the top probability; 0 keeps all.
    pub min_p: f32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
        }
    }
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::Setting(m.into()));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return bad("min_p must be in [0, 1]");
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Picks a token id. Draws exactly one number from `rng` when sampling, none when greedy.
    pub fn pick(&self, logits: &[f32], rng: &mut impl Rng) -> u32 {
        if self.is_greedy() {
            return argmax(logits) as u32;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let t = self.temperature as f64;
        let mut probs: Vec<f64> = logits
            .iter()
            .map(|&x| ((x - max) as f64 / t).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);

        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        if self.top_k > 0 && self.top_k < probs.len() {
            let kth = probs[order[self.top_k - 1]];
            probs
                .iter_mut()
                .filter(|p| **p < kth)
                .for_each(|p| *p = 0.0);
        }
        if self.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                cumulative += probs[i];
                // The top token always stays.
                if rank > 0 && cumulative > self.top_p as f64 {
                    probs[i] = 0.0;
                }
            }
        }
        if self.min_p > 0.0 {
            let floor = self.min_p as f64 * probs[order[0]];
            probs
                .iter_mut()
                .filter(|p| **p < floor)
                .for_each(|p| *p = 0.0);
        }
        let total: f64 = probs.iter().sum();
        let mut target = rng.random::<f64>() * total;
        for &i in &order {
            target -= probs[i];
            if target < 0.0 {
                return i as u32;
            }
        }
        order[0] as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn counts(s: Sampling, logits: &[f32], draws: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut c = vec![0; logits.len()];
        for _ in 0..draws {
            c[s.pick(logits, &mut rng) as usize] += 1;
        }
        c
    }

    #[test]
    fn greedy_takes_argmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(Sampling::default().pick(&[0.1, 3.0, 2.0], &mut rng), 1);
    }

    #[test]
    fn filters_remove_the_tail() {
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let base = Sampling {
            temperature: 1.0,
            ..Sampling::default()
        };
        assert!(counts(base, &logits, 4000).iter().all(|&c| c > 0));
        let top_k = counts(Sampling { top_k: 2, ..base }, &logits, 2000);
        assert_eq!((top_k[2], top_k[3]), (0, 0));
        // p = [0.64, 0.24, 0.09, 0.03], cumulative [0.64, 0.88, 0.97, 1]: as in the reference, a
        // token stays while the cumulative probability up to and including it is within top-p.
        let top_p = counts(Sampling { top_p: 0.9, ..base }, &logits, 2000);
        assert_eq!((top_p[2], top_p[3]), (0, 0));
        assert!(top_p[1] > 0);
        // min-p 0.2 drops everything below 0.128.
        let min_p = counts(Sampling { min_p: 0.2, ..base }, &logits, 2000);
        assert_eq!((min_p[2], min_p[3]), (0, 0));
    }

    #[test]
    fn frequencies_follow_temperature() {
        let logits = [1.0f32, 0.0];
        let c = counts(
            Sampling {
                temperature: 1.0,
                ..Sampling::default()
            },
            &logits,
            20000,
        );
        let p = c[0] as f64 / 20000.0;
        let expected = 1.0 / (1.0 + (-1.0f64).exp());
        assert!((p - expected).abs() < 0.02, "{p} vs {expected}");
    }
}
