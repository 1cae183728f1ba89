//! A training run, fully described: model shape, data, schedule and seed. Saved next to the
//! checkpoints so a run can be resumed or repeated exactly.

use std::path::{Path, PathBuf};

use loopscope_engine::config::InitValues;
use loopscope_engine::ModelConfig;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::data::Mix;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub n_embd: usize,
    pub n_heads: usize,
    pub n_layers_in_prelude: usize,
    pub n_layers_in_recurrent_block: usize,
    pub n_layers_in_coda: usize,
    pub intermediate_size: usize,
    pub block_size: usize,
    /// Mean of the per-step iteration count r = 1 + Poisson(lambda).
    pub mean_recurrence: usize,
    /// Gradients flow through the last k = min(r, this) iterations only.
    pub mean_backprop_depth: usize,
    pub rope_base: f64,
    /// Target size of the BPE vocabulary; the embedding is padded to a multiple of 64.
    pub vocab_size: usize,
    /// Sentences in the generated training corpus.
    pub corpus_sentences: usize,
    /// What the corpus is made of: filler share and style, comparisons by name.
    #[serde(flatten)]
    pub mix: Mix,
    /// A model folder whose weights and tokenizer the run starts from instead of a fresh
    /// initialisation and a tokenizer trained on the corpus; its shape must be this recipe's.
    /// A recipe (a `.json` file) instead is trained first, into `runs/starts/NAME`, and its
    /// model is the start: one command retrains a chain of runs from scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<PathBuf>,
    /// With a recipe in `start_from`: start from that run's model at this step, its schedule
    /// unchanged (as `--stop-at` stops it), instead of at its end. That run goes into
    /// `runs/starts/NAME-stepN`, apart from the whole run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from_step: Option<usize>,
    /// Weight of an answer token in the loss relative to every other token: the answers are a
    /// few tokens in a sentence of random names and numbers, whose noise otherwise drowns them.
    #[serde(default = "default_answer_weight")]
    pub answer_weight: f32,
    /// Whether the loss is the mean over every iteration of the backpropagation window instead of
    /// the last iteration's alone (not the paper's recipe): each of those states must already
    /// predict the next token, so a token the model finds easy is asked to settle early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loss_every_iteration: bool,
    /// Weight of a second loss term (not the paper's recipe): the tokens other than answers as
    /// predicted after the first iteration from the random state. Tokens with nothing to work out
    /// are asked to be right, and so to settle, at once, while the answers keep their iterations.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_iteration_weight: f32,
    pub batch_size: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub warmup_steps: usize,
    pub learning_rate: f64,
    /// The learning rate decays along a cosine to this fraction of its peak.
    pub final_lr_fraction: f64,
    /// The step where the cosine reaches its floor; by default the last step. Set to a finished
    /// run's `steps`, it lets that run go on without changing a step it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_steps: Option<usize>,
    /// After `decay_steps`, a second cosine from the floor down to this fraction of the peak at
    /// the last step: a run that goes on anneals again. Without it the floor holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_lr_fraction: Option<f64>,
    pub weight_decay: f32,
    pub grad_clip: f32,
    pub seed: u64,
    pub log_every: usize,
    pub eval_every: usize,
    pub checkpoint_every: usize,
}

impl Recipe {
    /// The recipe `start_from` names, where it names one (a `.json` file) and not a model folder.
    pub fn start_recipe(&self) -> Option<&Path> {
        self.start_from
            .as_deref()
            .filter(|from| from.extension().is_some_and(|e| e == "json"))
    }

    /// The engine's config for this shape and a tokenizer of `vocab` tokens.
    pub fn model_config(&self, vocab: usize) -> ModelConfig {
        let std = (2.0 / (5.0 * self.n_embd as f64)).sqrt();
        ModelConfig {
            n_embd: self.n_embd,
            n_heads: self.n_heads,
            num_key_value_heads: Some(self.n_heads),
            n_layers_in_prelude: self.n_layers_in_prelude,
            n_layers_in_recurrent_block: self.n_layers_in_recurrent_block,
            n_layers_in_coda: self.n_layers_in_coda,
            intermediate_size: self.intermediate_size,
            padded_vocab_size: vocab.div_ceil(64) * 64,
            vocab_size: Some(vocab),
            rope_base: self.rope_base,
            norm_eps: 1e-6,
            qk_bias: true,
            tie_embeddings: true,
            block_size: self.block_size,
            mean_recurrence: self.mean_recurrence,
            mean_backprop_depth: Some(self.mean_backprop_depth),
            init_values: Some(InitValues {
                std,
                embed_scale: (self.n_embd as f64).sqrt(),
                embedding: Some(std),
                out_proj: None,
            }),
            quantization: None,
        }
    }

    /// Learning rate at `step`: linear warmup, then a cosine down to `final_lr_fraction`.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_end = self.decay_steps.unwrap_or(self.steps);
        let fraction = match self.tail_lr_fraction {
            Some(tail) if step >= decay_end => cosine(
                self.final_lr_fraction,
                tail,
                step - decay_end,
                self.steps - decay_end,
            ),
            _ => cosine(
                1.0,
                self.final_lr_fraction,
                step - self.warmup_steps,
                decay_end.saturating_sub(self.warmup_steps),
            ),
        };
        self.learning_rate * fraction
    }

    /// Whether a checkpoint that `earlier` wrote after `steps_taken` steps can go on under this
    /// recipe: the same model, data and optimizer, and the same learning rate at every step taken,
    /// so that the result equals a run of this recipe from scratch. Names the first difference.
    pub fn continues(&self, earlier: &Recipe, steps_taken: usize) -> Result<(), String> {
        // Fields that change no step already taken.
        let comparable = Recipe {
            steps: earlier.steps,
            decay_steps: earlier.decay_steps,
            tail_lr_fraction: earlier.tail_lr_fraction,
            log_every: earlier.log_every,
            eval_every: earlier.eval_every,
            checkpoint_every: earlier.checkpoint_every,
            ..self.clone()
        };
        if comparable != *earlier {
            let (now, before) = (serde_json::json!(comparable), serde_json::json!(earlier));
            let field = now
                .as_object()
                .zip(before.as_object())
                .and_then(|(now, before)| {
                    now.iter()
                        .find(|&(k, v)| before.get(k) != Some(v))
                        .map(|(k, _)| k.clone())
                })
                .unwrap_or_default();
            return Err(format!(
                "`{field}` differs from the recipe that made the checkpoint"
            ));
        }
        match (0..steps_taken).find(|&s| self.learning_rate_at(s) != earlier.learning_rate_at(s)) {
            Some(step) => Err(format!(
                "the learning rate at step {step} differs from the checkpoint's schedule \
                 (set `decay_steps` to {} to keep it)",
                earlier.decay_steps.unwrap_or(earlier.steps)
            )),
            None => Ok(()),
        }
    }

    /// Iterations for one step, as the paper samples them: r = 1 + Poisson(lambda) with lambda
    /// log-normal around the mean; returns (iterations without gradient, iterations with gradient).
    pub fn sample_depth(&self, rng: &mut impl Rng) -> (usize, usize) {
        let sigma = 0.5f64;
        let mu = (self.mean_recurrence as f64).ln() - sigma * sigma / 2.0;
        let z = standard_normal(rng);
        let lambda = (mu + sigma * z).exp();
        let r = 1 + poisson(rng, lambda);
        let k = r.min(self.mean_backprop_depth);
        (r - k, k)
    }
}

/// From `from` to `to` along half a cosine, `done` of `span` steps in (then `to`).
fn cosine(from: f64, to: f64, done: usize, span: usize) -> f64 {
    let progress = (done as f64 / span.max(1) as f64).min(1.0);
    to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Plain language-model loss: every token counts the same.
fn default_answer_weight() -> f32 {
    1.0
}

fn is_zero(weight: &f32) -> bool {
    *weight == 0.0
}

fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Knuth's method: fine for the small rates used here.
fn poisson(rng: &mut impl Rng, lambda: f64) -> usize {
    let limit = (-lambda).exp();
    let mut product = rng.random::<f64>();
    let mut count = 0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    pub fn recipe() -> Recipe {
        serde_json::from_str(include_str!("../recipes/smoke.json")).unwrap()
    }

    #[test]
    fn depth_distribution_centres_on_the_mean() {
        let recipe = Recipe {
            mean_recurrence: 8,
            mean_backprop_depth: 4,
            ..recipe()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<(usize, usize)> = (0..4000).map(|_| recipe.sample_depth(&mut rng)).collect();
        let mean = draws.iter().map(|(n, k)| n + k).sum::<usize>() as f64 / draws.len() as f64;
        // E[r] = 1 + E[lambda] = 1 + mean.
        assert!((mean - 9.0).abs() < 0.3, "mean r {mean}");
        assert!(draws
            .iter()
            .all(|&(n, k)| (1..=4).contains(&k) && (n == 0 || k == 4)));
        assert!(draws.iter().any(|&(n, k)| n + k > 16) && draws.iter().any(|&(n, k)| n + k <= 3));
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let recipe = Recipe {
            steps: 100,
            warmup_steps: 10,
            learning_rate: 1e-3,
            final_lr_fraction: 0.1,
            ..recipe()
        };
        assert!(recipe.learning_rate_at(0) < recipe.learning_rate_at(5));
        assert!((recipe.learning_rate_at(9) - 1e-3).abs() < 1e-12);
        assert!(recipe.learning_rate_at(50) < 1e-3 && recipe.learning_rate_at(50) > 1e-4);
        assert!((recipe.learning_rate_at(99) - 1e-4).abs() < 1e-5);
    }

    #[test]
    fn a_finished_run_goes_on_only_where_its_steps_stay_the_same() {
        let finished = Recipe {
            steps: 100,
            ..recipe()
        };
        let longer = Recipe {
            steps: 300,
            decay_steps: Some(100),
            eval_every: 50,
            ..finished.clone()
        };
        assert_eq!(longer.continues(&finished, 100), Ok(()));
        let floor = longer.learning_rate * longer.final_lr_fraction;
        assert!((longer.learning_rate_at(100) - floor).abs() < 1e-12);
        assert!((longer.learning_rate_at(299) - floor).abs() < 1e-12);
        let annealed = Recipe {
            tail_lr_fraction: Some(0.01),
            ..longer.clone()
        };
        assert_eq!(annealed.continues(&finished, 100), Ok(()));
        assert!((annealed.learning_rate_at(100) - floor).abs() < 1e-12);
        let (middle, end) = (
            annealed.learning_rate_at(200),
            annealed.learning_rate_at(299),
        );
        assert!(
            middle < floor && middle > end && (end - annealed.learning_rate * 0.01).abs() < 1e-6,
            "{middle} {end}"
        );

        let stretched = Recipe {
            decay_steps: None,
            ..longer.clone()
        };
        let error = stretched.continues(&finished, 100).unwrap_err();
        assert!(error.contains("decay_steps` to 100"), "{error}");
        // Before the warmup ends the schedules agree, so an early checkpoint may go on.
        assert_eq!(
            stretched.continues(&finished, finished.warmup_steps),
            Ok(())
        );

        let other_data = Recipe {
            corpus_sentences: 401,
            ..longer
        };
        let error = other_data.continues(&finished, 100).unwrap_err();
        assert!(error.contains("`corpus_sentences`"), "{error}");
    }

    #[test]
    fn every_recipe_in_the_folder_reads_and_older_ones_keep_their_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let read: Result<Recipe, _> = serde_json::from_str(&text);
            let recipe = read.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !text.contains("\"filler\"") {
                assert_eq!(recipe.mix, Mix::word_lists(recipe.mix.filler_share.get()));
            }
            // Recipes name their starts from the repository's root, where training runs.
            if let Some(start) = recipe.start_recipe() {
                let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
                assert!(
                    Path::new(root).join(start).is_file(),
                    "{}: start_from {} is no recipe",
                    path.display(),
                    start.display()
                );
            }
        }
    }
}
