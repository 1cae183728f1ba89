//! Principal components of a set of latent states, for drawing trajectories in 2-D.
//!
//! Power iteration on the covariance: formed once when there are fewer dimensions than rows
//! (the page's small models: a fit then costs rows · dim² once, not per iteration), applied as
//! `Xᵀ(X v)` without forming it otherwise (Huginn-0125's 5280 dimensions). Iteration stops as
//! soon as the direction settles.

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
/// Squared change of a unit direction between two iterations below which it has converged.
const SETTLED: f64 = 1e-20;

/// `v ↦ C v` for the covariance C of centred rows.
enum Covariance {
    /// C itself, row-major `dim × dim`.
    Formed { c: Vec<f64>, dim: usize },
    /// The centred rows: C v = Xᵀ(X v) / n.
    Rows(Vec<Vec<f64>>),
}

impl Covariance {
    fn new(centred: Vec<Vec<f64>>, dim: usize) -> Self {
        if dim > centred.len() {
            return Self::Rows(centred);
        }
        let n = centred.len().max(1) as f64;
        let mut c = vec![0.0f64; dim * dim];
        for row in &centred {
            for (i, &x) in row.iter().enumerate() {
                // The upper triangle only; mirrored below.
                for (acc, &y) in c[i * dim + i..(i + 1) * dim].iter_mut().zip(&row[i..]) {
                    *acc += x * y;
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                c[i * dim + j] /= n;
                c[j * dim + i] = c[i * dim + j];
            }
        }
        Self::Formed { c, dim }
    }

    fn apply(&self, v: &[f64]) -> Vec<f64> {
        match self {
            Self::Formed { c, dim } => c
                .chunks(*dim)
                .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
                .collect(),
            Self::Rows(rows) => {
                let n = rows.len().max(1) as f64;
                let mut next = vec![0.0f64; v.len()];
                for row in rows {
                    let projection: f64 = row.iter().zip(v).map(|(x, y)| x * y).sum();
                    for (acc, x) in next.iter_mut().zip(row) {
                        *acc += projection * x / n;
                    }
                }
                next
            }
        }
    }

    /// The total variance.
    fn trace(&self) -> f64 {
        match self {
            Self::Formed { c, dim } => (0..*dim).map(|i| c[i * dim + i]).sum(),
            Self::Rows(rows) => {
                let n = rows.len().max(1) as f64;
                rows.iter().flatten().map(|x| x * x).sum::<f64>() / n
            }
        }
    }
}

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
        let covariance = Covariance::new(centred, dim);
        let total = covariance.trace();
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
                let next = covariance.apply(&v);
                variance = next.iter().zip(&v).map(|(a, b)| a * b).sum();
                let length = next.iter().map(|x| x * x).sum::<f64>().sqrt();
                let moved: f64 = next
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| (a / length.max(1e-300) - b).powi(2))
                    .sum();
                v = next;
                if moved < SETTLED {
                    break;
                }
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

    #[test]
    fn formed_and_implicit_covariances_agree() {
        let rows: Vec<Vec<f64>> = (0..6)
            .map(|r| (0..4).map(|c| ((r * 5 + c * 3) % 7) as f64 - 3.0).collect())
            .collect();
        let v = [0.5, -1.0, 2.0, 0.25];
        let Covariance::Formed { .. } = Covariance::new(rows.clone(), 4) else {
            panic!("4 dimensions and 6 rows form the covariance");
        };
        let formed = Covariance::new(rows.clone(), 4);
        let implicit = Covariance::Rows(rows);
        for (a, b) in formed.apply(&v).iter().zip(implicit.apply(&v)) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((formed.trace() - implicit.trace()).abs() < 1e-12);
    }

    #[test]
    fn more_dimensions_than_rows_still_finds_the_axis() {
        // Three points on a line along dimension 7 of 10.
        let rows: Vec<Vec<f32>> = [-1.0, 0.0, 1.0]
            .iter()
            .map(|&t| {
                (0..10)
                    .map(|d| if d == 7 { 2.0 * t } else { 0.5 })
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let pca = Pca::fit(&refs, 10, 2);
        assert_eq!(pca.components.len(), 1);
        assert!((pca.components[0][7] - 1.0).abs() < 1e-5);
        assert!((pca.variances[0] - 8.0 / 3.0).abs() < 1e-4);
    }
}
