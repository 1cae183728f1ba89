//! `loopscope bench`: how fast a model thinks on a backend. Every model and backend asked for is
//! measured in one run, so that ratios between them mean something on a noisy machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use loopscope_engine::config::ModelConfig;
use loopscope_engine::folder::load_dir;
use loopscope_engine::kernels::Kernels;
use loopscope_engine::weights::weight_file_names;
use loopscope_engine::{
    block_on, EngineError, ExitCriterion, Record, RecurrentModel, Session, ThinkingSettings,
};

/// What to run each model with.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub steps: usize,
    pub kv_share: Option<usize>,
    pub seed: u64,
}

/// A model to measure: a folder as stored, or fresh random weights of a shape.
#[derive(Debug, Clone)]
pub enum Subject {
    Folder(PathBuf),
    Random(PathBuf),
}

impl Subject {
    fn name(&self) -> String {
        match self {
            Self::Folder(dir) => dir.display().to_string(),
            Self::Random(config) => format!("random weights, {}", config.display()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    /// `f32`, `bf16`, `q8`, ... as stored (random weights are f32).
    pub format: String,
    pub backend: String,
    /// Bytes of the weight files (random weights: the f32 parameters).
    pub weight_bytes: u64,
    pub load_s: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub core_iterations_per_s: f64,
    pub kv_bytes_per_token: f64,
    /// The process' peak resident memory (CPU), or the GPU memory in use at its highest sample.
    pub peak_memory_bytes: Option<u64>,
}

/// Loads `subject` on `B` and times a prefill and a decode.
pub fn measure<B: Kernels>(
    subject: &Subject,
    backend: &str,
    device: &B::Device,
    work: Workload,
    memory: impl Fn() -> Option<u64>,
) -> Result<Row, EngineError> {
    let started = Instant::now();
    let (model, format, weight_bytes) = match subject {
        Subject::Folder(dir) => {
            let loaded = load_dir::<B>(dir, device)?;
            let format = loaded.model.config.quantization.map_or_else(
                || stored_float_type(dir),
                |q| format!("{:?}", q.format).to_lowercase(),
            );
            (loaded.model, format, folder_bytes(dir)?)
        }
        Subject::Random(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let config = ModelConfig::from_json(&text)?;
            let model = RecurrentModel::<B>::init(&config, work.seed, device);
            let bytes = 4 * model.num_params() as u64;
            (model, "f32".to_string(), bytes)
        }
    };
    let load_s = started.elapsed().as_secs_f64();
    let config = &model.config;
    let needed = work.prompt_tokens + work.decode_tokens;
    if needed > config.block_size {
        return Err(EngineError::Setting(format!(
            "{needed} tokens do not fit the model's context of {}",
            config.block_size
        )));
    }
    let settings = ThinkingSettings {
        steps: work.steps,
        exit: ExitCriterion::None,
        kv_share: work.kv_share,
        seed: work.seed,
        ..ThinkingSettings::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(work.seed);
    let vocab = config
        .vocab_size
        .unwrap_or(config.padded_vocab_size)
        .min(config.padded_vocab_size) as u32;
    let prompt: Vec<u32> = (0..work.prompt_tokens)
        .map(|_| rng.random_range(0..vocab))
        .collect();
    // A short run first, a prompt and two decoded tokens: shader compilation and allocator
    // warm-up are not thinking. Decoding (one position reading a cache) compiles kernels of its
    // own; on an H200 they took about 0.45 s, more than 32 tokens' worth of thinking there.
    let mut warm = Session::new(&model, settings.clone(), Record::default())?;
    let mut next = block_on(warm.feed(&prompt[..prompt.len().min(2)]))?.next;
    for _ in 0..2 {
        next = block_on(warm.feed(&[next]))?.next;
    }
    drop(warm);

    let mut peak = memory();
    let mut session = Session::new(&model, settings, Record::default())?;
    let started = Instant::now();
    let mut step = block_on(session.feed(&prompt))?;
    let prefill_s = started.elapsed().as_secs_f64();
    peak = peak.max(memory());
    let started = Instant::now();
    for _ in 0..work.decode_tokens {
        step = block_on(session.feed(&[step.next]))?;
    }
    let decode_s = started.elapsed().as_secs_f64();
    peak = peak.max(memory());
    let per_s = |n: usize, s: f64| n as f64 / s.max(1e-9);
    Ok(Row {
        model: subject.name(),
        format,
        backend: backend.to_string(),
        weight_bytes,
        load_s,
        prefill_tokens_per_s: per_s(work.prompt_tokens, prefill_s),
        decode_tokens_per_s: per_s(work.decode_tokens, decode_s),
        core_iterations_per_s: per_s(work.decode_tokens * work.steps, decode_s),
        kv_bytes_per_token: session.cache_bytes() as f64 / session.len().max(1) as f64,
        peak_memory_bytes: peak,
    })
}

/// The float type of a folder's first weight tensor (the format of an unquantized checkpoint),
/// from the safetensors header alone: shards can be gigabytes.
fn stored_float_type(dir: &Path) -> String {
    use std::io::Read;
    let header = || -> Option<serde_json::Value> {
        let name = weight_file_names(dir).ok()?.into_iter().next()?;
        let mut file = std::fs::File::open(dir.join(name)).ok()?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).ok()?;
        let mut json = vec![0u8; usize::try_from(u64::from_le_bytes(len)).ok()?.min(1 << 26)];
        file.read_exact(&mut json).ok()?;
        serde_json::from_slice(&json).ok()
    };
    header()
        .and_then(|h| {
            h.as_object()?
                .iter()
                .find(|(name, _)| *name != "__metadata__")
                .and_then(|(_, info)| Some(info.get("dtype")?.as_str()?.to_lowercase()))
        })
        .unwrap_or_else(|| "?".into())
}

fn folder_bytes(dir: &Path) -> Result<u64, EngineError> {
    weight_file_names(dir)?
        .iter()
        .map(|name| {
            let path = dir.join(name);
            std::fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|source| EngineError::Io {
                    path: path.display().to_string(),
                    source,
                })
        })
        .sum()
}

/// The process' peak resident set (Linux), for the CPU backend.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The rows as a table, with each row's decode speed relative to the first row's.
pub fn table(rows: &[Row], work: Workload) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = format!(
        "prompt {} tokens, then {} tokens decoded at {} iterations each{}\n",
        work.prompt_tokens,
        work.decode_tokens,
        work.steps,
        work.kv_share
            .map_or(String::new(), |k| format!(", KV sharing k = {k}"))
    );
    out += &format!(
        "{:<44} {:>6} {:>5} {:>10} {:>7} {:>11} {:>10} {:>12} {:>8} {:>11} {:>11}\n",
        "model",
        "format",
        "on",
        "weights MB",
        "load s",
        "prefill t/s",
        "decode t/s",
        "core it/s",
        "x first",
        "KV KB/tok",
        "peak MB"
    );
    let base = rows.first().map_or(1.0, |r| r.decode_tokens_per_s);
    for r in rows {
        // The end of a long path says the most.
        let skip = r.model.chars().count().saturating_sub(44);
        let model: String = r.model.chars().skip(skip).collect();
        out += &format!(
            "{model:<44} {:>6} {:>5} {:>10.1} {:>7.2} {:>11.1} {:>10.2} {:>12.1} {:>8.2} {:>11.1} {:>11}\n",
            r.format,
            r.backend,
            mb(r.weight_bytes),
            r.load_s,
            r.prefill_tokens_per_s,
            r.decode_tokens_per_s,
            r.core_iterations_per_s,
            r.decode_tokens_per_s / base.max(1e-12),
            r.kv_bytes_per_token / 1e3,
            r.peak_memory_bytes
                .map_or("–".into(), |b| format!("{:.0}", mb(b))),
        );
    }
    out
}
