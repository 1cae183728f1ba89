//! What the views draw from a generation: the PCA of ln_f(s_i) fitted on all generated tokens,
//! each token's path in it, and how far each iteration still is from where the token ended.

use loopscope_engine::pca::Pca;
use loopscope_engine::trace::PositionTrace;

/// Components kept: enough for the paper's pairs 1-2, 3-4 and 5-6.
pub const COMPONENTS: usize = 6;

/// `paths[token][i - 1]` is iteration i of that token projected on the principal components.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub paths: Vec<Vec<Vec<f32>>>,
}

fn normed(position: &PositionTrace) -> impl Iterator<Item = &[f32]> {
    position.steps.iter().filter_map(|s| s.normed.as_deref())
}

/// Fits on every iteration of every position given (not s_0: random draws would take the first
/// components for noise). `None` when nothing was recorded.
pub fn project(positions: &[PositionTrace]) -> Option<Projection> {
    let rows: Vec<&[f32]> = positions.iter().flat_map(normed).collect();
    let dim = rows.first()?.len();
    let pca = Pca::fit(&rows, dim, COMPONENTS);
    let paths = positions
        .iter()
        .map(|p| normed(p).map(|row| pad(pca.project(row))).collect())
        .collect();
    Some(Projection { paths })
}

/// Data spanning fewer dimensions yields fewer components; missing ones read as 0.
fn pad(mut coords: Vec<f32>) -> Vec<f32> {
    coords.resize(COMPONENTS, 0.0);
    coords
}

/// |ln_f(s_i) - ln_f(s_last)| for every iteration i of a position.
pub fn distance_to_final(position: &PositionTrace) -> Vec<f32> {
    let rows: Vec<&[f32]> = normed(position).collect();
    let Some(last) = rows.last() else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(last.iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt()
        })
        .collect()
}

/// The first iteration (1-based) from which the logit lens' top token is the one finally
/// written, and stays so.
pub fn answer_settles_at(position: &PositionTrace) -> Option<usize> {
    let written = position.next?;
    let tops: Vec<Option<u32>> = position
        .steps
        .iter()
        .map(|s| s.lens.as_ref().and_then(|l| l.first()).map(|t| t.id))
        .collect();
    let stays_from = tops
        .iter()
        .rposition(|&t| t != Some(written))
        .map_or(0, |i| i + 1);
    (stays_from < tops.len()).then_some(stays_from + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loopscope_engine::trace::{Exit, IterationRecord, TopToken};

    fn position(rows: &[[f32; 3]], tops: &[u32], next: u32) -> PositionTrace {
        PositionTrace {
            position: 0,
            token: 1,
            next: Some(next),
            iterations: rows.len(),
            exit: Exit::Fixed,
            initial_state: None,
            initial_normed: None,
            steps: rows
                .iter()
                .zip(tops)
                .map(|(r, &id)| IterationRecord {
                    normed: Some(r.to_vec()),
                    lens: Some(vec![TopToken { id, prob: 0.5 }]),
                    ..IterationRecord::default()
                })
                .collect(),
        }
    }

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
        let projection = project(&[a, b]).unwrap();
        assert_eq!(projection.paths.len(), 2);
        assert_eq!(projection.paths[0].len(), 3);
        let first: Vec<f32> = projection.paths[0].iter().map(|c| c[0].abs()).collect();
        // The first component spans the x motion: step sizes of 1 along it.
        assert!((first[0] - first[1]).abs() > 0.9 || (first[2] - first[1]).abs() > 0.9);
        assert!(projection.paths[0].iter().all(|c| c.len() == COMPONENTS));
    }

    #[test]
    fn nothing_recorded_projects_to_nothing() {
        let mut p = position(&[[0.0; 3]], &[1], 1);
        p.steps[0].normed = None;
        assert_eq!(project(&[p]), None);
    }

    #[test]
    fn distance_to_final_ends_at_zero() {
        let p = position(
            &[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
            &[1, 1, 1],
            1,
        );
        assert_eq!(distance_to_final(&p), vec![5.0, 1.0, 0.0]);
    }

    #[test]
    fn answer_settles_where_the_lens_stops_changing() {
        let rows = [[0.0; 3]; 5];
        assert_eq!(
            answer_settles_at(&position(&rows, &[4, 7, 4, 7, 7], 7)),
            Some(4)
        );
        assert_eq!(
            answer_settles_at(&position(&rows, &[7, 7, 7, 7, 7], 7)),
            Some(1)
        );
        assert_eq!(
            answer_settles_at(&position(&rows, &[7, 7, 7, 7, 4], 7)),
            None
        );
    }
}
