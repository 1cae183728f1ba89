//! One generation as the views draw it: for each generated token, how it thought. A live run
//! fills it from the engine's trace; a shared link restores it from a snapshot, without states.

use std::collections::BTreeMap;

use loopscope_engine::dynamics::{Dynamics, Shape};
use loopscope_engine::trace::{Exit, PositionTrace, TopToken};
use loopscope_engine::ThinkingSettings;
use serde::Serialize;

use crate::projection::{LiveFit, Projection};
use crate::snapshot::ModelRef;

/// What the views show of one generated token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Thought {
    pub position: usize,
    /// The token written.
    pub id: u32,
    pub iterations: usize,
    pub exit: Exit,
    /// |ln_f(s_i) - ln_f(s_final)| per iteration.
    pub distance: Vec<f32>,
    /// The exit criterion's value per iteration, where it was computed.
    pub exit_values: Vec<Option<f32>>,
    /// The logit lens' most likely next tokens per iteration.
    pub lens: Vec<Vec<TopToken>>,
    /// What its trajectory did; `None` when the states were not recorded (or a link predates
    /// labels).
    pub label: Option<Label>,
}

/// A trajectory's shape and the numbers behind it, in words.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub shape: Shape,
    pub why: String,
}

impl From<Dynamics> for Label {
    fn from(d: Dynamics) -> Self {
        Self {
            shape: d.shape,
            why: d.explain(),
        }
    }
}

impl Thought {
    fn new(position: &PositionTrace) -> Self {
        Self {
            position: position.position,
            id: position.next.unwrap_or(position.token),
            iterations: position.iterations,
            exit: position.exit,
            distance: distance_to_final(position),
            exit_values: position.steps.iter().map(|s| s.exit_value).collect(),
            lens: position
                .steps
                .iter()
                .map(|s| s.lens.clone().unwrap_or_default())
                .collect(),
            label: position.dynamics().map(Label::from),
        }
    }

    /// The first iteration (1-based) from which the logit lens' top token is the one finally
    /// written, and stays so.
    pub fn answer_settles_at(&self) -> Option<usize> {
        let stays_from = self
            .lens
            .iter()
            .rposition(|top| top.first().map(|t| t.id) != Some(self.id))
            .map_or(0, |i| i + 1);
        (stays_from < self.lens.len()).then_some(stays_from + 1)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Generation {
    /// The model that made it.
    pub model: Option<ModelRef>,
    pub prompt: String,
    pub settings: ThinkingSettings,
    pub max_tokens: usize,
    pub tokens: Vec<Thought>,
    /// Text of every token id shown: generated tokens and logit-lens candidates.
    pub vocab: BTreeMap<u32, String>,
    #[serde(skip)]
    pub projection: Option<Projection>,
    /// The engine's full record of each generated position (live runs only: a snapshot does not
    /// carry states).
    pub positions: Vec<PositionTrace>,
    #[serde(skip)]
    fit: Option<LiveFit>,
}

impl Generation {
    pub fn new(
        model: Option<ModelRef>,
        prompt: String,
        settings: ThinkingSettings,
        max_tokens: usize,
    ) -> Self {
        Self {
            model,
            prompt,
            settings,
            max_tokens,
            ..Self::default()
        }
    }

    /// Fills in a generation that arrives without states (from a shared link).
    pub fn with_trace(
        self,
        tokens: Vec<Thought>,
        vocab: BTreeMap<u32, String>,
        projection: Option<Projection>,
    ) -> Self {
        Self {
            tokens,
            vocab,
            projection,
            ..self
        }
    }

    /// Adds a generated position; `text_of` names token ids not seen before.
    pub fn push(&mut self, position: PositionTrace, text_of: impl Fn(u32) -> String) {
        let thought = Thought::new(&position);
        let ids = std::iter::once(thought.id).chain(thought.lens.iter().flatten().map(|t| t.id));
        for id in ids {
            self.vocab.entry(id).or_insert_with(|| text_of(id));
        }
        self.tokens.push(thought);
        self.positions.push(position);
        let fit = self.fit.get_or_insert_with(LiveFit::default);
        self.projection = fit.update(&self.positions);
    }

    /// Refits the projection on everything generated (a live fit lags behind by design).
    pub fn finish(&mut self) {
        if let Some(fit) = &mut self.fit {
            self.projection = fit.refit(&self.positions);
        }
    }

    pub fn text(&self, id: u32) -> String {
        self.vocab
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("<{id}>"))
    }

    /// How many tokens took `shape`.
    pub fn count(&self, shape: Shape) -> usize {
        self.tokens
            .iter()
            .filter(|t| t.label.as_ref().is_some_and(|l| l.shape == shape))
            .count()
    }

    /// Most iterations any token ran.
    pub fn max_iterations(&self) -> usize {
        self.tokens.iter().map(|t| t.iterations).max().unwrap_or(0)
    }
}

/// |ln_f(s_i) - ln_f(s_last)| for every iteration i of a position.
fn distance_to_final(position: &PositionTrace) -> Vec<f32> {
    let rows: Vec<&[f32]> = position.normed().collect();
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

#[cfg(test)]
pub mod tests {
    use super::*;
    use loopscope_engine::trace::IterationRecord;

    /// A position whose iterations sit at `rows` with lens tops `tops`, writing `next`.
    pub fn position(rows: &[[f32; 3]], tops: &[u32], next: u32) -> PositionTrace {
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
                    exit_value: Some(0.1),
                    ..IterationRecord::default()
                })
                .collect(),
        }
    }

    #[test]
    fn distance_to_final_ends_at_zero() {
        let p = position(
            &[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
            &[1, 1, 1],
            1,
        );
        assert_eq!(Thought::new(&p).distance, vec![5.0, 1.0, 0.0]);
    }

    #[test]
    fn answer_settles_where_the_lens_stops_changing() {
        let rows = [[0.0; 3]; 5];
        let settles = |tops: &[u32]| Thought::new(&position(&rows, tops, 7)).answer_settles_at();
        assert_eq!(settles(&[4, 7, 4, 7, 7]), Some(4));
        assert_eq!(settles(&[7, 7, 7, 7, 7]), Some(1));
        assert_eq!(settles(&[7, 7, 7, 7, 4]), None);
    }

    #[test]
    fn pushing_names_every_shown_token_once() {
        let mut g = Generation::default();
        let rows = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
        g.push(position(&rows, &[3, 7], 7), |id| format!("t{id}"));
        g.push(position(&rows, &[7, 9], 9), |id| format!("u{id}"));
        let names: Vec<(u32, String)> = g.vocab.clone().into_iter().collect();
        assert_eq!(
            names,
            [(3, "t3".into()), (7, "t7".into()), (9, "u9".into())]
        );
        assert_eq!(g.tokens.len(), 2);
        assert_eq!(g.projection.as_ref().map(|p| p.paths.len()), Some(2));
    }
}
