//! `loopscope`: generate text while recording how the model thinks, and check the engine
//! against the reference's golden vectors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
mod bench;
mod svg;

use bench::{Subject, Workload};

use loopscope_engine::dynamics::{Census, Dynamics, TokenKind};
use loopscope_engine::folder::{load_dir, LoadedModel};
use loopscope_engine::golden::GoldenCase;
use loopscope_engine::kernels::Kernels;
use loopscope_engine::quantize::{quantize_folder, SHARD_BYTES};
use loopscope_engine::trace::{Exit, PositionTrace};
use loopscope_engine::{
    block_on, EngineError, ExitCriterion, Finish, Record, Sampling, Session, ThinkingSettings,
    Tokenizer, Trace,
};
use loopscope_engine::{eval, pca, quant};

#[derive(Parser)]
#[command(
    name = "loopscope",
    version,
    about = "Watch a recurrent-depth language model think"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate from a prompt, streaming tokens with the number of iterations each one used.
    Generate(GenerateArgs),
    /// Generate, then name what every token's trajectory did (converged, orbit, slider,
    /// unsettled) with the numbers behind it, and count the shapes per kind of token.
    Trace {
        #[command(flatten)]
        generation: GenerateArgs,
        /// Print the labels and their numbers as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Reproduce every array of a golden folder and report the largest error of each.
    Golden {
        /// Folder with config.json, model.safetensors, golden.safetensors and manifest.json.
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
    },
    /// Held-out accuracy per family against iteration count, and iterations used under an exit.
    Eval(EvalArgs),
    /// Draw the PCA of ln_f(s_i) for every token of a text as an SVG, highlighting chosen tokens.
    Trajectory(TrajectoryArgs),
    /// Time prefill and decoding of models on backends, side by side in one run.
    Bench(BenchArgs),
    /// Convert a model folder's matrices to q8 or q4, tensor by tensor.
    Quantize {
        /// A folder in the engine's layout (f32, bf16 or f16; single file or shards).
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long = "out")]
        output: PathBuf,
        #[arg(long, value_enum)]
        format: QuantFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum QuantFormat {
    Q8,
    Q4,
}

#[derive(Parser)]
struct BenchArgs {
    /// A model folder to measure, as stored; repeatable.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// A config.json whose shape is measured with random f32 weights; repeatable.
    #[arg(long)]
    random: Vec<PathBuf>,
    /// Backends to measure every model on.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu")]
    backend: Vec<BackendChoice>,
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    /// Tokens decoded one at a time after the prompt.
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// Core iterations per token.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// KV sharing: iteration i uses cache slot i mod K.
    #[arg(long, value_name = "K")]
    kv_share: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the rows as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Parser)]
struct TrajectoryArgs {
    #[arg(long)]
    model: PathBuf,
    /// The text; each token thinks on its own, as in decoding.
    #[arg(long)]
    text: String,
    /// Iterations per token.
    #[arg(long, default_value_t = 32)]
    steps: usize,
    /// Token indices (as printed) to draw in colour.
    #[arg(long, value_delimiter = ',')]
    highlight: Vec<usize>,
    /// The pair of principal components to plot, counted from 1.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    components: Vec<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    svg: PathBuf,
}

#[derive(Parser)]
struct EvalArgs {
    /// Model folder with config.json, model.safetensors, tokenizer.json and eval.jsonl.
    #[arg(long)]
    model: PathBuf,
    /// Examples to use instead of the folder's eval.jsonl.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Use only the first N examples of each family.
    #[arg(long)]
    per_family: Option<usize>,
    /// Iteration counts to measure accuracy at; the model's mean recurrence is always added.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    steps: Vec<usize>,
    /// Exit criterion for the iteration-use measurement.
    #[arg(long, default_value = "kl:1e-3")]
    exit: ExitCriterion,
    /// Iteration cap under the exit criterion.
    #[arg(long, default_value_t = 64)]
    max_steps: usize,
    /// Spread of each token's random initial state, for every measurement (0 starts from zero).
    #[arg(long, default_value_t = 1.0)]
    init_scale: f32,
    /// Start each token from the previous token's final state, for every measurement.
    #[arg(long)]
    warm_start: bool,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendChoice,
}

#[derive(Parser)]
struct GenerateArgs {
    /// Model folder: config.json, model.safetensors (or an index with shards), tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (needs the folder's tokenizer.json).
    #[arg(
        long,
        conflicts_with = "prompt_ids",
        required_unless_present = "prompt_ids"
    )]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids, for folders without a tokenizer.
    #[arg(long, value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Maximum core iterations per token (default: the model's mean recurrence).
    #[arg(long)]
    steps: Option<usize>,
    /// Fewest iterations before an exit.
    #[arg(long, default_value_t = 0)]
    min_steps: usize,
    /// Exit criterion: none, kl[:t], latent-diff[:t], entropy-diff[:t], cosine[:t], argmax[:n].
    #[arg(long, default_value = "none")]
    exit: ExitCriterion,
    /// Fixed iteration count for a position: POSITION=STEPS, repeatable.
    #[arg(long = "override", value_parser = parse_override)]
    overrides: Vec<(usize, usize)>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    init_scale: f32,
    /// Start each token from the previous token's final state (continuous chain of thought).
    #[arg(long)]
    warm_start: bool,
    /// KV sharing: core iteration i uses cache slot i mod K (default: one slot per iteration).
    #[arg(long, value_name = "K")]
    kv_share: Option<usize>,
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendChoice,
    /// Write the full trace (states, normed states, deltas, exit values, top-5 lens) as JSON.
    #[arg(long)]
    trace: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum BackendChoice {
    Cpu,
    Wgpu,
}

fn parse_override(text: &str) -> Result<(usize, usize), String> {
    let (pos, steps) = text.split_once('=').ok_or("expected POSITION=STEPS")?;
    Ok((
        pos.trim().parse().map_err(|_| "bad position")?,
        steps.trim().parse().map_err(|_| "bad step count")?,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let backend = match &cli.command {
        Command::Generate(args)
        | Command::Trace {
            generation: args, ..
        } => args.backend,
        Command::Golden { backend, .. } => *backend,
        Command::Eval(args) => args.backend,
        // Bench runs every backend it is asked for itself.
        Command::Trajectory(_) | Command::Quantize { .. } | Command::Bench(_) => BackendChoice::Cpu,
    };
    report(match backend {
        BackendChoice::Cpu => run::<burn::backend::NdArray>(&cli.command, &Default::default()),
        BackendChoice::Wgpu => run_wgpu(&cli.command),
    })
}

fn report(outcome: Result<ExitCode, EngineError>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "wgpu")]
fn run_wgpu(command: &Command) -> Result<ExitCode, EngineError> {
    run::<burn::backend::Wgpu>(command, &Default::default())
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu(_: &Command) -> Result<ExitCode, EngineError> {
    Err(no_wgpu())
}

#[cfg(not(feature = "wgpu"))]
fn no_wgpu() -> EngineError {
    EngineError::Setting("this build has no wgpu backend; rebuild with `--features wgpu`".into())
}

fn bench(args: &BenchArgs) -> Result<ExitCode, EngineError> {
    let subjects: Vec<Subject> = args
        .model
        .iter()
        .cloned()
        .map(Subject::Folder)
        .chain(args.random.iter().cloned().map(Subject::Random))
        .collect();
    if subjects.is_empty() {
        return Err(EngineError::Setting(
            "name at least one --model folder or --random config.json".into(),
        ));
    }
    let work = Workload {
        prompt_tokens: args.prompt_tokens.max(1),
        decode_tokens: args.tokens,
        steps: args.steps,
        kv_share: args.kv_share,
        seed: args.seed,
    };
    let mut rows = Vec::new();
    for &backend in &args.backend {
        for subject in &subjects {
            let row = match backend {
                BackendChoice::Cpu => bench::measure::<burn::backend::NdArray>(
                    subject,
                    "cpu",
                    &Default::default(),
                    work,
                    bench::peak_resident_bytes,
                ),
                BackendChoice::Wgpu => bench_wgpu(subject, work),
            }?;
            eprintln!(
                "{} on {}: {:.2} tokens/s",
                row.model, row.backend, row.decode_tokens_per_s
            );
            rows.push(row);
        }
    }
    print!("{}", bench::table(&rows, work));
    if let Some(path) = &args.json {
        write_json(path, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "wgpu")]
fn bench_wgpu(subject: &Subject, work: Workload) -> Result<bench::Row, EngineError> {
    use burn::backend::wgpu::{WgpuDevice, WgpuRuntime};
    use burn_cubecl::cubecl::Runtime;
    let device = WgpuDevice::default();
    let in_use = || {
        let usage = WgpuRuntime::client(&device).memory_usage().ok()?;
        Some(usage.bytes_in_use)
    };
    bench::measure::<burn::backend::Wgpu>(subject, "wgpu", &device, work, in_use)
}

#[cfg(not(feature = "wgpu"))]
fn bench_wgpu(_: &Subject, _: Workload) -> Result<bench::Row, EngineError> {
    Err(no_wgpu())
}

fn run<B: Kernels>(command: &Command, device: &B::Device) -> Result<ExitCode, EngineError> {
    match command {
        Command::Generate(args) => generate::<B>(args, device),
        Command::Trace { generation, json } => trace::<B>(generation, *json, device),
        Command::Golden { dir, .. } => golden::<B>(dir, device),
        Command::Eval(args) => eval::<B>(args, device),
        Command::Trajectory(args) => trajectory::<B>(args, device),
        Command::Bench(args) => bench(args),
        Command::Quantize {
            input,
            output,
            format,
        } => quantize(input, output, *format),
    }
}

fn quantize(input: &Path, output: &Path, format: QuantFormat) -> Result<ExitCode, EngineError> {
    let format = match format {
        QuantFormat::Q8 => quant::Format::Q8,
        QuantFormat::Q4 => quant::Format::Q4,
    };
    let mb = |b: u64| b as f64 / 1e6;
    let converted = quantize_folder(input, output, format, SHARD_BYTES, |done, total, name| {
        let filled = (30 * done / total.max(1)) as usize;
        eprint!(
            "\r[{}{}] {:5.1}% {:.1}/{:.1} MB {name:<48.48}",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            100.0 * done as f64 / total.max(1) as f64,
            mb(done),
            mb(total)
        );
    })?;
    eprintln!();
    println!(
        "{} tensors ({} quantized): {:.1} MB -> {:.1} MB in {}",
        converted.tensors,
        converted.quantized,
        mb(converted.bytes_in),
        mb(converted.bytes_out),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn trajectory<B: Kernels>(
    args: &TrajectoryArgs,
    device: &B::Device,
) -> Result<ExitCode, EngineError> {
    let &[a, b] = args.components.as_slice() else {
        return Err(EngineError::Setting(
            "--components takes two numbers, such as 1,2".into(),
        ));
    };
    if a == 0 || b == 0 {
        return Err(EngineError::Setting("components are counted from 1".into()));
    }
    let loaded = load_dir::<B>(&args.model, device)?;
    let tokenizer = required_tokenizer(&loaded)?;
    let tokens = tokenizer.encode(&args.text)?;
    let settings = ThinkingSettings {
        steps: args.steps,
        seed: args.seed,
        ..ThinkingSettings::default()
    };
    let record = Record {
        normed: true,
        ..Record::default()
    };
    let mut session = Session::new(&loaded.model, settings, record)?;
    for &token in &tokens {
        block_on(session.feed(&[token]))?;
    }
    let trace = session.into_trace();
    let paths: Vec<Vec<&[f32]>> = trace
        .positions
        .iter()
        .map(|p| {
            p.initial_normed
                .iter()
                .map(Vec::as_slice)
                .chain(p.steps.iter().filter_map(|s| s.normed.as_deref()))
                .collect()
        })
        .collect();
    let rows: Vec<&[f32]> = paths.iter().flatten().copied().collect();
    let pca = pca::Pca::fit(&rows, loaded.model.config.n_embd, a.max(b));
    if pca.components.len() < a.max(b) {
        return Err(EngineError::Setting(format!(
            "the states span only {} components",
            pca.components.len()
        )));
    }
    let total: f32 = pca.variances.iter().sum();
    for (i, &token) in tokens.iter().enumerate() {
        println!("{i:>3} {:?}", tokenizer.token_text(token));
    }
    let drawn: Vec<svg::Path> = paths
        .iter()
        .enumerate()
        .map(|(i, rows)| svg::Path {
            label: format!("{:?}", tokenizer.token_text(tokens[i])),
            points: rows
                .iter()
                .map(|row| pca.project(row))
                .map(|p| (p[a - 1], p[b - 1]))
                .collect(),
            highlighted: args.highlight.contains(&i),
        })
        .collect();
    let title = format!(
        "ln_f(s_i), {} iterations per token: {:?}",
        args.steps, args.text
    );
    let label = |c: usize| {
        format!(
            "PC{c} ({:.0}% of the first {})",
            100.0 * pca.variances[c - 1] / total,
            pca.variances.len()
        )
    };
    let svg = svg::trajectories(&title, &label(a), &label(b), &drawn);
    write_file(&args.svg, svg.into_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn eval<B: Kernels>(args: &EvalArgs, device: &B::Device) -> Result<ExitCode, EngineError> {
    let loaded = load_dir::<B>(&args.model, device)?;
    let tokenizer = required_tokenizer(&loaded)?;
    let path = args
        .examples
        .clone()
        .unwrap_or_else(|| args.model.join("eval.jsonl"));
    let text = std::fs::read_to_string(&path).map_err(|source| EngineError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut examples = eval::read_examples(&text)?;
    if let Some(n) = args.per_family {
        examples = eval::sample(examples, n);
    }
    let mut steps = args.steps.clone();
    steps.push(loaded.model.config.mean_recurrence);
    steps.sort_unstable();
    steps.dedup();
    let report = block_on(eval::evaluate(
        &loaded.model,
        tokenizer,
        &examples,
        &steps,
        args.exit,
        args.max_steps,
        eval::Start {
            init_scale: args.init_scale,
            warm_start: args.warm_start,
        },
    ))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn golden<B: Kernels>(dir: &std::path::Path, device: &B::Device) -> Result<ExitCode, EngineError> {
    let loaded = load_dir::<B>(dir, device)?;
    let case = GoldenCase::open(dir)?;
    let checks = block_on(case.check(&loaded.model))?;
    let mut all_passed = true;
    for check in &checks {
        let verdict = if check.passed() { "ok" } else { "FAIL" };
        all_passed &= check.passed();
        println!(
            "{:<16} max abs error {:.3e} (tolerance {:.0e})  {verdict}",
            check.name, check.max_abs_error, check.tolerance
        );
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The prompt as token ids, from its text or its ids.
fn prompt_ids(args: &GenerateArgs, tokenizer: Option<&Tokenizer>) -> Result<Vec<u32>, EngineError> {
    match (&args.prompt, &args.prompt_ids) {
        (Some(text), _) => tokenizer
            .ok_or_else(|| {
                EngineError::Tokenizer(
                    "the model folder has no tokenizer.json; pass --prompt-ids".into(),
                )
            })?
            .encode(text),
        (None, Some(ids)) => Ok(ids.clone()),
        (None, None) => Err(EngineError::EmptyPrompt),
    }
}

fn thinking_settings(args: &GenerateArgs, mean_recurrence: usize) -> ThinkingSettings {
    ThinkingSettings {
        steps: args.steps.unwrap_or(mean_recurrence),
        min_steps: args.min_steps,
        exit: args.exit,
        overrides: args.overrides.iter().copied().collect(),
        init_scale: args.init_scale,
        warm_start: args.warm_start,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
        },
        seed: args.seed,
        kv_share: args.kv_share,
    }
}

/// Runs a whole generation, calling `each` with every generated position.
fn run_generation<B: Kernels>(
    loaded: &LoadedModel<B>,
    args: &GenerateArgs,
    record: Record,
    mut each: impl FnMut(&PositionTrace),
) -> Result<(Vec<u32>, Trace, Finish), EngineError> {
    let tokenizer = loaded.tokenizer.as_ref();
    let prompt = prompt_ids(args, tokenizer)?;
    let settings = thinking_settings(args, loaded.model.config.mean_recurrence);
    // `--trace FILE` promises the whole trace, whatever the command itself reads.
    let record = if args.trace.is_some() {
        Record::everything(5)
    } else {
        record
    };
    let mut session = Session::new(&loaded.model, settings, record)?;
    let stop: Vec<u32> = tokenizer
        .and_then(|t| t.token_id("<eos>"))
        .into_iter()
        .collect();
    let finish = block_on(
        session.generate(&prompt, args.max_tokens, &stop, async |position| {
            each(position);
            true
        }),
    )?;
    let trace = session.into_trace();
    if let Some(path) = &args.trace {
        write_file(
            path,
            serde_json::to_vec(&trace).map_err(|e| EngineError::Setting(e.to_string()))?,
        )?;
    }
    Ok((prompt, trace, finish))
}

fn generate<B: Kernels>(args: &GenerateArgs, device: &B::Device) -> Result<ExitCode, EngineError> {
    let loaded = load_dir::<B>(&args.model, device)?;
    let tokenizer = loaded.tokenizer.as_ref();
    let text = |id: u32| tokenizer.map_or_else(|| format!("<{id}>"), |t| t.token_text(id));
    let mut stdout = std::io::stdout();
    let (prompt, trace, finish) = run_generation(&loaded, args, Record::default(), |position| {
        let next = position
            .next
            .expect("generate reports positions that produced a token");
        let exit = match position.exit {
            Exit::Converged => "converged",
            Exit::MaxSteps => "max steps",
            Exit::Fixed => "fixed",
        };
        let _ = writeln!(
            stdout,
            "{:>4} iterations  {exit:<9}  {:?}",
            position.iterations,
            text(next)
        );
    })?;
    let generated: Vec<u32> = trace.generated().filter_map(|p| p.next).collect();
    if let Some(t) = tokenizer {
        println!("{}{}", t.decode(&prompt)?, t.decode(&generated)?);
    }
    eprintln!(
        "{} tokens generated ({}); KV cache {:.1} KB a token",
        generated.len(),
        finish.reason(),
        trace.cache_bytes_per_token() / 1e3
    );
    Ok(ExitCode::SUCCESS)
}

/// One position of `loopscope trace`'s report.
#[derive(serde::Serialize)]
struct LabelledPosition {
    position: usize,
    token: u32,
    text: String,
    kind: TokenKind,
    /// The token generated from this position; `None` inside the prompt.
    next: Option<u32>,
    iterations: usize,
    dynamics: Dynamics,
}

#[derive(serde::Serialize)]
struct TraceReport {
    settings: ThinkingSettings,
    prompt_len: usize,
    positions: Vec<LabelledPosition>,
    census: Census,
}

fn trace<B: Kernels>(
    args: &GenerateArgs,
    json: bool,
    device: &B::Device,
) -> Result<ExitCode, EngineError> {
    let loaded = load_dir::<B>(&args.model, device)?;
    let tokenizer = loaded.tokenizer.as_ref();
    let record = Record {
        normed: true,
        ..Record::default()
    };
    let (_, trace, _) = run_generation(&loaded, args, record, |_| {})?;
    let text = |id: u32| tokenizer.map_or_else(|| format!("<{id}>"), |t| t.token_text(id));
    let mut census = Census::default();
    let positions: Vec<LabelledPosition> = trace
        .positions
        .iter()
        .filter_map(|p| {
            let dynamics = p.dynamics()?;
            let text = text(p.token);
            let kind = TokenKind::of(&text);
            census.add(kind, dynamics.shape);
            Some(LabelledPosition {
                position: p.position,
                token: p.token,
                text,
                kind,
                next: p.next,
                iterations: p.iterations,
                dynamics,
            })
        })
        .collect();
    let report = TraceReport {
        settings: trace.settings,
        prompt_len: trace.prompt_len,
        positions,
        census,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .map_err(|e| EngineError::Setting(e.to_string()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>4}  {:<12} {:<11} {:>5}  label",
        "pos", "token", "kind", "iters"
    );
    for p in &report.positions {
        println!(
            "{:>4}  {:<12} {:<11} {:>5}  {}",
            p.position,
            format!("{:?}", p.text),
            p.kind.name(),
            p.iterations,
            p.dynamics.explain()
        );
    }
    println!();
    print!("{}", report.census.table());
    Ok(ExitCode::SUCCESS)
}

fn required_tokenizer<B: Kernels>(loaded: &LoadedModel<B>) -> Result<&Tokenizer, EngineError> {
    loaded
        .tokenizer
        .as_ref()
        .ok_or_else(|| EngineError::Tokenizer("the model folder has no tokenizer.json".into()))
}

/// Writes `value` as indented JSON.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), EngineError> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| EngineError::Setting(e.to_string()))?;
    write_file(path, bytes)
}

fn write_file(path: &std::path::Path, bytes: Vec<u8>) -> Result<(), EngineError> {
    std::fs::write(path, bytes).map_err(|source| EngineError::Io {
        path: path.display().to_string(),
        source,
    })
}
