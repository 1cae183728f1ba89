//! `loopscope-train`: builds the corpus and tokenizer, trains a small recurrent-depth model with
//! the paper's recipe, and writes a model folder the engine loads.

mod data;
mod recipe;
mod trainer;
mod vocab;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::backend::{Autodiff, NdArray};
use clap::{Parser, ValueEnum};
use loopscope_engine::folder::TOKENIZER_FILE;
use loopscope_engine::kernels::Kernels;
use loopscope_engine::weights::{read_weight_files, write_safetensors, Checkpoint};
use loopscope_engine::RecurrentModel;
use thiserror::Error;

use crate::recipe::Recipe;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint: {0}")]
    Record(String),
    #[error("cannot resume the run in {0}")]
    Resume(String),
    #[error("data: {0}")]
    Data(String),
    #[error(transparent)]
    Vocab(#[from] vocab::VocabError),
    #[error(transparent)]
    Engine(#[from] loopscope_engine::EngineError),
    #[cfg(not(feature = "wgpu"))]
    #[error("this build has no wgpu backend: build with `--features wgpu`")]
    NoWgpu,
}

impl TrainError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
    fn record(e: burn::record::RecorderError) -> Self {
        Self::Record(e.to_string())
    }
}

/// Trains a model from scratch (or resumes the run in `--run-dir`) and writes the model folder.
#[derive(Parser)]
#[command(name = "loopscope-train", version)]
struct Args {
    /// The run's recipe (JSON): shape, data, schedule and seed.
    #[arg(long)]
    recipe: PathBuf,
    /// Model folder to write: config.json, model.safetensors, tokenizer.json, eval.jsonl, recipe.json.
    #[arg(long)]
    out: PathBuf,
    /// Checkpoints and validation log; an existing run there is resumed. Default: runs/NAME.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Stop after this step with a checkpoint; running again resumes exactly where it stopped.
    #[arg(long)]
    stop_at: Option<usize>,
    /// Held-out examples per family written to eval.jsonl, and as many filler sentences.
    #[arg(long, default_value_t = 100)]
    eval_per_family: usize,
    /// Where the steps run: the CPU (ndarray, repeatable bit for bit) or a GPU through wgpu
    /// (Vulkan, Metal or DirectX; lavapipe without a GPU), in builds with the `wgpu` feature.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendChoice,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum BackendChoice {
    Cpu,
    Wgpu,
}

fn main() -> ExitCode {
    match run(&Args::parse(), &[]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Trains the run `args` names. `above` holds the recipes (canonical paths) whose `start_from`
/// led here, to refuse a chain of recipes that comes back to itself.
fn run(args: &Args, above: &[PathBuf]) -> Result<(), TrainError> {
    let text =
        std::fs::read_to_string(&args.recipe).map_err(|e| TrainError::io(&args.recipe, e))?;
    let recipe: Recipe = serde_json::from_str(&text)
        .map_err(|e| TrainError::Data(format!("{}: {e}", args.recipe.display())))?;
    if let Some(stop) = args.stop_at.filter(|&stop| stop > recipe.steps) {
        return Err(TrainError::Data(format!(
            "{}: cannot stop at step {stop}, past its last ({})",
            args.recipe.display(),
            recipe.steps
        )));
    }
    if recipe.start_from_step.is_some() && recipe.start_recipe().is_none() {
        return Err(TrainError::Data(format!(
            "{}: start_from_step needs a recipe (a .json file) in start_from",
            args.recipe.display()
        )));
    }
    // Before this run's corpus exists: a start trained here needs the memory first.
    let start = match (recipe.start_recipe(), recipe.start_from.as_deref()) {
        (Some(from), _) => Some(train_start(from, recipe.start_from_step, args, above)?),
        (None, Some(folder)) => Some(Start::read(folder)?),
        (None, None) => None,
    };
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| default_run_dir(&args.out));
    std::fs::create_dir_all(&args.out).map_err(|e| TrainError::io(&args.out, e))?;

    eprintln!("corpus: {} sentences", recipe.corpus_sentences);
    let corpus = data::training_text(recipe.seed, recipe.corpus_sentences, &recipe.mix);
    let tokenizer = match &start {
        Some(start) => start.tokenizer.clone(),
        None => vocab::train_tokenizer(&corpus.text, recipe.vocab_size)?,
    };
    let vocab_size = tokenizer.get_vocab_size(true);
    // Validation text comes from another seed: the same distribution, other sentences.
    let validation = data::training_text(
        recipe.seed ^ 0x5e_ed0f_7a11,
        (recipe.corpus_sentences / 50).max(64),
        &recipe.mix,
    );
    let train_tokens = vocab::encode(&tokenizer, &corpus)?;
    let val_tokens = vocab::encode(&tokenizer, &validation)?;
    eprintln!(
        "tokenizer: {vocab_size} tokens; corpus {} tokens",
        train_tokens.tokens.len()
    );

    let folder = ModelFolder {
        dir: &args.out,
        recipe: &recipe,
        tokenizer: &tokenizer,
        eval_per_family: args.eval_per_family,
    };
    folder.write_fixed()?;
    let run = trainer::Run {
        recipe: &recipe,
        vocab: vocab_size,
        train_tokens: &train_tokens,
        val_tokens: &val_tokens,
        run_dir: &run_dir,
        stop_at: args.stop_at,
        start_weights: start.as_ref().map(|s| &s.weights),
    };
    let finished = match args.backend {
        BackendChoice::Cpu => {
            trainer::train::<Autodiff<NdArray>>(&run, &Default::default(), |m| {
                folder.write_weights(m)
            })?
        }
        BackendChoice::Wgpu => run_wgpu(&run, &folder)?,
    };
    if finished {
        eprintln!("wrote {}", args.out.display());
    } else {
        eprintln!(
            "stopped at step {}: {} holds that step's model; the same command resumes the run",
            args.stop_at.unwrap_or_default(),
            args.out.display()
        );
    }
    Ok(())
}

#[cfg(feature = "wgpu")]
fn run_wgpu(run: &trainer::Run, folder: &ModelFolder) -> Result<bool, TrainError> {
    trainer::train::<Autodiff<burn::backend::Wgpu>>(run, &Default::default(), |m| {
        folder.write_weights(m)
    })
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu(_: &trainer::Run, _: &ModelFolder) -> Result<bool, TrainError> {
    Err(TrainError::NoWgpu)
}

/// The model folder a run writes: the engine's layout plus the recipe and the held-out examples.
struct ModelFolder<'a> {
    dir: &'a Path,
    recipe: &'a Recipe,
    tokenizer: &'a tokenizers::Tokenizer,
    eval_per_family: usize,
}

impl ModelFolder<'_> {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), TrainError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| TrainError::io(&path, e))
    }

    /// The files that do not change during a run: recipe, tokenizer, held-out examples.
    fn write_fixed(&self) -> Result<(), TrainError> {
        self.write(
            "recipe.json",
            serde_json::to_string_pretty(self.recipe)
                .expect("plain data")
                .as_bytes(),
        )?;
        vocab::save(self.tokenizer, &self.dir.join("tokenizer.json"))?;
        let mut eval = Vec::new();
        data::write_eval_jsonl(
            &data::test_set(self.recipe.seed, self.eval_per_family, &self.recipe.mix),
            &data::filler_set(
                self.recipe.seed,
                self.eval_per_family,
                self.recipe.mix.filler,
            ),
            &mut eval,
        )
        .map_err(|e| TrainError::io(&self.dir.join("eval.jsonl"), e))?;
        self.write("eval.jsonl", &eval)
    }

    /// Config and weights of `model`: written at each validation, so that the folder can be
    /// evaluated or opened in the page while the run goes on, and at the end.
    fn write_weights<B: Kernels>(&self, model: &RecurrentModel<B>) -> Result<(), TrainError> {
        self.write(
            "config.json",
            serde_json::to_string_pretty(&model.config)
                .expect("plain data")
                .as_bytes(),
        )?;
        self.write(
            "model.safetensors",
            &write_safetensors(&model.named_tensors(), false)?,
        )
    }
}

/// Trains the recipe `from` into `runs/starts/NAME/model` (or resumes it there, or finds it
/// finished), so that a model made by going on from other runs retrains from scratch with one
/// command, and reads it as the start of the run `args` names. With `step`, that run stops
/// there, in `runs/starts/NAME-stepN`.
fn train_start(
    from: &Path,
    step: Option<usize>,
    args: &Args,
    above: &[PathBuf],
) -> Result<Start, TrainError> {
    let this = args
        .recipe
        .canonicalize()
        .map_err(|e| TrainError::io(&args.recipe, e))?;
    let from_path = from.canonicalize().map_err(|e| TrainError::io(from, e))?;
    let chain: Vec<PathBuf> = above.iter().cloned().chain([this]).collect();
    if chain.contains(&from_path) {
        return Err(TrainError::Data(format!(
            "{}: start_from {} leads back to a recipe already in the chain",
            args.recipe.display(),
            from.display()
        )));
    }
    let mut name = from.file_stem().unwrap_or_default().to_os_string();
    if let Some(step) = step {
        name.push(format!("-step{step}"));
    }
    let run_dir = Path::new("runs").join("starts").join(name);
    let out = run_dir.join("model");
    eprintln!(
        "start_from {}: training it first, in {}",
        from.display(),
        run_dir.display()
    );
    let start = Args {
        recipe: from.to_path_buf(),
        out: out.clone(),
        run_dir: Some(run_dir),
        stop_at: step,
        eval_per_family: args.eval_per_family,
        backend: args.backend,
    };
    run(&start, &chain)?;
    Start::read(&out)
}

/// The trained model a recipe's `start_from` names: its weights and its tokenizer, which the run
/// keeps (the embedding's rows are its tokens).
struct Start {
    weights: Checkpoint,
    tokenizer: tokenizers::Tokenizer,
}

impl Start {
    fn read(dir: &Path) -> Result<Self, TrainError> {
        let weights = Checkpoint::from_files(read_weight_files(dir)?)?;
        let path = dir.join(TOKENIZER_FILE);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
        Ok(Self { weights, tokenizer })
    }
}

/// `--out public/models/NAME` checkpoints in `runs/NAME`: outside the shipped folder, ignored by git.
fn default_run_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "model".into());
    Path::new("runs").join(name)
}
