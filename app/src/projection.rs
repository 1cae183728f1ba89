//! The trajectories the views draw: ln_f(s_i) of every generated token projected on principal
//! components fitted on the whole generation.

use loopscope_engine::pca::Pca;
use loopscope_engine::trace::PositionTrace;

/// Components kept: enough for the paper's pairs 1-2, 3-4 and 5-6.
pub const COMPONENTS: usize = 6;
pub const PAIRS: usize = COMPONENTS / 2;

/// `paths[token][i - 1]` is iteration i of that token projected on the principal components.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub paths: Vec<Vec<[f32; COMPONENTS]>>,
    /// Which pairs of components hold data: a shared link may carry only the pair its sender
    /// was looking at.
    pub pairs: [bool; PAIRS],
    /// The fit the paths come from (a live run's; a link's paths arrive without it).
    pub pca: Option<Pca>,
}

/// The fit of a generation that is still growing. Refitting after every token costs more and
/// more (the rows grow with every token) and froze the page, so the fit is renewed only when
/// the data has grown by a quarter; tokens in between are projected on the last fit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveFit {
    pca: Option<Pca>,
    fitted_rows: usize,
}

impl LiveFit {
    pub fn update(&mut self, positions: &[PositionTrace]) -> Option<Projection> {
        let rows = positions.iter().flat_map(PositionTrace::normed).count();
        if self.pca.is_none() || rows * 4 > self.fitted_rows * 5 {
            return self.refit(positions);
        }
        self.project(positions)
    }

    /// Fits on every iteration of every position (not s_0: random draws would take the first
    /// components for noise). `None` when nothing was recorded.
    pub fn refit(&mut self, positions: &[PositionTrace]) -> Option<Projection> {
        let rows: Vec<&[f32]> = positions.iter().flat_map(PositionTrace::normed).collect();
        let dim = rows.first()?.len();
        self.pca = Some(Pca::fit(&rows, dim, COMPONENTS));
        self.fitted_rows = rows.len();
        self.project(positions)
    }

    fn project(&self, positions: &[PositionTrace]) -> Option<Projection> {
        let pca = self.pca.as_ref()?;
        let paths = positions
            .iter()
            .map(|p| p.normed().map(|row| pad(pca.project(row))).collect())
            .collect();
        Some(Projection {
            paths,
            pairs: [true; PAIRS],
            pca: Some(pca.clone()),
        })
    }
}

/// Data spanning fewer dimensions yields fewer components; missing ones read as 0.
fn pad(coords: Vec<f32>) -> [f32; COMPONENTS] {
    let mut padded = [0.0; COMPONENTS];
    padded.iter_mut().zip(coords).for_each(|(p, c)| *p = c);
    padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::tests::position;

    #[test]
    fn paths_follow_the_main_direction_of_motion() {
        // Two tokens moving along x, one of them also slightly along y.
        let a = position(
            &[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]],
            &[1, 1, 1],
            1,
        );
        let b = position(
            &[[0.0, 0.1, 0.0], [1.0, 0.1, 0.0], [2.0, 0.1, 0.0]],
            &[1, 1, 1],
            1,
        );
        let projection = LiveFit::default().refit(&[a, b]).unwrap();
        assert_eq!(projection.paths.len(), 2);
        assert_eq!(projection.paths[0].len(), 3);
        let first: Vec<f32> = projection.paths[0].iter().map(|c| c[0]).collect();
        // The first component spans the x motion: steps of 1 along it.
        assert!((first[1] - first[0]).abs() > 0.99 && (first[2] - first[1]).abs() > 0.99);
    }

    #[test]
    fn nothing_recorded_projects_to_nothing() {
        let mut p = position(&[[0.0; 3]], &[1], 1);
        p.steps[0].normed = None;
        assert_eq!(LiveFit::default().refit(&[p]), None);
    }

    #[test]
    fn a_growing_generation_refits_only_when_it_grew_by_a_quarter() {
        let token = |x: f32| position(&[[x, 0.0, 1.0], [x, 1.0, 0.0]], &[1, 1], 1);
        let mut fit = LiveFit::default();
        let mut positions = vec![token(0.0), token(1.0), token(2.0), token(3.0)];
        fit.update(&positions);
        let first = fit.pca.clone();
        positions.push(token(9.0));
        let projection = fit.update(&positions).unwrap();
        assert_eq!(
            fit.pca, first,
            "10 rows after 8 is a quarter more: no refit yet"
        );
        assert_eq!(
            projection.paths.len(),
            5,
            "the new token is projected on the old fit"
        );
        positions.push(token(-9.0));
        fit.update(&positions);
        assert_ne!(fit.pca, first);
        assert_eq!(fit.fitted_rows, 12);
    }
}
