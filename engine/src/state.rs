//! The initial latent state s_0: TruncNormal(0, std * init_scale, cut at 3 sigma) * embed_scale.

use rand::{Rng, RngExt};

use crate::config::ModelConfig;

/// Draws s_0 for `positions` positions, row-major [positions, n_embd].
pub fn random_initial_state(
    rng: &mut impl Rng,
    positions: usize,
    config: &ModelConfig,
    init_scale: f32,
) -> Vec<f32> {
    let std = config.init_std() * init_scale;
    let n = positions * config.n_embd;
    if std <= 0.0 {
        // The reference returns a zero state when the spread is zero.
        return vec![0.0; n];
    }
    let scale = std * config.embed_scale();
    (0..n)
        .map(|_| truncated_standard_normal(rng) as f32 * scale)
        .collect()
}

/// A standard normal draw rejected outside [-3, 3] (Box-Muller; independent of any distribution crate
/// so the stream of values is fixed by the seed alone).
pub(crate) fn truncated_standard_normal(rng: &mut impl Rng) -> f64 {
    loop {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
        let u2: f64 = rng.random::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        if z.abs() <= 3.0 {
            return z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config() -> ModelConfig {
        ModelConfig::from_json(include_str!("../tests/fixtures/huginn-tiny-a/config.json")).unwrap()
    }

    #[test]
    fn spread_and_cut_follow_the_config() {
        let config = config();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let s0 = random_initial_state(&mut rng, 200, &config, 1.0);
        let sigma = config.init_std() * config.embed_scale();
        let mean = s0.iter().sum::<f32>() / s0.len() as f32;
        let var = s0.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / s0.len() as f32;
        // A normal cut at 3 sigma keeps 98.7% of its variance.
        assert!(
            (var.sqrt() / sigma - 0.987f32.sqrt()).abs() < 0.03,
            "std {} vs {}",
            var.sqrt(),
            sigma
        );
        assert!(s0.iter().all(|x| x.abs() <= 3.0 * sigma + 1e-5));
        assert!(mean.abs() < 0.05 * sigma);
    }

    #[test]
    fn zero_scale_gives_zero_state() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert!(random_initial_state(&mut rng, 3, &config(), 0.0)
            .iter()
            .all(|&x| x == 0.0));
    }
}
