//! What a shared link holds: the model, prompt and settings of a generation, the sender's view,
//! and as much of the trace as the link's size budget allows, quantized. The receiver draws it
//! before any model has loaded, then re-runs the model and compares.

mod grid;
mod link;

use std::collections::BTreeMap;

use loopscope_engine::dynamics::Shape;
use loopscope_engine::pca::Pca;
use loopscope_engine::settings::MAX_STEPS;
use loopscope_engine::trace::{Exit, TopToken};
use loopscope_engine::{ExitCriterion, Sampling, ThinkingSettings};
use serde::{Deserialize, Serialize};

use crate::generation::{Generation, Label, Thought};
use crate::projection::{Projection, COMPONENTS, PAIRS};
use grid::{deltas, undelta, Grid};
pub use link::{decode, encode, payload, PREFIX};

/// Which model made the generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Where the page loaded it from (a URL, or `local files`).
    pub source: String,
    /// Of the folder's files, so a receiver can tell a changed model from a changed run.
    pub hash: u64,
}

/// Every setting that affects generation. The engine's settings are not stored as they are:
/// their serde layout (tagged enums) is made for JSON, and a link format must stay put when
/// the engine's types change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedSettings {
    pub steps: u32,
    pub min_steps: u32,
    /// As the engine writes it, e.g. `kl:0.001`.
    pub exit: String,
    /// (position, iterations)
    pub overrides: Vec<(u32, u32)>,
    pub init_scale: f32,
    pub warm_start: bool,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub seed: u64,
    pub max_tokens: u32,
    /// KV-sharing slots, 0 for none: travels after the snapshot (format 2 on).
    #[serde(skip)]
    pub kv_share: u32,
}

impl SharedSettings {
    pub fn new(settings: &ThinkingSettings, max_tokens: usize) -> Self {
        let small = |n: usize| n.min(u32::MAX as usize) as u32;
        Self {
            steps: small(settings.steps),
            min_steps: small(settings.min_steps),
            exit: settings.exit.to_string(),
            overrides: settings
                .overrides
                .iter()
                .map(|(&p, &n)| (small(p), small(n)))
                .collect(),
            init_scale: settings.init_scale,
            warm_start: settings.warm_start,
            temperature: settings.sampling.temperature,
            top_k: small(settings.sampling.top_k),
            top_p: settings.sampling.top_p,
            min_p: settings.sampling.min_p,
            seed: settings.seed,
            max_tokens: small(max_tokens),
            kv_share: settings.kv_share.map_or(0, small),
        }
    }

    /// The engine's settings, or why these are not valid ones.
    pub fn thinking(&self) -> Result<ThinkingSettings, String> {
        let settings = ThinkingSettings {
            steps: self.steps as usize,
            min_steps: self.min_steps as usize,
            exit: self
                .exit
                .parse::<ExitCriterion>()
                .map_err(|e| e.to_string())?,
            overrides: self
                .overrides
                .iter()
                .map(|&(p, n)| (p as usize, n as usize))
                .collect(),
            init_scale: self.init_scale,
            warm_start: self.warm_start,
            sampling: Sampling {
                temperature: self.temperature,
                top_k: self.top_k as usize,
                top_p: self.top_p,
                min_p: self.min_p,
            },
            seed: self.seed,
            kv_share: (self.kv_share > 0).then_some(self.kv_share as usize),
        };
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
    }
}

/// What the sender was looking at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub selected: Option<u32>,
    /// 1-based.
    pub iteration: u32,
    /// 0 for components 1-2, 1 for 3-4, 2 for 5-6.
    pub pair: u8,
    /// 0 for the distance to the final state, 1 for the exit criterion's value.
    pub heat: u8,
}

/// How much of a trace a link keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fidelity {
    /// All three pairs of components, or only the one in view.
    pub all_pairs: bool,
    pub coordinate_bits: u32,
    pub value_bits: u32,
    pub lens_k: usize,
    /// Whether the principal axes travel too.
    pub basis: bool,
}

/// Tried in order until a link fits its budget; past the last one the link keeps no trace and
/// the receiver waits for the model.
pub const LADDER: [Fidelity; 6] = [
    Fidelity {
        all_pairs: true,
        coordinate_bits: 16,
        value_bits: 10,
        basis: true,
        lens_k: 5,
    },
    Fidelity {
        all_pairs: true,
        coordinate_bits: 12,
        value_bits: 8,
        basis: true,
        lens_k: 5,
    },
    Fidelity {
        all_pairs: true,
        coordinate_bits: 10,
        value_bits: 8,
        basis: false,
        lens_k: 3,
    },
    Fidelity {
        all_pairs: false,
        coordinate_bits: 10,
        value_bits: 8,
        basis: false,
        lens_k: 3,
    },
    Fidelity {
        all_pairs: false,
        coordinate_bits: 8,
        value_bits: 6,
        basis: false,
        lens_k: 1,
    },
    Fidelity {
        all_pairs: false,
        coordinate_bits: 8,
        value_bits: 6,
        basis: false,
        lens_k: 0,
    },
];

/// Projected trajectories: for each stored component (pair-major), each token, each iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paths {
    pub pairs: Vec<u8>,
    pub grids: Vec<Grid>,
    pub deltas: Vec<i32>,
    pub basis: Option<Basis>,
}

/// The principal axes the paths were projected on: the mean state and the stored components'
/// directions, so that a re-run is compared on the sender's axes, not on a refit that float
/// differences between backends could turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    pub mean: (Grid, Vec<i32>),
    /// One direction per stored component, one after another.
    pub directions: (Grid, Vec<i32>),
}

/// The components of the stored pairs, in order.
fn components_of(pairs: &[u8]) -> Vec<usize> {
    pairs
        .iter()
        .flat_map(|&p| [2 * p as usize, 2 * p as usize + 1])
        .collect()
}

/// Longest state a link's basis may describe.
const MAX_DIM: usize = 1 << 16;
/// Axes are kept finer than coordinates: an error in a direction is multiplied by the size of
/// every state projected on it.
const BASIS_BITS: u32 = 16;

impl Basis {
    fn capture(pca: &Pca, components: &[usize]) -> Self {
        let dim = pca.mean.len();
        let directions: Vec<f32> = components
            .iter()
            .flat_map(|&c| {
                pca.components
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| vec![0.0; dim])
            })
            .collect();
        let quantize = |values: &[f32]| {
            let grid = Grid::spanning(values.iter().copied(), BASIS_BITS);
            (grid, deltas(values.iter().map(|&v| grid.code(v))))
        };
        Self {
            mean: quantize(&pca.mean),
            directions: quantize(&directions),
        }
    }

    fn check(&self, components: usize) -> Result<(), String> {
        let dim = self.mean.1.len();
        if dim == 0 || dim > MAX_DIM || self.directions.1.len() != dim * components {
            return Err("the principal axes do not match the stored components".into());
        }
        if !self.mean.0.is_sound() || !self.directions.0.is_sound() {
            return Err("a basis grid is out of range".into());
        }
        Ok(())
    }

    /// (mean, directions) as floats.
    fn values(&self) -> (Vec<f32>, Vec<Vec<f32>>) {
        let decode = |(grid, codes): &(Grid, Vec<i32>)| -> Vec<f32> {
            undelta(codes).into_iter().map(|c| grid.value(c)).collect()
        };
        let mean = decode(&self.mean);
        let directions = decode(&self.directions)
            .chunks(mean.len())
            .map(<[f32]>::to_vec)
            .collect();
        (mean, directions)
    }
}

/// The per-token trace, column by column (columns compress better than rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub first_position: u32,
    pub ids: Vec<u32>,
    pub iterations: Vec<u32>,
    /// 0 converged, 1 ran to the maximum, 2 fixed count.
    pub exits: Vec<u8>,
    /// Texts of the generated and lens token ids.
    pub vocab: Vec<(u32, String)>,
    pub paths: Option<Paths>,
    /// Distance to the final state, per token and iteration.
    pub distance: (Grid, Vec<i32>),
    /// log10 of the exit value, per token and iteration; code 0 is "none".
    pub exit_values: (Grid, Vec<i32>),
    pub lens_k: u8,
    /// Per token, per rank, per iteration: token ids and probabilities in 1/255.
    pub lens_ids: Vec<i32>,
    pub lens_probs: Vec<i32>,
    /// Each token's trajectory label: travels after the snapshot (format 2 on), so that
    /// format 1 links still read. Empty when the trace had none.
    #[serde(skip)]
    pub labels: Vec<SharedLabel>,
}

/// A label as a link stores it: the shape (its index in [`Shape::ALL`]) and the numbers behind
/// it in words, as the sender's page wrote them.
pub type SharedLabel = (u8, String);

/// Longest explanation a link may carry for one label.
const MAX_LABEL_TEXT: usize = 200;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub model: ModelRef,
    pub prompt: String,
    pub settings: SharedSettings,
    pub view: View,
    /// `None` when even the coarsest trace did not fit.
    pub trace: Option<Trace>,
}

/// A link ready to share.
pub struct Shared {
    pub text: String,
    /// `None` when the link keeps no trace.
    pub fidelity: Option<Fidelity>,
}

/// The finest snapshot of `g` whose text fits in `budget` characters.
pub fn share(g: &Generation, view: View, model: ModelRef, budget: usize) -> Shared {
    for fidelity in LADDER {
        let snapshot = Snapshot::capture(g, view, model.clone(), Some(fidelity));
        let text = encode(&snapshot);
        if text.len() <= budget {
            return Shared {
                text,
                fidelity: Some(fidelity),
            };
        }
    }
    Shared {
        text: encode(&Snapshot::capture(g, view, model, None)),
        fidelity: None,
    }
}

/// Every token's label, or none when any token lacks one.
fn shared_labels(tokens: &[Thought]) -> Vec<SharedLabel> {
    tokens
        .iter()
        .map(|t| {
            let label = t.label.as_ref()?;
            let code = Shape::ALL.iter().position(|&s| s == label.shape)? as u8;
            let mut why = label.why.clone();
            why.truncate(why.floor_char_boundary(MAX_LABEL_TEXT));
            Some((code, why))
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

fn exit_code(exit: Exit) -> u8 {
    match exit {
        Exit::Converged => 0,
        Exit::MaxSteps => 1,
        Exit::Fixed => 2,
    }
}

fn exit_from_code(code: u8) -> Option<Exit> {
    [Exit::Converged, Exit::MaxSteps, Exit::Fixed]
        .get(code as usize)
        .copied()
}

/// The logit lens' entry `rank` at each iteration of a token (missing entries read as id 0).
fn lens_column(t: &Thought, rank: usize) -> impl Iterator<Item = TopToken> + '_ {
    (0..t.iterations).map(move |i| {
        t.lens
            .get(i)
            .and_then(|top| top.get(rank))
            .copied()
            .unwrap_or(TopToken { id: 0, prob: 0.0 })
    })
}

/// Every cell of a per-iteration series, token by token, padded to each token's iterations.
fn cells<'a, T: Copy + 'a>(
    tokens: &'a [Thought],
    series: impl Fn(&'a Thought) -> &'a [T] + Clone + 'a,
    missing: T,
) -> impl Iterator<Item = T> + Clone + 'a {
    tokens.iter().flat_map(move |t| {
        let values = series(t);
        (0..t.iterations).map(move |i| values.get(i).copied().unwrap_or(missing))
    })
}

impl Trace {
    fn capture(g: &Generation, view: View, fidelity: Fidelity) -> Self {
        let tokens = &g.tokens;
        let lens_k = tokens
            .iter()
            .flat_map(|t| t.lens.iter().map(Vec::len))
            .min()
            .unwrap_or(0)
            .min(fidelity.lens_k);
        let mut shown: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        for t in tokens {
            for rank in 0..lens_k {
                shown.extend(lens_column(t, rank).map(|top| top.id));
            }
        }
        let vocab = shown
            .into_iter()
            .map(|id| (id, g.text(id)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let distance = cells(tokens, |t| &t.distance, 0.0);
        let distance_grid = Grid::spanning(distance.clone(), fidelity.value_bits);
        let log_exit = |v: Option<f32>| v.filter(|v| *v > 0.0).map(f32::log10);
        let exits = cells(tokens, |t| &t.exit_values, None).map(log_exit);
        // Codes from 1: 0 means no value.
        let exit_grid = Grid::spanning(exits.clone().flatten(), fidelity.value_bits);
        let lens = |value: fn(TopToken) -> i32| {
            deltas(tokens.iter().flat_map(move |t| {
                (0..lens_k).flat_map(move |rank| lens_column(t, rank).map(value))
            }))
        };
        Self {
            first_position: tokens.first().map_or(0, |t| t.position as u32),
            ids: tokens.iter().map(|t| t.id).collect(),
            iterations: tokens.iter().map(|t| t.iterations as u32).collect(),
            exits: tokens.iter().map(|t| exit_code(t.exit)).collect(),
            vocab,
            paths: g
                .projection
                .as_ref()
                .and_then(|p| Paths::capture(p, tokens, view, fidelity)),
            distance: (
                distance_grid,
                deltas(distance.map(|d| distance_grid.code(d))),
            ),
            exit_values: (
                exit_grid,
                deltas(exits.map(|v| v.map_or(0, |v| 1 + exit_grid.code(v)))),
            ),
            lens_k: lens_k as u8,
            lens_ids: lens(|top| top.id as i32),
            lens_probs: lens(|top| (top.prob.clamp(0.0, 1.0) * 255.0).round() as i32),
            labels: shared_labels(tokens),
        }
    }

    fn cell_count(&self) -> usize {
        self.iterations.iter().map(|&n| n as usize).sum()
    }

    /// Whether every column has the length the token and iteration counts imply.
    fn check(&self) -> Result<(), String> {
        let n = self.ids.len();
        if self.iterations.len() != n || self.exits.len() != n {
            return Err("token columns differ in length".into());
        }
        if let Some(&bad) = self
            .iterations
            .iter()
            .find(|&&i| i == 0 || i as usize > MAX_STEPS)
        {
            return Err(format!("a token claims {bad} iterations"));
        }
        if self.exits.iter().any(|&e| exit_from_code(e).is_none()) {
            return Err("unknown exit kind".into());
        }
        let cells = self.cell_count();
        if self.distance.1.len() != cells || self.exit_values.1.len() != cells {
            return Err("convergence values do not match the iteration counts".into());
        }
        let lens_cells = cells * self.lens_k as usize;
        if self.lens_ids.len() != lens_cells || self.lens_probs.len() != lens_cells {
            return Err("logit lens does not match the iteration counts".into());
        }
        if !self.distance.0.is_sound() || !self.exit_values.0.is_sound() {
            return Err("a value grid is out of range".into());
        }
        if let Some(paths) = &self.paths {
            paths.check(cells)?;
        }
        if !self.labels.is_empty() && self.labels.len() != n {
            return Err("labels do not match the tokens".into());
        }
        for (shape, why) in &self.labels {
            if Shape::ALL.get(*shape as usize).is_none() || why.len() > MAX_LABEL_TEXT {
                return Err("a trajectory label is unknown or too long".into());
            }
        }
        Ok(())
    }

    fn thoughts(&self) -> Vec<Thought> {
        let distance = undelta(&self.distance.1);
        let exit_values = undelta(&self.exit_values.1);
        let lens_ids = undelta(&self.lens_ids);
        let lens_probs = undelta(&self.lens_probs);
        let k = self.lens_k as usize;
        let (mut cell, mut lens_cell) = (0, 0);
        let mut thoughts = Vec::with_capacity(self.ids.len());
        for (t, (&id, &iterations)) in self.ids.iter().zip(&self.iterations).enumerate() {
            let n = iterations as usize;
            let range = cell..cell + n;
            let mut lens = vec![Vec::with_capacity(k); n];
            for rank in 0..k {
                let at = lens_cell + rank * n;
                for (i, top) in lens.iter_mut().enumerate() {
                    top.push(TopToken {
                        id: lens_ids[at + i] as u32,
                        prob: (lens_probs[at + i] & 0xff) as f32 / 255.0,
                    });
                }
            }
            thoughts.push(Thought {
                position: self.first_position as usize + t,
                id,
                iterations: n,
                exit: exit_from_code(self.exits[t]).unwrap_or(Exit::Fixed),
                distance: distance[range.clone()]
                    .iter()
                    .map(|&c| self.distance.0.value(c))
                    .collect(),
                exit_values: exit_values[range]
                    .iter()
                    .map(|&c| {
                        let log = self.exit_values.0.value(c.wrapping_sub(1));
                        Some(10f32.powf(log)).filter(|v| c != 0 && v.is_finite())
                    })
                    .collect(),
                lens,
                label: self.labels.get(t).and_then(|(shape, why)| {
                    Some(Label {
                        shape: *Shape::ALL.get(*shape as usize)?,
                        why: why.clone(),
                    })
                }),
            });
            cell += n;
            lens_cell += n * k;
        }
        thoughts
    }
}

impl Paths {
    fn capture(
        projection: &Projection,
        tokens: &[Thought],
        view: View,
        fidelity: Fidelity,
    ) -> Option<Self> {
        let complete = projection.paths.len() == tokens.len()
            && projection
                .paths
                .iter()
                .zip(tokens)
                .all(|(p, t)| p.len() == t.iterations);
        if !complete {
            return None;
        }
        let pairs: Vec<u8> = if fidelity.all_pairs {
            (0..PAIRS as u8)
                .filter(|&p| projection.pairs[p as usize])
                .collect()
        } else {
            vec![view.pair.min(PAIRS as u8 - 1)]
        };
        let components = components_of(&pairs);
        let column = |c: usize| projection.paths.iter().flatten().map(move |point| point[c]);
        let grids: Vec<Grid> = components
            .iter()
            .map(|&c| Grid::spanning(column(c), fidelity.coordinate_bits))
            .collect();
        let deltas = deltas(
            components
                .iter()
                .zip(&grids)
                .flat_map(|(&c, grid)| column(c).map(|x| grid.code(x))),
        );
        let basis = projection
            .pca
            .as_ref()
            .filter(|_| fidelity.basis)
            .map(|pca| Basis::capture(pca, &components));
        Some(Self {
            pairs,
            grids,
            deltas,
            basis,
        })
    }

    /// A re-run's recorded states projected on this link's axes, or `None` without axes or
    /// states.
    fn project_rerun(&self, rerun: &Generation) -> Option<Result<Projection, String>> {
        let (mean, directions) = self.basis.as_ref()?.values();
        if rerun.positions.is_empty() {
            return None;
        }
        let components = components_of(&self.pairs);
        let mut paths = Vec::with_capacity(rerun.positions.len());
        for position in &rerun.positions {
            let mut path = Vec::with_capacity(position.steps.len());
            for row in position.normed() {
                if row.len() != mean.len() {
                    return Some(Err(format!(
                        "states have {} dimensions here, {} in the link",
                        row.len(),
                        mean.len()
                    )));
                }
                let mut point = [0.0; COMPONENTS];
                for (&c, direction) in components.iter().zip(&directions) {
                    point[c] = row
                        .iter()
                        .zip(&mean)
                        .zip(direction)
                        .map(|((x, m), d)| (x - m) * d)
                        .sum();
                }
                path.push(point);
            }
            paths.push(path);
        }
        let mut pairs = [false; PAIRS];
        self.pairs.iter().for_each(|&p| pairs[p as usize] = true);
        Some(Ok(Projection {
            paths,
            pairs,
            pca: None,
        }))
    }

    fn check(&self, cells: usize) -> Result<(), String> {
        let mut seen = [false; PAIRS];
        for &p in &self.pairs {
            match seen.get_mut(p as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(format!("component pair {p} is unknown or repeated")),
            }
        }
        if self.grids.len() != 2 * self.pairs.len() || self.deltas.len() != self.grids.len() * cells
        {
            return Err("trajectories do not match the iteration counts".into());
        }
        if !self.grids.iter().all(Grid::is_sound) {
            return Err("a trajectory grid is out of range".into());
        }
        match &self.basis {
            Some(basis) => basis.check(self.grids.len()),
            None => Ok(()),
        }
    }

    fn projection(&self, iterations: &[u32]) -> Projection {
        let codes = undelta(&self.deltas);
        let cells: usize = iterations.iter().map(|&n| n as usize).sum();
        let mut paths: Vec<Vec<[f32; COMPONENTS]>> = iterations
            .iter()
            .map(|&n| vec![[0.0; COMPONENTS]; n as usize])
            .collect();
        let mut pairs = [false; PAIRS];
        for (slot, (&pair, grids)) in self.pairs.iter().zip(self.grids.chunks(2)).enumerate() {
            pairs[pair as usize] = true;
            for (half, grid) in grids.iter().enumerate() {
                let component = 2 * pair as usize + half;
                let mut column = codes[(2 * slot + half) * cells..].iter();
                for point in paths.iter_mut().flatten() {
                    point[component] = grid.value(*column.next().unwrap_or(&0));
                }
            }
        }
        Projection {
            paths,
            pairs,
            pca: None,
        }
    }
}

impl Snapshot {
    /// `fidelity: None` keeps no trace.
    pub fn capture(
        g: &Generation,
        view: View,
        model: ModelRef,
        fidelity: Option<Fidelity>,
    ) -> Self {
        Self {
            model,
            prompt: g.prompt.clone(),
            settings: SharedSettings::new(&g.settings, g.max_tokens),
            view,
            trace: fidelity.map(|f| Trace::capture(g, view, f)),
        }
    }

    /// Whether the decoded parts fit together; every later step relies on this.
    fn check(&self) -> Result<(), String> {
        self.settings.thinking()?;
        if self.view.pair as usize >= PAIRS || self.view.heat > 1 {
            return Err("unknown view".into());
        }
        let Some(trace) = &self.trace else {
            return Ok(());
        };
        trace.check()?;
        if let Some(selected) = self.view.selected {
            if selected as usize >= trace.ids.len() {
                return Err(format!("selected token {selected} does not exist"));
            }
        }
        Ok(())
    }

    /// The generation as the sender saw it (without states), to draw before the model runs.
    pub fn generation(&self) -> Generation {
        let settings = self.settings.thinking().unwrap_or_default();
        let max_tokens = self.settings.max_tokens as usize;
        let sent = Generation::new(
            Some(self.model.clone()),
            self.prompt.clone(),
            settings,
            max_tokens,
        );
        let Some(trace) = &self.trace else {
            return sent;
        };
        sent.with_trace(
            trace.thoughts(),
            trace.vocab.iter().cloned().collect(),
            trace
                .paths
                .as_ref()
                .map(|p| p.projection(&trace.iterations)),
        )
    }

    /// Whether a re-run gave the same tokens and trace as this snapshot, or the first reason it
    /// did not.
    pub fn compare(&self, model_hash: u64, rerun: &Generation) -> Result<(), String> {
        if model_hash != self.model.hash {
            return Err("the model's files differ from the ones that made the link".into());
        }
        let Some(trace) = &self.trace else {
            return Ok(());
        };
        let sent = self.generation();
        let text = |g: &Generation, id: u32| format!("{:?}", g.text(id));
        for (i, (a, b)) in sent.tokens.iter().zip(&rerun.tokens).enumerate() {
            if a.id != b.id {
                return Err(format!(
                    "token {} is {} here, {} in the link",
                    i + 1,
                    text(rerun, b.id),
                    text(&sent, a.id)
                ));
            }
            if a.iterations != b.iterations {
                return Err(format!(
                    "token {} thought for {} iterations here, {} in the link",
                    i + 1,
                    b.iterations,
                    a.iterations
                ));
            }
        }
        if sent.tokens.len() != rerun.tokens.len() {
            return Err(format!(
                "{} tokens here, {} in the link",
                rerun.tokens.len(),
                sent.tokens.len()
            ));
        }
        if let (Some(paths), Some(linked)) = (&trace.paths, &sent.projection) {
            let on_link_axes = paths.project_rerun(rerun).transpose()?;
            let Some(here) = on_link_axes.as_ref().or(rerun.projection.as_ref()) else {
                return Ok(());
            };
            let worst = trajectory_difference(linked, here);
            if worst > TRAJECTORY_TOLERANCE {
                return Err(format!(
                    "trajectories differ by up to {:.1}% of their extent",
                    worst * 100.0
                ));
            }
        }
        Ok(())
    }
}

/// How far a re-run's trajectories may stray from the link's, as a share of their extent:
/// quantization costs at most 1/2^9 at the coarsest grid, float differences between backends
/// (WebGPU vs CPU) a little more.
const TRAJECTORY_TOLERANCE: f32 = 0.01;

/// The largest difference between two projections on the pairs `linked` stores, relative to
/// the extent of each component, but never to less than a twentieth of the widest one: a
/// component with almost no variance is rounding noise, and the view pads its axis anyway.
fn trajectory_difference(linked: &Projection, here: &Projection) -> f32 {
    let range = |c: usize| {
        let points = linked.paths.iter().flatten().map(|p| p[c]);
        let (lo, hi) = points.fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        (hi - lo).max(0.0)
    };
    let stored: Vec<usize> = (0..COMPONENTS).filter(|c| linked.pairs[c / 2]).collect();
    let widest = stored.iter().map(|&c| range(c)).fold(0.0f32, f32::max);
    let mut worst = 0.0f32;
    for c in stored {
        let extent = range(c).max(widest / 20.0).max(1e-6);
        let pairs = linked
            .paths
            .iter()
            .flatten()
            .zip(here.paths.iter().flatten());
        for (a, b) in pairs {
            worst = worst.max((a[c] - b[c]).abs() / extent);
        }
    }
    worst
}

#[cfg(test)]
mod tests;
