//! The `loopscope` tool end to end: generation from text with a tokenizer.json, the trace file,
//! and the golden command's verdicts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use loopscope_engine::dynamics::Dynamics;
use loopscope_engine::Trace;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a")
}

fn loopscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loopscope"))
        .args(args)
        .output()
        .unwrap()
}

fn copy_fixture(to: &Path) {
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A word-level tokenizer over the 256-token vocabulary of the test model.
fn write_tokenizer(dir: &Path) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    let mut vocab: HashMap<String, u32> = (0..250).map(|i| (format!("w{i}"), i)).collect();
    for (i, word) in ["<unk>", "Tom", "had", "marbles", "<eos>", "."]
        .iter()
        .enumerate()
    {
        vocab.insert(word.to_string(), 250 + i as u32);
    }
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
}

#[test]
fn generate_streams_counts_and_writes_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    write_tokenizer(dir.path());
    let trace_path = dir.path().join("trace.json");
    let out = loopscope(&[
        "generate",
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt",
        "Tom had 7 marbles .",
        "--steps",
        "8",
        "--exit",
        "kl:1e-2",
        "--seed",
        "3",
        "--max-tokens",
        "6",
        "--trace",
        trace_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("iterations"))
        .collect();
    assert!(!lines.is_empty() && lines.len() <= 6, "{stdout}");
    assert!(stdout.contains("Tom had <unk> marbles ."), "{stdout}");
    let trace: Trace = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    assert_eq!(trace.prompt_len, 5);
    assert_eq!(trace.generated().count(), lines.len());
    for (line, position) in lines.iter().zip(trace.generated()) {
        assert!(
            line.trim_start()
                .starts_with(&format!("{} iterations", position.iterations)),
            "{line}"
        );
        assert_eq!(position.steps.len(), position.iterations);
        assert!(position.steps[0]
            .lens
            .as_ref()
            .is_some_and(|l| l.len() == 5));
    }
}

#[test]
fn generate_reports_bad_input_without_panicking() {
    let model = fixture();
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["generate", "--model", model, "--prompt", "hello"],
            "no tokenizer.json",
        ),
        (
            &["generate", "--model", model, "--prompt-ids", "1,999"],
            "outside the vocabulary",
        ),
        (
            &[
                "generate",
                "--model",
                model,
                "--prompt-ids",
                "1",
                "--exit",
                "kl:abc",
            ],
            "threshold is not a number",
        ),
        (
            &[
                "generate",
                "--model",
                "/nonexistent/model",
                "--prompt-ids",
                "1",
            ],
            "cannot read",
        ),
    ];
    for (args, message) in cases {
        let out = loopscope(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn golden_passes_on_the_fixture_and_fails_on_a_wrong_golden() {
    let out = loopscope(&["golden", fixture().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with("ok")).count(),
        10,
        "{stdout}"
    );

    // Perturb one expected array: the command must notice and exit non-zero.
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let golden = std::fs::read(dir.path().join("golden.safetensors")).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&golden).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = parsed
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let logits = owned.iter_mut().find(|t| t.0 == "logits").unwrap();
    let first = f32::from_le_bytes(logits.3[..4].try_into().unwrap()) + 0.01;
    logits.3[..4].copy_from_slice(&first.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("golden.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let out = loopscope(&["golden", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let line = stdout.lines().find(|l| l.starts_with("logits")).unwrap();
    assert!(line.ends_with("FAIL") && line.contains("1.0"), "{line}");
}

#[test]
fn trace_labels_every_position_and_counts_shapes_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    write_tokenizer(dir.path());
    let model = dir.path().to_str().unwrap();
    let trace_path = dir.path().join("trace.json");
    let args = [
        "--model",
        model,
        "--prompt",
        "Tom had 7 marbles .",
        "--steps",
        "64",
        "--max-tokens",
        "4",
        "--trace",
        trace_path.to_str().unwrap(),
    ];
    let out = loopscope(&[&["trace", "--json"], &args[..]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let positions = report["positions"].as_array().unwrap();
    // The whole trace the same run wrote: the labels are those of its recorded states.
    let trace: Trace = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    assert_eq!(positions.len(), trace.positions.len());
    // `--trace` writes everything generate's would, not only what the labels read.
    let first = &trace.positions[0].steps[0];
    assert!(first.state.is_some() && first.delta.is_some() && first.lens.is_some());
    // The prompt's 5 positions, then one per generated token but the last (never fed back).
    assert_eq!(positions.len(), 5 + 4 - 1);
    for (labelled, recorded) in positions.iter().zip(&trace.positions) {
        let labels: Dynamics = serde_json::from_value(labelled["dynamics"].clone()).unwrap();
        assert_eq!(Some(labels), recorded.dynamics());
        assert_eq!(labelled["iterations"], 64);
        assert!(labelled["dynamics"]["radius"].is_number());
    }
    assert_eq!(positions[0]["text"], "Tom");
    assert_eq!(positions[0]["kind"], "word");
    assert_eq!(positions[4]["kind"], "punctuation");
    let census = report["census"]["counts"].as_object().unwrap();
    let counted: u64 = census
        .values()
        .flat_map(|shapes| shapes.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, positions.len());

    let out = loopscope(&[&["trace"], &args[..]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let header = stdout.lines().find(|l| l.starts_with("kind")).unwrap();
    for column in ["converged", "orbit", "slider", "unsettled"] {
        assert!(header.contains(column), "{stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("words")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("all")), "{stdout}");
}

#[test]
fn bench_measures_folders_and_random_shapes_and_names_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json").display().to_string();
    let folder = fixture().display().to_string();
    let config = fixture().join("config.json").display().to_string();
    let bench = |prompt: &str| {
        loopscope(&[
            "bench",
            "--model",
            &folder,
            "--random",
            &config,
            "--prompt-tokens",
            prompt,
            "--tokens",
            "3",
            "--steps",
            "2",
            "--json",
            &json,
        ])
    };
    let out = bench("4");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("prompt 4 tokens, then 3 tokens decoded at 2 iterations each"),
        "{stdout}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["model"], folder);
    assert!(rows[1]["model"]
        .as_str()
        .unwrap()
        .starts_with("random weights"));
    for row in &rows {
        assert_eq!(row["backend"], "cpu");
        assert_eq!(row["format"], "f32");
        let decode = row["decode_tokens_per_s"].as_f64().unwrap();
        let iterations = row["core_iterations_per_s"].as_f64().unwrap();
        assert!(decode > 0.0 && (iterations - 2.0 * decode).abs() < 1e-6 * iterations);
        assert!(row["kv_bytes_per_token"].as_f64().unwrap() > 0.0);
        assert!(row["weight_bytes"].as_u64().unwrap() > 0);
    }
    // The fixture holds 128 positions.
    let out = bench("126");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("129 tokens do not fit the model's context of 128"),
        "{stderr}"
    );
}
