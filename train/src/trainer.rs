//! The training loop: the paper's recipe on burn's autodiff, with resumable checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use loopscope_engine::cache::NoMemory;
use loopscope_engine::kernels::Kernels;
use loopscope_engine::state::random_initial_state;
// The engine's checkpoint is a model folder's weights; this module's is the run's training state.
use loopscope_engine::weights::Checkpoint as Weights;
use loopscope_engine::RecurrentModel;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;
use crate::vocab::TokenStream;
use crate::TrainError;

type Adam<B> = OptimizerAdaptor<burn::optim::AdamW, RecurrentModel<B>, B>;

/// Where a run stands: written with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    pub tokens_seen: usize,
}

/// One validation measurement: the loss at several fixed iteration counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    pub step: usize,
    pub losses: Vec<(usize, f32)>,
    /// The same on answer tokens only (empty when the windows held no answer).
    pub answer_losses: Vec<(usize, f32)>,
}

/// A training run: what it trains on and where it checkpoints; the backend is chosen by `train`.
pub struct Run<'a> {
    pub recipe: &'a Recipe,
    /// Size of the tokenizer's vocabulary.
    pub vocab: usize,
    pub train_tokens: &'a TokenStream,
    pub val_tokens: &'a TokenStream,
    pub run_dir: &'a Path,
    /// End the call after this step with a checkpoint.
    pub stop_at: Option<usize>,
    /// Weights to start from instead of a fresh initialisation (the recipe's `start_from`).
    pub start_weights: Option<&'a Weights>,
}

/// Trains from `train_tokens`, checkpointing under `run_dir`; resumes from the last checkpoint
/// there when one exists. `snapshot` receives the model at every validation, at the end, and
/// where `stop_at` stops the run. Returns whether the run finished, `false` when `stop_at`
/// ended it early (checkpointed, so that the next call resumes it exactly on the same backend).
pub fn train<B: AutodiffBackend + Kernels>(
    run: &Run,
    device: &B::Device,
    mut snapshot: impl FnMut(&RecurrentModel<B::InnerBackend>) -> Result<(), TrainError>,
) -> Result<bool, TrainError>
where
    B::InnerBackend: Kernels,
{
    let Run {
        recipe,
        vocab,
        train_tokens,
        val_tokens,
        run_dir,
        stop_at,
        start_weights,
    } = *run;
    let config = recipe.model_config(vocab);
    let needed = recipe.seq_len + 2;
    if train_tokens.tokens.len() < needed || val_tokens.tokens.len() < needed {
        return Err(TrainError::Data(format!(
            "the corpus is shorter than one sequence of {needed} tokens"
        )));
    }
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let mut model = match start_weights {
        // Loaded under this recipe's config: a folder of another shape fails here, naming the tensor.
        Some(weights) => RecurrentModel::<B>::load(&config, weights, device)?,
        None => RecurrentModel::<B>::init(&config, recipe.seed, device),
    };
    let mut optimizer: Adam<B> = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_weight_decay(recipe.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(recipe.grad_clip)))
        .init();
    let mut progress = Progress {
        step: 0,
        tokens_seen: 0,
    };
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let checkpoint = Checkpoint::new(run_dir);
    if checkpoint.exists() {
        model = model
            .load_file(checkpoint.model(), &recorder, device)
            .map_err(TrainError::record)?;
        let record = recorder
            .load(checkpoint.optimizer(), device)
            .map_err(TrainError::record)?;
        optimizer = optimizer.load_record(record);
        progress = checkpoint.progress()?;
        recipe
            .continues(&checkpoint.recipe()?, progress.step)
            .map_err(|why| TrainError::Resume(format!("{}: {why}", run_dir.display())))?;
        eprintln!("resuming at step {}", progress.step);
    }

    let tokens_per_step = recipe.batch_size * recipe.seq_len;
    let started = Instant::now();
    let first_step = progress.step;
    while progress.step < recipe.steps {
        if stop_at.is_some_and(|stop| progress.step >= stop) {
            // Stopped here, by this call or an earlier one: the folder shows this step's model.
            snapshot(&model.valid())?;
            return Ok(false);
        }
        let step = progress.step;
        // Each step's randomness comes from (seed, step) alone, so a resumed run continues exactly.
        let mut rng = ChaCha8Rng::seed_from_u64(
            recipe.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let batch = Batch::draw(train_tokens, recipe.batch_size, recipe.seq_len, &mut rng);
        let weights = batch.weights(recipe.answer_weight, 1.0, device);
        let (no_grad, with_grad) = recipe.sample_depth(&mut rng);
        let depth = Depth {
            no_grad,
            with_grad,
            loss_every_iteration: recipe.loss_every_iteration,
            first_iteration_weight: recipe.first_iteration_weight,
        };
        let loss = forward_loss(&model, &batch, weights, depth, &mut rng);
        let loss_value: f32 = burn::tensor::ElementConversion::elem(loss.clone().into_scalar());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(recipe.learning_rate_at(step), model, grads);
        progress.step += 1;
        progress.tokens_seen += tokens_per_step;

        if progress.step.is_multiple_of(recipe.log_every) || progress.step == recipe.steps {
            let elapsed = started.elapsed().as_secs_f64();
            let done = progress.step - first_step;
            let rate = (done * tokens_per_step) as f64 / elapsed;
            let eta = elapsed / done as f64 * (recipe.steps - progress.step) as f64;
            eprintln!(
                "step {:>6}/{} loss {loss_value:.4} r {:>2} ({no_grad}+{with_grad}) lr {:.2e} {rate:.0} tok/s eta {:.0}m",
                progress.step,
                recipe.steps,
                no_grad + with_grad,
                recipe.learning_rate_at(step),
                eta / 60.0
            );
        }
        if progress.step.is_multiple_of(recipe.eval_every) || progress.step == recipe.steps {
            let trained = model.valid();
            let validation = validate(&trained, recipe, val_tokens, progress.step);
            let shown: Vec<String> = validation
                .losses
                .iter()
                .map(
                    |(r, l)| match validation.answer_losses.iter().find(|(a, _)| a == r) {
                        Some((_, a)) => format!("r={r}: {l:.4} (answers {a:.4})"),
                        None => format!("r={r}: {l:.4}"),
                    },
                )
                .collect();
            eprintln!("validation at step {}: {}", progress.step, shown.join("  "));
            checkpoint.append_validation(&validation)?;
            snapshot(&trained)?;
        }
        if progress.step.is_multiple_of(recipe.checkpoint_every)
            || progress.step == recipe.steps
            || stop_at == Some(progress.step)
        {
            model
                .clone()
                .save_file(checkpoint.model(), &recorder)
                .map_err(TrainError::record)?;
            recorder
                .record(optimizer.to_record(), checkpoint.optimizer())
                .map_err(TrainError::record)?;
            checkpoint.save_recipe(recipe)?;
            checkpoint.save_progress(&progress)?;
        }
    }
    if first_step == recipe.steps {
        // Resumed after the last step: the folder may predate this call.
        snapshot(&model.valid())?;
    }
    Ok(true)
}

/// How one step iterates: `no_grad` iterations without gradient, then `with_grad` with it
/// (truncated backpropagation through depth), and which of those the loss reads.
#[derive(Clone, Copy)]
struct Depth {
    no_grad: usize,
    with_grad: usize,
    /// Every iteration with gradient, not only the last (the recipe's `loss_every_iteration`).
    loss_every_iteration: bool,
    /// Weight of the other tokens' loss after the first iteration (the recipe's
    /// `first_iteration_weight`); 0 leaves it out.
    first_iteration_weight: f32,
}

/// Weighted cross-entropy of the model's prediction after the step's iterations (or the mean of
/// it over the iterations with gradient), plus, where the depth asks for it, the other tokens'
/// cross-entropy after the first iteration from the same random state.
fn forward_loss<B: AutodiffBackend + Kernels>(
    model: &RecurrentModel<B>,
    batch: &Batch,
    weights: Tensor<B, 2>,
    depth: Depth,
    rng: &mut impl Rng,
) -> Tensor<B, 1>
where
    B::InnerBackend: Kernels,
{
    let device = weights.device();
    let e = model.config.n_embd;
    let embedded = model.prelude_forward(&batch.inputs, batch.shape, 0, &mut NoMemory);
    let [b, s] = batch.shape;
    let initial = random_initial_state(rng, b * s, &model.config, 1.0);
    let initial =
        Tensor::<B::InnerBackend, 3>::from_data(TensorData::new(initial, [b, s, e]), &device);
    let mut state = initial.clone();
    if depth.no_grad > 0 {
        let frozen = model.valid();
        let frozen_embedded = embedded.clone().inner();
        for iteration in 0..depth.no_grad {
            state =
                frozen.core_forward(state, frozen_embedded.clone(), iteration, 0, &mut NoMemory);
        }
    }
    let mut state = Tensor::<B, 3>::from_inner(state);
    let targets = batch.targets(&device);
    let last = depth.no_grad + depth.with_grad - 1;
    let mut losses = Vec::new();
    for iteration in depth.no_grad..=last {
        state = model.core_forward(state, embedded.clone(), iteration, 0, &mut NoMemory);
        if depth.loss_every_iteration || iteration == last {
            let logits = model.coda_forward(state.clone(), 0, &mut NoMemory);
            losses.push(cross_entropy(logits, targets.clone(), weights.clone()));
        }
    }
    let read = losses.len() as f32;
    let loss = Tensor::cat(losses, 0).sum() / read;
    // A window of answers alone has no other token to weigh (and 0 / 0 would poison the step).
    if depth.first_iteration_weight == 0.0 || batch.in_answer.iter().all(|&answer| answer) {
        return loss;
    }
    let first = model.core_forward(Tensor::from_inner(initial), embedded, 0, 0, &mut NoMemory);
    let logits = model.coda_forward(first, 0, &mut NoMemory);
    let others = batch.weights(0.0, 1.0, &device);
    loss + cross_entropy(logits, targets, others) * depth.first_iteration_weight
}

/// The mean of each position's negative log-likelihood, weighted by `weights` ([batch, seq]).
fn cross_entropy<B: Kernels>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
) -> Tensor<B, 1> {
    weighted_mean(nll(logits, targets), weights)
}

/// Each position's negative log-likelihood of its target, [batch, seq].
fn nll<B: Kernels>(logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [b, s, _] = logits.dims();
    let picked = log_softmax(logits, 2).gather(2, targets.reshape([b, s, 1]));
    picked.reshape([b, s]).neg()
}

fn weighted_mean<B: Kernels>(values: Tensor<B, 2>, weights: Tensor<B, 2>) -> Tensor<B, 1> {
    let total = weights.clone().sum();
    (values * weights).sum() / total
}

/// Random windows of the token stream, each starting at a sentence: inputs and the same windows
/// shifted by one (host ids, row-major [batch, seq]), and which targets are answer tokens.
struct Batch {
    shape: [usize; 2],
    inputs: Vec<u32>,
    targets: Vec<i64>,
    in_answer: Vec<bool>,
}

impl Batch {
    fn draw(stream: &TokenStream, batch_size: usize, seq_len: usize, rng: &mut impl Rng) -> Self {
        let mut batch = Batch {
            shape: [batch_size, seq_len],
            inputs: Vec::with_capacity(batch_size * seq_len),
            targets: Vec::with_capacity(batch_size * seq_len),
            in_answer: Vec::with_capacity(batch_size * seq_len),
        };
        let tokens = &stream.tokens;
        let last = tokens.len() - seq_len - 1;
        let usable = stream.starts.partition_point(|&s| s <= last).max(1);
        for _ in 0..batch_size {
            let start = stream.starts[rng.random_range(0..usable)].min(last);
            let targets = start + 1..start + seq_len + 1;
            batch
                .inputs
                .extend_from_slice(&tokens[start..start + seq_len]);
            batch
                .targets
                .extend(tokens[targets.clone()].iter().map(|&t| i64::from(t)));
            batch
                .in_answer
                .extend_from_slice(&stream.in_answer[targets]);
        }
        batch
    }

    fn targets<B: Kernels>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(self.targets.clone(), self.shape), device)
    }

    /// Each target's weight in the loss: `answer` for answer tokens, `other` for the rest.
    fn weights<B: Kernels>(&self, answer: f32, other: f32, device: &B::Device) -> Tensor<B, 2> {
        let weights = self
            .in_answer
            .iter()
            .map(|&inside| if inside { answer } else { other })
            .collect();
        Tensor::from_data(TensorData::new(weights, self.shape), device)
    }
}

/// Validation loss at r = 1, the mean and twice the mean, on fixed windows, over all tokens and
/// over answer tokens alone: the gap between r = 1 and r = mean is the sign that the model uses
/// its iterations.
fn validate<B: Kernels>(
    model: &RecurrentModel<B>,
    recipe: &Recipe,
    val_tokens: &TokenStream,
    step: usize,
) -> Validation {
    let device = model.device();
    let mean = recipe.mean_recurrence;
    let batches = 4;
    let mut losses = Vec::new();
    let mut answer_losses = Vec::new();
    for r in [1, mean, 2 * mean] {
        let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed.wrapping_add(17));
        // Answer losses average over the batches that hold an answer (a tiny corpus may not).
        let (mut all, mut answers, mut answered) = (0.0, 0.0, 0);
        for _ in 0..batches {
            let batch = Batch::draw(val_tokens, recipe.batch_size, recipe.seq_len, &mut rng);
            let [b, s] = batch.shape;
            let embedded = model.prelude_forward(&batch.inputs, batch.shape, 0, &mut NoMemory);
            let initial = random_initial_state(&mut rng, b * s, &model.config, 1.0);
            let mut state = Tensor::<B, 3>::from_data(
                TensorData::new(initial, [b, s, model.config.n_embd]),
                &device,
            );
            for iteration in 0..r {
                state = model.core_forward(state, embedded.clone(), iteration, 0, &mut NoMemory);
            }
            // One log-softmax serves both means.
            let losses = nll(
                model.coda_forward(state, 0, &mut NoMemory),
                batch.targets(&device),
            );
            let scalar = |loss: Tensor<B, 1>| {
                burn::tensor::ElementConversion::elem::<f32>(loss.into_scalar())
            };
            all += scalar(weighted_mean(
                losses.clone(),
                batch.weights(1.0, 1.0, &device),
            ));
            if batch.in_answer.contains(&true) {
                answers += scalar(weighted_mean(losses, batch.weights(1.0, 0.0, &device)));
                answered += 1;
            }
        }
        losses.push((r, all / batches as f32));
        if answered > 0 {
            answer_losses.push((r, answers / answered as f32));
        }
    }
    Validation {
        step,
        losses,
        answer_losses,
    }
}

/// Files of a run's latest checkpoint.
struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    fn new(run_dir: &Path) -> Self {
        Self {
            dir: run_dir.to_path_buf(),
        }
    }
    fn model(&self) -> PathBuf {
        self.dir.join("model")
    }
    fn optimizer(&self) -> PathBuf {
        self.dir.join("optimizer")
    }
    fn progress_file(&self) -> PathBuf {
        self.dir.join("progress.json")
    }
    fn exists(&self) -> bool {
        self.progress_file().exists()
    }
    fn progress(&self) -> Result<Progress, TrainError> {
        read_json(&self.progress_file())
    }
    /// The recipe the checkpoint was made under: a resumed run must continue it.
    fn recipe(&self) -> Result<Recipe, TrainError> {
        read_json(&self.dir.join("recipe.json"))
    }
    fn save_recipe(&self, recipe: &Recipe) -> Result<(), TrainError> {
        write_json(&self.dir.join("recipe.json"), recipe)
    }
    fn save_progress(&self, progress: &Progress) -> Result<(), TrainError> {
        write_json(&self.progress_file(), progress)
    }
    /// Validation losses accumulate in validation.jsonl, one line per measurement.
    fn append_validation(&self, validation: &Validation) -> Result<(), TrainError> {
        let path = self.dir.join("validation.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        writeln!(
            file,
            "{}",
            serde_json::to_string(validation).expect("plain data")
        )
        .map_err(|e| TrainError::io(&path, e))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("plain data"))
        .map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};

    use super::*;

    #[test]
    fn weights_pick_which_positions_count() {
        let device = Default::default();
        // Two positions over a vocabulary of two: the first is sure of its target, the second
        // splits evenly, so their losses are ~0 and ln 2.
        let logits = Tensor::<NdArray, 3>::from_data(
            TensorData::new(vec![20.0f32, -20.0, 0.0, 0.0], [1, 2, 2]),
            &device,
        );
        let targets =
            Tensor::<NdArray, 2, Int>::from_data(TensorData::new(vec![0i64, 1], [1, 2]), &device);
        let loss = |w: [f32; 2]| {
            let weights = Tensor::from_data(TensorData::new(w.to_vec(), [1, 2]), &device);
            cross_entropy(logits.clone(), targets.clone(), weights).into_scalar()
        };
        let ln2 = std::f32::consts::LN_2;
        assert!((loss([1.0, 1.0]) - ln2 / 2.0).abs() < 1e-5);
        assert!((loss([0.0, 1.0]) - ln2).abs() < 1e-5);
        assert!(loss([1.0, 0.0]).abs() < 1e-5);
        assert!((loss([1.0, 3.0]) - 3.0 * ln2 / 4.0).abs() < 1e-5);
    }

    /// A fresh model of the smoke recipe's shape and a batch of two windows of five tokens, the
    /// first three targets of each marked as answers where `answers` says so.
    fn model_and_batch(answers: bool) -> (RecurrentModel<Autodiff<NdArray>>, Batch) {
        let recipe: Recipe =
            serde_json::from_str(include_str!("../recipes/smoke.json")).expect("smoke recipe");
        let model = RecurrentModel::init(&recipe.model_config(40), 3, &Default::default());
        let batch = Batch {
            shape: [2, 5],
            inputs: (0..10).map(|i| i * 3 % 40).collect(),
            targets: (0..10).map(|i| i64::from(i * 7 % 40)).collect(),
            in_answer: (0..10).map(|i| answers && i % 5 < 3).collect(),
        };
        (model, batch)
    }

    /// The step's loss with the answers weighing `answer_weight`; the same seed draws the same
    /// initial state, so `with_grad = j` after no iteration without gradient reads iteration j.
    fn loss(
        model: &RecurrentModel<Autodiff<NdArray>>,
        batch: &Batch,
        answer_weight: f32,
        depth: Depth,
    ) -> f32 {
        let weights = batch.weights(answer_weight, 1.0, &Default::default());
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        forward_loss(model, batch, weights, depth, &mut rng).into_scalar()
    }

    fn depth(no_grad: usize, with_grad: usize) -> Depth {
        Depth {
            no_grad,
            with_grad,
            loss_every_iteration: false,
            first_iteration_weight: 0.0,
        }
    }

    #[test]
    fn loss_every_iteration_is_the_mean_over_the_window() {
        let (model, batch) = model_and_batch(false);
        let every = |no_grad, with_grad| Depth {
            loss_every_iteration: true,
            ..depth(no_grad, with_grad)
        };
        let each: Vec<f32> = (1..=4)
            .map(|j| loss(&model, &batch, 1.0, depth(0, j)))
            .collect();
        assert!(
            each.windows(2).all(|w| (w[0] - w[1]).abs() > 1e-6),
            "{each:?}"
        );
        let window = (each[1] + each[2] + each[3]) / 3.0;
        assert!((loss(&model, &batch, 1.0, every(1, 3)) - window).abs() < 1e-5);
        assert!((loss(&model, &batch, 1.0, depth(1, 3)) - each[3]).abs() < 1e-5);
        assert!((loss(&model, &batch, 1.0, every(0, 1)) - each[0]).abs() < 1e-5);
    }

    #[test]
    fn first_iteration_term_weighs_the_other_tokens_after_one_iteration() {
        let (model, batch) = model_and_batch(true);
        let with_first = |weight| Depth {
            first_iteration_weight: weight,
            ..depth(1, 3)
        };
        let plain = loss(&model, &batch, 8.0, depth(1, 3));
        // The other tokens' loss after one iteration: the answers weigh nothing.
        let others_first = loss(&model, &batch, 0.0, depth(0, 1));
        let all_first = loss(&model, &batch, 1.0, depth(0, 1));
        assert!((others_first - all_first).abs() > 1e-4);
        for weight in [0.5, 2.0] {
            let expected = plain + weight * others_first;
            let got = loss(&model, &batch, 8.0, with_first(weight));
            assert!((got - expected).abs() < 1e-4, "{got} against {expected}");
        }
        // Windows of answers alone have nothing for the term to weigh.
        let mut answers_only = batch;
        answers_only.in_answer = vec![true; 10];
        let plain = loss(&model, &answers_only, 8.0, depth(1, 3));
        assert_eq!(loss(&model, &answers_only, 8.0, with_first(2.0)), plain);
    }
}
