//! `loopscope quantize` on the shipped model: the q8 and q4 folders load through the same code
//! as f32 ones and stay close to the f32 model's predictions, on its prompts and on the golden
//! inputs.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use loopscope_engine::folder::{load_dir, LoadedModel};
use loopscope_engine::golden::GoldenCase;
use loopscope_engine::quant::Format;
use loopscope_engine::quantize::{quantize_folder, SHARD_BYTES};
use loopscope_engine::{block_on, EngineError, Record, Session, ThinkingSettings};

type B = NdArray;

const PROMPTS: [&str; 8] = [
    "Tom had 47 marbles and won 38 more, so now he has",
    "a is 7. b is a plus 5. c is b minus 3. So c is",
    "Which is larger, 52 or 25? The larger is",
    "The old dog sleeps by the warm",
    "Sam had 91 apples and gave away 46, so now he has",
    "x is 30. y is x minus 12. So y is",
    "The small bird sings in the",
    "Which is smaller, 18 or 81? The smaller is",
];

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public/models/loopscope-tiny")
}

/// Next-token probabilities after each prompt at the model's mean recurrence.
fn predictions(model: &LoadedModel<B>) -> Vec<Vec<f64>> {
    let tokenizer = model.tokenizer.as_ref().unwrap();
    PROMPTS
        .iter()
        .map(|prompt| {
            let ids = tokenizer.encode(prompt).unwrap();
            let settings = ThinkingSettings {
                steps: model.model.config.mean_recurrence,
                ..ThinkingSettings::default()
            };
            let mut session = Session::new(&model.model, settings, Record::default()).unwrap();
            softmax(&block_on(session.feed(&ids)).unwrap().logits)
        })
        .collect()
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let top = logits.iter().fold(f32::MIN, |m, &x| m.max(x)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&x| (x as f64 - top).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |best, i| if p[i] > p[best] { i } else { best })
}

/// (mean KL(f32 || quantized), share of prompts with the same most likely token)
fn closeness(reference: &[Vec<f64>], other: &[Vec<f64>]) -> (f64, f64) {
    let kl: f64 = reference
        .iter()
        .zip(other)
        .map(|(p, q)| {
            p.iter()
                .zip(q)
                .filter(|(p, _)| **p > 0.0)
                .map(|(p, q)| p * (p / q.max(1e-30)).ln())
                .sum::<f64>()
        })
        .sum::<f64>()
        / reference.len() as f64;
    let same = reference
        .iter()
        .zip(other)
        .filter(|(p, q)| argmax(p) == argmax(q))
        .count();
    (kl, same as f64 / reference.len() as f64)
}

fn size(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .len()
}

#[test]
fn quantized_folders_load_and_stay_close_to_f32() {
    let out = tempfile::tempdir().unwrap();
    let f32_model = load_dir::<B>(&shipped(), &Default::default()).unwrap();
    let reference = predictions(&f32_model);
    for (format, max_kl, min_same, max_size) in
        [(Format::Q8, 1e-3, 1.0, 0.3), (Format::Q4, 0.05, 0.75, 0.2)]
    {
        let dir = out.path().join(format!("{format:?}"));
        let mut calls = 0;
        let converted = quantize_folder(&shipped(), &dir, format, SHARD_BYTES, |done, total, _| {
            assert!(done <= total);
            calls += 1;
        })
        .unwrap();
        assert_eq!(calls, converted.tensors);
        assert_eq!(
            converted.quantized, 18,
            "4 matrices in each of the 4 blocks, wte and the adapter"
        );
        let ratio = size(&dir) as f64 / size(&shipped()) as f64;
        assert!(ratio < max_size, "{format:?} is {ratio:.2} of f32");
        let loaded = load_dir::<B>(&dir, &Default::default()).unwrap();
        assert_eq!(loaded.model.config.quantization.unwrap().format, format);
        let (kl, same) = closeness(&reference, &predictions(&loaded));
        println!("{format:?}: {ratio:.3} of the f32 size, KL {kl:.2e}, top-1 agreement {same:.2}");
        assert!(
            kl < max_kl && same >= min_same,
            "{format:?}: KL {kl}, top-1 {same}"
        );
    }
}

#[test]
fn past_the_file_cap_the_output_is_sharded_with_an_index() {
    let out = tempfile::tempdir().unwrap();
    let (single, sharded) = (out.path().join("single"), out.path().join("sharded"));
    let cap = 200_000;
    quantize_folder(&shipped(), &single, Format::Q8, SHARD_BYTES, |_, _, _| {}).unwrap();
    let converted = quantize_folder(&shipped(), &sharded, Format::Q8, cap, |_, _, _| {}).unwrap();
    assert!(!sharded.join("model.safetensors").exists());
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sharded.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let mut files: Vec<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f.as_str().unwrap())
        .collect();
    files.sort();
    files.dedup();
    assert!(files.len() >= 4, "0.9 MB in 200 KB files: {files:?}");
    let mut total = 0;
    for file in &files {
        let bytes = std::fs::metadata(sharded.join(file)).unwrap().len();
        total += bytes;
        // Only a tensor larger than the cap (the 512 x 128 embedding is not) may pass it.
        assert!(bytes <= cap as u64 + 4096, "{file}: {bytes} bytes");
    }
    assert_eq!(total, converted.bytes_out);
    assert_eq!(index["metadata"]["total_size"], total);
    let a = load_dir::<B>(&single, &Default::default()).unwrap();
    let b = load_dir::<B>(&sharded, &Default::default()).unwrap();
    assert_eq!(
        predictions(&a),
        predictions(&b),
        "the same tensors, split across files"
    );
}

#[test]
fn an_already_quantized_folder_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let q8 = out.path().join("q8");
    quantize_folder(&shipped(), &q8, Format::Q8, SHARD_BYTES, |_, _, _| {}).unwrap();
    let err = quantize_folder(
        &q8,
        &out.path().join("again"),
        Format::Q4,
        SHARD_BYTES,
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Config(m) if m.contains("already quantized")),
        "{err}"
    );
}

/// The page's default model is the shipped one in q8, exactly as the command writes it.
#[test]
fn the_page_model_is_the_shipped_one_quantized_to_q8() {
    let out = tempfile::tempdir().unwrap();
    quantize_folder(
        &shipped(),
        out.path(),
        Format::Q8,
        SHARD_BYTES,
        |_, _, _| {},
    )
    .unwrap();
    let page = shipped().with_file_name("loopscope-tiny-q8");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "eval.jsonl",
    ] {
        assert!(
            std::fs::read(out.path().join(file)).unwrap() == std::fs::read(page.join(file)).unwrap(),
            "{file} differs: rerun `loopscope quantize --in public/models/loopscope-tiny --out public/models/loopscope-tiny-q8 --format q8`"
        );
    }
}

/// Next-token distributions after every prefix of the golden inputs, from the golden initial
/// states, at the golden iteration count.
fn golden_predictions(model: &LoadedModel<B>, case: &GoldenCase) -> Vec<Vec<f64>> {
    let e = model.model.config.n_embd;
    (1..=case.input_ids.len())
        .map(|len| {
            let settings = ThinkingSettings {
                steps: case.manifest.num_steps,
                ..ThinkingSettings::default()
            };
            let mut session = Session::new(&model.model, settings, Record::default())
                .unwrap()
                .with_initial_states(case.init_state[..len * e].to_vec());
            let logits = block_on(session.feed(&case.input_ids[..len]))
                .unwrap()
                .logits;
            softmax(&logits)
        })
        .collect()
}

#[test]
fn on_the_golden_inputs_quantized_models_stay_close_to_f32() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a");
    let case = GoldenCase::open(&fixture).unwrap();
    let reference = golden_predictions(
        &load_dir::<B>(&fixture, &Default::default()).unwrap(),
        &case,
    );
    let out = tempfile::tempdir().unwrap();
    // The golden model's weights are random, so its next-token distributions are flat and the
    // top token of q4 (KL 4e-3) flips more often than on a trained model's prompts.
    for (format, max_kl, min_same) in [(Format::Q8, 1e-4, 1.0), (Format::Q4, 1e-2, 0.6)] {
        let dir = out.path().join(format!("{format:?}"));
        quantize_folder(&fixture, &dir, format, SHARD_BYTES, |_, _, _| {}).unwrap();
        let loaded = load_dir::<B>(&dir, &Default::default()).unwrap();
        let (kl, same) = closeness(&reference, &golden_predictions(&loaded, &case));
        println!("golden inputs, {format:?}: KL {kl:.2e}, top-1 agreement {same:.2}");
        assert!(
            kl < max_kl && same >= min_same,
            "{format:?}: KL {kl}, top-1 {same}"
        );
    }
}
