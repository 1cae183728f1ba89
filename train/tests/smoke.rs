//! The training command end to end on a tiny recipe: corpus, tokenizer, a few steps, a model
//! folder the engine loads and evaluates; and a run split in two resumes exactly.

use std::path::Path;
use std::process::Command;

use burn::backend::NdArray;
use loopscope_engine::eval::{evaluate, read_examples, sample, Start};
use loopscope_engine::folder::load_dir;
use loopscope_engine::weights::HostTensor;
use loopscope_engine::{block_on, ExitCriterion};

const RECIPE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/smoke.json");

/// Runs the training command on `recipe` from the folder that holds `out` (where the `runs/` of
/// a start trained from a recipe goes); returns whether it succeeded and what it logged.
fn train_with(recipe: &Path, out: &Path, run: &Path, extra: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_loopscope-train"))
        .current_dir(out.parent().expect("out is inside a folder"))
        .arg("--recipe")
        .arg(recipe)
        .args(["--eval-per-family", "4", "--out"])
        .arg(out)
        .arg("--run-dir")
        .arg(run)
        .args(extra)
        .output()
        .expect("the training binary runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), log)
}

/// Runs the training command on the smoke recipe; returns what it logged.
fn train(out: &Path, run: &Path, extra: &[&str]) -> String {
    let (ok, log) = train_with(Path::new(RECIPE), out, run, extra);
    assert!(ok, "{log}");
    log
}

/// The smoke recipe with some fields changed, written into `dir`.
fn changed_recipe(dir: &Path, name: &str, changes: serde_json::Value) -> std::path::PathBuf {
    let mut recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(RECIPE).unwrap()).unwrap();
    for (key, value) in changes.as_object().unwrap() {
        recipe[key] = value.clone();
    }
    let path = dir.join(name);
    std::fs::write(&path, recipe.to_string()).unwrap();
    path
}

fn weights(dir: &Path) -> Vec<(String, HostTensor)> {
    load_dir::<NdArray>(dir, &Default::default())
        .unwrap()
        .model
        .named_tensors()
}

/// Asserts that `out` holds the weights of `start`: a run at a rate too small to move anything.
fn assert_started_from(start: &Path, out: &Path) {
    for ((n, x), (_, y)) in weights(start).iter().zip(&weights(out)) {
        let moved = x.values.iter().zip(&y.values).map(|(p, q)| (p - q).abs());
        assert!(
            moved.fold(0.0f32, f32::max) < 1e-6,
            "{n} did not start from {}",
            start.display()
        );
    }
}

/// Trains the smoke recipe with `changes`, saved as `NAME.json`, into folders of its own in
/// `dir`; returns whether it succeeded and what it logged.
fn train_changed(dir: &Path, name: &str, changes: serde_json::Value) -> (bool, String) {
    let recipe = changed_recipe(dir, &format!("{name}.json"), changes);
    train_with(
        &recipe,
        &dir.join(name),
        &dir.join(format!("{name}-run")),
        &[],
    )
}

#[test]
fn trains_a_model_folder_the_engine_loads_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let (out, run) = (dir.path().join("model"), dir.path().join("run"));
    train(&out, &run, &[]);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "eval.jsonl",
        "recipe.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let validation = std::fs::read_to_string(run.join("validation.jsonl")).unwrap();
    assert_eq!(validation.lines().count(), 2, "validation at steps 3 and 6");

    let loaded = load_dir::<NdArray>(&out, &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer.expect("tokenizer.json");
    let digits: Vec<u32> = tokenizer.encode("1234567890").unwrap();
    assert_eq!(digits.len(), 10, "every digit is its own token");
    let examples =
        read_examples(&std::fs::read_to_string(out.join("eval.jsonl")).unwrap()).unwrap();
    let examples = sample(examples, 2);
    assert_eq!(
        examples.len(),
        8,
        "two of each of three families, and two filler sentences"
    );
    let report = block_on(evaluate(
        &loaded.model,
        &tokenizer,
        &examples,
        &[1, 4],
        ExitCriterion::Kl { threshold: 1e-3 },
        8,
        Start::default(),
    ))
    .unwrap();
    assert_eq!(report.accuracy.len(), 6);
    assert!(report.accuracy.iter().all(|a| a.total == 2));
    assert!(report.exit.answer_tokens > 0 && report.exit.other_tokens > report.exit.answer_tokens);
    assert!(report.exit.filler_tokens > 10, "{:?}", report.exit);
    assert!(
        report.table().contains("answer / filler"),
        "{}",
        report.table()
    );
    assert!((1.0..=8.0).contains(&report.exit.answer_mean));
    let by_family = &report.exit.answer_by_family;
    let names: Vec<&str> = by_family.iter().map(|f| f.family.as_str()).collect();
    assert_eq!(names, ["compare", "chain", "arithmetic"]);
    let tokens: usize = by_family.iter().map(|f| f.tokens).sum();
    assert_eq!(tokens, report.exit.answer_tokens);
    let split = report
        .exit
        .answer_by_need
        .as_ref()
        .expect("measured at r = 1 and 4");
    assert_eq!((split.fewest, split.most), (1, 4));
    assert!(split.needed.tokens + split.not_needed.tokens <= report.exit.answer_tokens);
    let iterations: f64 = by_family.iter().map(|f| f.mean * f.tokens as f64).sum();
    assert!((iterations / tokens as f64 - report.exit.answer_mean).abs() < 1e-9);
    assert!(report.table().contains("answer tokens by family: compare"));
}

#[test]
fn a_run_stopped_and_resumed_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    train(&whole, &dir.path().join("whole-run"), &[]);
    let split = dir.path().join("split");
    let split_run = dir.path().join("split-run");
    train(&split, &split_run, &["--stop-at", "2"]);
    // A stopped run leaves its folder at the step it stopped, before any validation wrote it.
    let at_two = weights(&split);
    let log = train(&split, &split_run, &["--stop-at", "4"]);
    assert!(log.contains("resuming at step 2"), "{log}");
    assert!(
        !log.contains("step      1/") && !log.contains("step      2/"),
        "steps 1-2 ran again: {log}"
    );
    assert!(
        at_two
            .iter()
            .zip(&weights(&split))
            .any(|((_, x), (_, y))| x.values != y.values),
        "the folder still holds step 2's model after the stop at step 4"
    );
    train(&split, &split_run, &[]);

    // burn's backward pass sums gradients in an order that varies from run to run, so two runs
    // agree only up to rounding that Adam then amplifies: compare within the largest distance
    // the optimizer can move a weight in six steps (Adam's step is about the learning rate).
    let (a, b) = (weights(&whole), weights(&split));
    assert_eq!(a.len(), b.len());
    let largest = a
        .iter()
        .zip(&b)
        .map(|((n, x), (m, y))| {
            assert!(n == m && x.shape == y.shape, "{n} against {m}");
            x.values
                .iter()
                .zip(&y.values)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0f32, f32::max);
    assert!(
        largest < 0.05,
        "resumed weights are {largest} away from the uninterrupted run"
    );
}

#[test]
fn a_finished_run_goes_on_under_a_longer_schedule_and_refuses_other_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (out, run) = (dir.path().join("model"), dir.path().join("run"));
    train(&out, &run, &[]);

    let other_rate = changed_recipe(
        dir.path(),
        "rate.json",
        serde_json::json!({"learning_rate": 0.01, "steps": 8}),
    );
    let (ok, log) = train_with(&other_rate, &out, &run, &[]);
    assert!(
        !ok && log.contains("cannot resume") && log.contains("`learning_rate`"),
        "{log}"
    );
    let stretched = changed_recipe(
        dir.path(),
        "stretched.json",
        serde_json::json!({"steps": 8}),
    );
    let (ok, log) = train_with(&stretched, &out, &run, &[]);
    assert!(!ok && log.contains("set `decay_steps` to 6"), "{log}");

    let longer = changed_recipe(
        dir.path(),
        "longer.json",
        serde_json::json!({"steps": 8, "decay_steps": 6}),
    );
    let (ok, log) = train_with(&longer, &out, &run, &[]);
    assert!(ok && log.contains("resuming at step 6"), "{log}");
    assert!(
        log.contains("step      8/8") && !log.contains("step      6/"),
        "{log}"
    );
}

/// Each step's logged loss, in order.
#[cfg(feature = "wgpu")]
fn losses(log: &str) -> Vec<f32> {
    log.lines()
        .filter(|l| l.starts_with("step "))
        .map(|l| {
            let after = l.split(" loss ").nth(1).expect("a loss on every step line");
            after.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

/// The same run on the GPU path (lavapipe without a GPU) follows the CPU's: the same first loss
/// (same weights, batch and iterations, so forward passes agree), and later losses and final
/// weights within what rounding, amplified by Adam, explains (so the gradients agree too).
#[cfg(feature = "wgpu")]
#[test]
fn a_run_on_wgpu_follows_the_cpu_run() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = dir.path().join("cpu");
    let gpu = dir.path().join("gpu");
    let cpu_log = train(&cpu, &dir.path().join("cpu-run"), &[]);
    let gpu_log = train(&gpu, &dir.path().join("gpu-run"), &["--backend", "wgpu"]);
    let (a, b) = (losses(&cpu_log), losses(&gpu_log));
    assert_eq!(a.len(), 6, "{cpu_log}");
    assert_eq!(a.len(), b.len(), "{gpu_log}");
    assert!(
        (a[0] - b[0]).abs() < 1e-3,
        "first losses {a:?} against {b:?}"
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 0.02, "losses {a:?} against {b:?}");
    }
    let largest = weights(&cpu)
        .iter()
        .zip(&weights(&gpu))
        .flat_map(|((_, x), (_, y))| x.values.iter().zip(&y.values).map(|(p, q)| (p - q).abs()))
        .fold(0.0f32, f32::max);
    assert!(
        largest < 0.05,
        "wgpu weights are {largest} away from the CPU's"
    );
}

#[test]
fn a_run_starts_from_a_trained_folder_and_keeps_its_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    train(&base, &dir.path().join("base-run"), &[]);

    // A learning rate too small to move anything: the result is the starting folder's weights.
    let tuned = changed_recipe(
        dir.path(),
        "tuned.json",
        serde_json::json!({
            "start_from": base, "learning_rate": 1e-12, "steps": 2, "eval_every": 2,
            "filler": "stock", "compare_by_name": false
        }),
    );
    let out = dir.path().join("tuned");
    let (ok, log) = train_with(&tuned, &out, &dir.path().join("tuned-run"), &[]);
    assert!(ok, "{log}");
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&out, "tokenizer.json"), read(&base, "tokenizer.json"));
    assert_started_from(&base, &out);
    // The recipe's corpus settings reach the held-out file: numbers only, stock filler.
    let examples = read_examples(&read(&out, "eval.jsonl")).unwrap();
    assert!(examples.iter().filter(|e| e.family == "compare").all(|e| e
        .answer
        .trim()
        .parse::<u32>()
        .is_ok()));
    assert_ne!(read(&out, "eval.jsonl"), read(&base, "eval.jsonl"));

    let (ok, log) = train_changed(
        dir.path(),
        "wide",
        serde_json::json!({"start_from": base, "intermediate_size": 96}),
    );
    assert!(!ok && log.contains("mlp"), "{log}");
    let (ok, log) = train_changed(
        dir.path(),
        "missing",
        serde_json::json!({"start_from": dir.path().join("nowhere")}),
    );
    assert!(!ok && log.contains("nowhere"), "{log}");
}

#[test]
fn a_run_that_starts_from_a_recipe_trains_that_recipe_first() {
    let dir = tempfile::tempdir().unwrap();
    changed_recipe(dir.path(), "first.json", serde_json::json!({}));
    let second = changed_recipe(
        dir.path(),
        "second.json",
        serde_json::json!({
            "start_from": "first.json", "learning_rate": 1e-12, "steps": 2, "eval_every": 2
        }),
    );
    let (out, run) = (dir.path().join("second"), dir.path().join("second-run"));
    let (ok, log) = train_with(&second, &out, &run, &[]);
    assert!(
        ok && log.contains("start_from first.json: training it first"),
        "{log}"
    );
    let first = dir.path().join("runs/starts/first/model");
    assert_started_from(&first, &out);

    // Again: the first run is found finished, not trained a second time.
    let (ok, log) = train_with(&second, &out, &run, &[]);
    assert!(ok && log.contains("resuming at step 6"), "{log}");
    assert!(!log.contains("step      1/6"), "{log}");

    let (ok, log) = train_changed(
        dir.path(),
        "looped",
        serde_json::json!({"start_from": "looped.json"}),
    );
    assert!(!ok && log.contains("leads back"), "{log}");
}

#[test]
fn a_run_can_start_from_a_step_inside_another_recipes_run() {
    let dir = tempfile::tempdir().unwrap();
    changed_recipe(dir.path(), "first.json", serde_json::json!({}));
    let later = serde_json::json!({
        "start_from": "first.json", "start_from_step": 2,
        "learning_rate": 1e-12, "steps": 2, "eval_every": 2
    });
    let (ok, log) = train_changed(dir.path(), "later", later.clone());
    assert!(
        ok && log.contains("training it first, in runs/starts/first-step2"),
        "{log}"
    );
    assert!(!log.contains("step      3/6"), "{log}");
    let start = dir.path().join("runs/starts/first-step2");
    let progress = std::fs::read_to_string(start.join("progress.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&progress).unwrap()["step"],
        2
    );
    assert_started_from(&start.join("model"), &dir.path().join("later"));

    // Again: the start is found stopped at its step and goes no further.
    let (ok, log) = train_changed(dir.path(), "later", later);
    assert!(ok && log.contains("resuming at step 2"), "{log}");
    assert!(!log.contains("step      3/6"), "{log}");

    let (ok, log) = train_changed(
        dir.path(),
        "past",
        serde_json::json!({"start_from": "first.json", "start_from_step": 7}),
    );
    assert!(!ok && log.contains("cannot stop at step 7"), "{log}");
    let (ok, log) = train_changed(
        dir.path(),
        "folder",
        serde_json::json!({"start_from": start.join("model"), "start_from_step": 2}),
    );
    assert!(
        !ok && log.contains("start_from_step needs a recipe"),
        "{log}"
    );
}
