//! Principal components of a set of latent states, for drawing trajectories in 2-D.
//!
//! Power iteration on `Xᵀ(X v)` never forms the covariance matrix, so fitting costs
//! O(rows · dim) per iteration whether the states have 128 dimensions or Huginn-0125's 5280.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    pub mean: Vec<f32>,
    /// Unit-length principal directions, largest variance first.
    pub components: Vec<Vec<f32>>,
    /// Variance along each component.
    pub variances: Vec<f32>,
}

const ITERATIONS: usize = 200;

impl Pca {
    /// Fits up to `count` components to `rows` (each of length `dim`). Fewer come back when the
    /// data spans fewer dimensions.
    pub fn fit(rows: &[&[f32]], dim: usize, count: usize) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; dim];
        for row in rows {
            for (m, &x) in mean.iter_mut().zip(row.iter()) {
                *m += x as f64 / n;
            }
        }
        let centred: Vec<Vec<f64>> = rows
            .iter()
            .map(|row| row.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect())
            .collect();
        let total: f64 = centred.iter().flatten().map(|x| x * x).sum::<f64>() / n;
        let mut components: Vec<Vec<f64>> = Vec::new();
        let mut variances = Vec::new();
        for k in 0..count.min(dim) {
            // A fixed, deterministic start that is unlikely to be orthogonal to any component.
            let mut v: Vec<f64> = (0..dim)
                .map(|i| 1.0 + ((i * 7 + k * 13) % 11) as f64 / 11.0)
                .collect();
            let mut variance = 0.0;
            for _ in 0..ITERATIONS {
                orthogonalise(&mut v, &components);
                if normalise(&mut v) == 0.0 {
                    break;
                }
                let mut next = vec![0.0f64; dim];
                for row in &centred {
                    let projection: f64 = row.iter().zip(&v).map(|(x, y)| x * y).sum();
                    for (acc, x) in next.iter_mut().zip(row) {
                        *acc += projection * x / n;
                    }
                }
                variance = next.iter().zip(&v).map(|(a, b)| a * b).sum();
                v = next;
            }
            orthogonalise(&mut v, &components);
            // Components carrying no variance (rounding left after deflation) are not returned.
            if normalise(&mut v) == 0.0 || variance <= total * 1e-9 {
                break;
            }
            // A sign convention, so that refits of similar data do not flip the picture.
            if v.iter().sum::<f64>() < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            components.push(v);
            variances.push(variance as f32);
        }
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            components: components
                .into_iter()
                .map(|c| c.into_iter().map(|x| x as f32).collect())
                .collect(),
            variances,
        }
    }

    /// Coordinates of `row` along every component.
    pub fn project(&self, row: &[f32]) -> Vec<f32> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(row)
                    .zip(&self.mean)
                    .map(|((c, x), m)| c * (x - m))
                    .sum()
            })
            .collect()
    }
}

fn orthogonalise(v: &mut [f64], against: &[Vec<f64>]) {
    for c in against {
        let dot: f64 = v.iter().zip(c).map(|(a, b)| a * b).sum();
        v.iter_mut().zip(c).for_each(|(a, b)| *a -= dot * b);
    }
}

fn normalise(v: &mut [f64]) -> f64 {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
        norm
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_axes_and_variances() {
        // Points spread 3 along (1,1,0)/√2, 1 along z, nothing along (1,-1,0)/√2.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let rows: Vec<Vec<f32>> = [(-3.0, -1.0), (3.0, -1.0), (-3.0, 1.0), (3.0, 1.0)]
            .iter()
            .map(|&(a, z)| vec![5.0 + a * s, 5.0 + a * s, z])
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let pca = Pca::fit(&refs, 3, 3);
        assert_eq!(
            pca.components.len(),
            2,
            "the third direction has no variance"
        );
        assert!((pca.variances[0] - 9.0).abs() < 1e-4 && (pca.variances[1] - 1.0).abs() < 1e-4);
        assert!((pca.components[0][0] - s).abs() < 1e-4 && (pca.components[0][1] - s).abs() < 1e-4);
        assert!((pca.components[1][2].abs() - 1.0).abs() < 1e-4);
        let p = pca.project(&rows[1]);
        assert!((p[0] - 3.0).abs() < 1e-4 && (p[1].abs() - 1.0).abs() < 1e-4);
    }
}
