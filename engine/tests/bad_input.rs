//! Bad files, settings and prompts are clear errors naming what is wrong, never panics.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::NdArray;
use loopscope_engine::folder::{load_dir, load_files, LoadedModel};
use loopscope_engine::{block_on, EngineError, Record, Sampling, Session, ThinkingSettings};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

type B = NdArray;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a")
}

fn fixture_files() -> HashMap<String, Vec<u8>> {
    ["config.json", "model.safetensors"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                std::fs::read(fixture_dir().join(name)).unwrap(),
            )
        })
        .collect()
}

fn load_err(files: HashMap<String, Vec<u8>>) -> EngineError {
    match load_files::<B>(files, &Default::default()) {
        Ok(_) => panic!("loading should fail"),
        Err(e) => e,
    }
}

/// The fixture's weights with one tensor changed by `edit` (None removes it).
fn edited_weights(
    target: &str,
    edit: impl Fn(&TensorView) -> Option<(Dtype, Vec<usize>, Vec<u8>)>,
) -> Vec<u8> {
    let bytes = std::fs::read(fixture_dir().join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in file.tensors() {
        let replaced = if name == target {
            edit(&view)
        } else {
            Some((view.dtype(), view.shape().to_vec(), view.data().to_vec()))
        };
        if let Some((dtype, shape, data)) = replaced {
            owned.push((name, dtype, shape, data));
        }
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn garbage_and_truncated_weights_are_refused() {
    let mut files = fixture_files();
    files.insert(
        "model.safetensors".into(),
        b"definitely not safetensors".to_vec(),
    );
    let e = load_err(files).to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    let mut files = fixture_files();
    let full = files["model.safetensors"].clone();
    files.insert("model.safetensors".into(), full[..full.len() / 2].to_vec());
    let e = load_err(files).to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn missing_misshaped_and_oddly_typed_tensors_are_named() {
    let name = "transformer.core_block.1.mlp.fc.weight";
    let mut files = fixture_files();
    files.insert("model.safetensors".into(), edited_weights(name, |_| None));
    assert!(matches!(load_err(files), EngineError::MissingTensor { name: n } if n == name));

    let mut files = fixture_files();
    files.insert(
        "model.safetensors".into(),
        edited_weights(name, |v| {
            Some((
                Dtype::F32,
                vec![v.shape()[1], v.shape()[0]],
                v.data().to_vec(),
            ))
        }),
    );
    let e = load_err(files).to_string();
    assert!(e.contains(name) && e.contains("shape"), "{e}");

    let mut files = fixture_files();
    files.insert(
        "model.safetensors".into(),
        edited_weights(name, |v| {
            Some((Dtype::I32, v.shape().to_vec(), v.data().to_vec()))
        }),
    );
    let e = load_err(files).to_string();
    assert!(e.contains(name) && e.contains("I32"), "{e}");
}

#[test]
fn broken_configs_are_refused_with_the_reason() {
    let config: serde_json::Value =
        serde_json::from_slice(&fixture_files()["config.json"]).unwrap();
    for (field, expect) in [
        ("n_embd", "n_embd"),
        ("rope_base", "rope_base"),
        ("padded_vocab_size", "padded_vocab_size"),
    ] {
        let mut broken = config.clone();
        broken.as_object_mut().unwrap().remove(field);
        let mut files = fixture_files();
        files.insert("config.json".into(), serde_json::to_vec(&broken).unwrap());
        let e = load_err(files).to_string();
        assert!(e.contains("config.json") && e.contains(expect), "{e}");
    }
    let mut broken = config.clone();
    broken["n_heads"] = serde_json::json!(5);
    let mut files = fixture_files();
    files.insert("config.json".into(), serde_json::to_vec(&broken).unwrap());
    assert!(load_err(files).to_string().contains("divisible"));

    let mut files = fixture_files();
    files.insert("config.json".into(), b"{ not json".to_vec());
    assert!(matches!(load_err(files), EngineError::Config(_)));

    let mut files = fixture_files();
    files.remove("config.json");
    assert!(load_err(files)
        .to_string()
        .contains("config.json is missing"));
}

#[test]
fn a_broken_tokenizer_or_missing_folder_is_an_error() {
    let mut files = fixture_files();
    files.insert("tokenizer.json".into(), b"{\"model\": 3}".to_vec());
    assert!(matches!(load_err(files), EngineError::Tokenizer(_)));
    let missing = fixture_dir().join("no-such-folder");
    let e = load_dir::<B>(&missing, &Default::default())
        .err()
        .expect("missing folder");
    assert!(matches!(e, EngineError::Io { .. }), "{e}");
}

fn model() -> LoadedModel<B> {
    load_dir::<B>(&fixture_dir(), &Default::default()).unwrap()
}

#[test]
fn bad_prompts_are_refused_before_any_work() {
    let loaded = model();
    let model = &loaded.model;
    let context = model.config.block_size;
    let vocab = model.config.padded_vocab_size;
    let session = || Session::new(model, ThinkingSettings::default(), Record::default()).unwrap();

    let e = block_on(session().feed(&vec![1; context + 1])).unwrap_err();
    assert!(
        matches!(e, EngineError::PromptTooLong { tokens, context: c } if tokens == context + 1 && c == context)
    );
    let e = block_on(session().feed(&[1, 2, vocab as u32 + 7])).unwrap_err();
    assert!(
        matches!(e, EngineError::UnknownToken { position: 2, .. }),
        "{e}"
    );
    assert!(matches!(
        block_on(session().feed(&[])).unwrap_err(),
        EngineError::EmptyPrompt
    ));

    // A refused prompt leaves the session usable.
    let mut s = session();
    assert!(block_on(s.feed(&[vocab as u32])).is_err());
    assert_eq!(s.len(), 0);
    assert!(block_on(s.feed(&[1, 2, 3])).is_ok());
}

#[test]
fn nonsense_settings_are_refused() {
    let loaded = model();
    let cases = [
        ThinkingSettings {
            steps: 0,
            ..ThinkingSettings::default()
        },
        ThinkingSettings {
            steps: 100_000,
            ..ThinkingSettings::default()
        },
        ThinkingSettings {
            init_scale: f32::NAN,
            ..ThinkingSettings::default()
        },
        ThinkingSettings {
            sampling: Sampling {
                temperature: -1.0,
                ..Sampling::default()
            },
            ..ThinkingSettings::default()
        },
        ThinkingSettings {
            sampling: Sampling {
                top_p: 0.0,
                ..Sampling::default()
            },
            ..ThinkingSettings::default()
        },
        ThinkingSettings {
            overrides: [(3, 0)].into_iter().collect(),
            ..ThinkingSettings::default()
        },
    ];
    for settings in cases {
        let e = Session::new(&loaded.model, settings.clone(), Record::default()).err();
        assert!(matches!(e, Some(EngineError::Setting(_))), "{settings:?}");
    }
}
