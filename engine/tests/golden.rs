//! The engine against the reference's golden vectors (tests/fixtures/huginn-tiny-a, a copy of
//! ../shared/golden). Tolerance: 1e-4 absolute on every array (golden::TOLERANCE); measured
//! errors are about 1e-6 (see the README).

use std::path::PathBuf;

use burn::backend::NdArray;
use loopscope_engine::exit::{argmax, entropy};
use loopscope_engine::folder::load_dir;
use loopscope_engine::golden::GoldenCase;
use loopscope_engine::trace::Exit;
use loopscope_engine::{
    block_on, ExitCriterion, Record, RecurrentModel, Session, ThinkingSettings,
};

type B = NdArray;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a")
}

fn load() -> (RecurrentModel<B>, GoldenCase) {
    let loaded = load_dir::<B>(&fixture(), &Default::default()).unwrap();
    (loaded.model, GoldenCase::open(&fixture()).unwrap())
}

#[test]
fn every_golden_array_is_reproduced() {
    let (model, case) = load();
    let checks = block_on(case.check(&model)).unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "latents",
        "latents_normed",
        "lens_logits",
        "logits",
        "decode_logits",
        "prelude_out",
        "exit_kl",
    ] {
        assert!(names.contains(&expected), "{expected} was not compared");
    }
    for check in &checks {
        assert!(
            check.passed(),
            "{}: max abs error {} over {}",
            check.name,
            check.max_abs_error,
            check.tolerance
        );
    }
}

/// Thresholds halfway between consecutive distinct values, so rounding cannot flip a decision.
fn thresholds(values: &[f32]) -> Vec<f32> {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    sorted
        .windows(2)
        .filter(|w| w[1] - w[0] > 1e-4)
        .map(|w| (w[0] + w[1]) / 2.0)
        .collect()
}

/// Iterations the reference would run: the first i (1-based) whose value is below the threshold.
fn expected_count(values: &[Option<f32>], threshold: f32) -> usize {
    values
        .iter()
        .position(|v| v.is_some_and(|v| v < threshold))
        .map_or(values.len(), |i| i + 1)
}

fn run(
    model: &loopscope_engine::RecurrentModel<B>,
    case: &GoldenCase,
    exit: ExitCriterion,
) -> (usize, Exit) {
    let settings = ThinkingSettings {
        steps: case.manifest.num_steps,
        exit,
        ..ThinkingSettings::default()
    };
    let mut session = Session::new(model, settings, Record::default())
        .unwrap()
        .with_initial_states(case.init_state.clone());
    block_on(session.feed(&case.input_ids)).unwrap();
    let last = session.trace().positions.last().unwrap().clone();
    (last.iterations, last.exit)
}

/// An exit criterion at a threshold.
type Criterion = fn(f32) -> ExitCriterion;

#[test]
fn iteration_counts_follow_the_golden_exit_values() {
    let (model, case) = load();
    let r = case.manifest.num_steps;
    let entropies = &case.expected["exit_entropy"];
    let entropy_changes: Vec<Option<f32>> = (0..r)
        .map(|i| (i > 0).then(|| (entropies[i] - entropies[i - 1]).abs()))
        .collect();
    let criteria: Vec<(Vec<Option<f32>>, Criterion)> = vec![
        (
            case.expected["exit_kl"].iter().map(|&v| Some(v)).collect(),
            |t| ExitCriterion::Kl { threshold: t },
        ),
        (
            case.expected["exit_latent_diff"]
                .iter()
                .map(|&v| Some(v))
                .collect(),
            |t| ExitCriterion::LatentDiff { threshold: t },
        ),
        (
            case.expected["exit_cosine"]
                .iter()
                .map(|&v| Some(v))
                .collect(),
            |t| ExitCriterion::Cosine { threshold: t },
        ),
        (entropy_changes, |t| ExitCriterion::EntropyDiff {
            threshold: t,
        }),
    ];
    let mut distinct_counts = 0;
    for (values, make) in criteria {
        let plain: Vec<f32> = values.iter().flatten().copied().collect();
        let mut counts = std::collections::BTreeSet::new();
        for threshold in thresholds(&plain) {
            let expected = expected_count(&values, threshold);
            let (iterations, exit) = run(&model, &case, make(threshold));
            assert_eq!(
                iterations,
                expected,
                "{} (golden values {values:?})",
                make(threshold)
            );
            let converged = values.iter().any(|v| v.is_some_and(|v| v < threshold));
            assert_eq!(exit == Exit::Converged, converged, "{}", make(threshold));
            counts.insert(iterations);
        }
        distinct_counts += counts.len();
    }
    assert!(
        distinct_counts >= 8,
        "thresholds should exercise several exit points, got {distinct_counts}"
    );
}

#[test]
fn recorded_exit_values_match_the_reference() {
    let (model, case) = load();
    let trace =
        block_on(case.exit_trace(&model, ExitCriterion::EntropyDiff { threshold: 0.0 })).unwrap();
    let recorded: Vec<Option<f32>> = trace
        .positions
        .last()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.exit_value)
        .collect();
    let h = &case.expected["exit_entropy"];
    assert_eq!(
        recorded[0], None,
        "no entropy change exists after the first iteration"
    );
    for i in 1..h.len() {
        let expected = (h[i] - h[i - 1]).abs();
        assert!(
            (recorded[i].unwrap() - expected).abs() < 1e-4,
            "iteration {}: {:?} vs {expected}",
            i + 1,
            recorded[i]
        );
    }
}

#[test]
fn argmax_stability_counts_match_the_golden_lens() {
    let (model, case) = load();
    let (r, s) = (case.manifest.num_steps, case.manifest.seq_len);
    let vocab = model.config.padded_vocab_size;
    let lens = &case.expected["lens_logits"];
    let tops: Vec<usize> = (0..r)
        .map(|i| argmax(&lens[(i * s + s - 1) * vocab..(i * s + s) * vocab]))
        .collect();
    let mut stable = Vec::new();
    for i in 0..r {
        let run = if i > 0 && tops[i] == tops[i - 1] {
            stable[i - 1] + 1
        } else {
            0
        };
        stable.push(run);
    }
    for steps in 1..r {
        let expected = stable.iter().position(|&n| n >= steps).map_or(r, |i| i + 1);
        assert_eq!(
            run(&model, &case, ExitCriterion::ArgmaxStable { steps }).0,
            expected,
            "argmax:{steps}"
        );
    }
    // The same lens gives the golden entropies, through the function the tracker uses.
    let h: Vec<f32> = (0..r)
        .map(|i| entropy(&lens[(i * s + s - 1) * vocab..(i * s + s) * vocab]) as f32)
        .collect();
    for (a, b) in h.iter().zip(&case.expected["exit_entropy"]) {
        assert!((a - b).abs() < 1e-4);
    }
}

#[test]
fn exported_weights_reload_to_the_same_model() {
    let (model, case) = load();
    let tensors = model.named_tensors();
    let mut files = std::collections::HashMap::new();
    files.insert(
        "config.json".to_string(),
        std::fs::read(fixture().join("config.json")).unwrap(),
    );
    let bytes = loopscope_engine::weights::write_safetensors(&tensors, false).unwrap();
    files.insert("model.safetensors".to_string(), bytes);
    let reloaded = loopscope_engine::folder::load_files::<B>(files, &Default::default())
        .unwrap()
        .model;
    for check in block_on(case.check(&reloaded)).unwrap() {
        assert!(check.passed(), "{}: {}", check.name, check.max_abs_error);
    }
}

#[test]
fn fresh_models_are_seeded_and_loadable() {
    let config = loopscope_engine::ModelConfig::from_json(
        &std::fs::read_to_string(fixture().join("config.json")).unwrap(),
    )
    .unwrap();
    let a = RecurrentModel::<B>::init(&config, 5, &Default::default()).named_tensors();
    let b = RecurrentModel::<B>::init(&config, 5, &Default::default()).named_tensors();
    let c = RecurrentModel::<B>::init(&config, 6, &Default::default()).named_tensors();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Every tensor the loader expects is there, with the right shape: loading succeeds.
    let mut files = std::collections::HashMap::new();
    files.insert(
        "config.json".to_string(),
        std::fs::read(fixture().join("config.json")).unwrap(),
    );
    files.insert(
        "model.safetensors".to_string(),
        loopscope_engine::weights::write_safetensors(&a, true).unwrap(),
    );
    assert!(loopscope_engine::folder::load_files::<B>(files, &Default::default()).is_ok());
    // Output projections start smaller than input projections (Takase).
    let spread = |name: &str| {
        let t = &a.iter().find(|(n, _)| n == name).unwrap().1.values;
        (t.iter().map(|v| v * v).sum::<f32>() / t.len() as f32).sqrt()
    };
    assert!(
        spread("transformer.core_block.0.attn.proj.weight")
            < 0.5 * spread("transformer.core_block.0.attn.Wqkv.weight")
    );
}
