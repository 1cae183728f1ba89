use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use burn::backend::NdArray;
use loopscope_engine::folder::load_dir;
use loopscope_engine::trace::{IterationRecord, PositionTrace};
use loopscope_engine::{block_on, Session};
use proptest::prelude::*;

use super::link::{LinkError, VERSION};
use super::*;
use crate::runner::RECORD;

const VIEW: View = View {
    selected: Some(1),
    iteration: 3,
    pair: 1,
    heat: 0,
};

fn model() -> ModelRef {
    ModelRef {
        source: "models/loopscope-tiny".into(),
        hash: 0x1234_5678_9abc_def0,
    }
}

/// A generation of `shape.len()` tokens where token t runs `shape[t]` iterations through
/// states drawn from `seed`.
fn generation(shape: &[usize], seed: u64) -> Generation {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let settings = ThinkingSettings {
        exit: "kl:0.001".parse().unwrap(),
        seed,
        kv_share: Some(3),
        ..ThinkingSettings::default()
    };
    let mut g = Generation::new(Some(model()), "a is 7. So a is".into(), settings, 32);
    for (t, &n) in shape.iter().enumerate() {
        let steps = (0..n)
            .map(|i| IterationRecord {
                normed: Some((0..8).map(|_| next() / (i + 1) as f32).collect()),
                exit_value: (i > 0).then(|| (next() + 0.5) * 1e-2),
                lens: Some(
                    (0..5)
                        .map(|r| TopToken {
                            id: ((next() + 0.5) * 300.0) as u32 + r,
                            prob: next() + 0.5,
                        })
                        .collect(),
                ),
                ..IterationRecord::default()
            })
            .collect();
        let position = PositionTrace {
            position: 9 + t,
            token: 3,
            next: Some(t as u32 % 7 + 40),
            iterations: n,
            exit: if n % 2 == 0 {
                Exit::Converged
            } else {
                Exit::MaxSteps
            },
            initial_state: None,
            initial_normed: None,
            steps,
        };
        g.push(position, |id| format!("w{id}"));
    }
    g.finish();
    g
}

#[test]
fn every_fidelity_round_trips_exactly() {
    let g = generation(&[3, 8, 1, 5], 7);
    for fidelity in LADDER.map(Some).into_iter().chain([None]) {
        let snapshot = Snapshot::capture(&g, VIEW, model(), fidelity);
        let text = encode(&snapshot);
        let decoded = decode(&text).unwrap();
        assert_eq!(decoded, snapshot);
        assert_eq!(encode(&decoded), text);
    }
}

#[test]
fn a_format_1_link_still_opens_without_labels() {
    let g = generation(&[3, 8, 1, 5], 7);
    let snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    // Format 1 was the postcard snapshot alone, with no labels after it.
    let body = postcard::to_allocvec(&snapshot).unwrap();
    let bytes = [
        vec![1],
        miniz_oxide::deflate::compress_to_vec_zlib(&body, 9),
    ]
    .concat();
    let decoded = decode(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
    let restored = decoded.generation();
    assert_eq!(restored.tokens.len(), 4);
    assert!(restored.tokens.iter().all(|t| t.label.is_none()));
    assert_eq!(decoded.trace.unwrap().ids, snapshot.trace.unwrap().ids);
}

#[test]
fn labels_that_do_not_fit_the_trace_are_refused() {
    let g = generation(&[3, 8, 1, 5], 7);
    let mut snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    let with = |labels: Vec<SharedLabel>, snapshot: &mut Snapshot| {
        snapshot.trace.as_mut().unwrap().labels = labels;
        decode(&encode(snapshot))
    };
    let good = snapshot.trace.as_ref().unwrap().labels.clone();
    assert_eq!(good.len(), 4);
    assert!(with(good[..3].to_vec(), &mut snapshot).is_err());
    let unknown = good.iter().map(|(_, why)| (9, why.clone())).collect();
    assert!(with(unknown, &mut snapshot).is_err());
    let long = good.iter().map(|&(s, _)| (s, "x".repeat(500))).collect();
    assert!(with(long, &mut snapshot).is_err());
    assert!(with(Vec::new(), &mut snapshot).is_ok());
}

#[test]
fn the_restored_generation_is_what_the_sender_saw() {
    let g = generation(&[3, 8, 1, 5], 7);
    let restored = decode(&encode(&Snapshot::capture(
        &g,
        VIEW,
        model(),
        Some(LADDER[0]),
    )))
    .unwrap()
    .generation();
    assert_eq!(restored.prompt, g.prompt);
    assert_eq!(restored.settings, g.settings);
    assert_eq!(restored.max_tokens, g.max_tokens);
    for (a, b) in restored.tokens.iter().zip(&g.tokens) {
        assert_eq!(
            (a.id, a.iterations, a.exit, a.position),
            (b.id, b.iterations, b.exit, b.position)
        );
        assert!(b.label.is_some());
        assert_eq!(a.label, b.label);
        assert_eq!(
            a.lens.iter().map(|l| l[0].id).collect::<Vec<_>>(),
            b.lens.iter().map(|l| l[0].id).collect::<Vec<_>>()
        );
        for (x, y) in a.lens.iter().flatten().zip(b.lens.iter().flatten()) {
            assert!((x.prob - y.prob).abs() <= 0.5 / 255.0 + 1e-6);
        }
        for (x, y) in a.exit_values.iter().zip(&b.exit_values) {
            assert_eq!(x.is_some(), y.is_some());
        }
        assert_eq!(a.distance.len(), b.distance.len());
    }
    assert_eq!(restored.text(g.tokens[0].id), g.text(g.tokens[0].id));
    assert_eq!(
        Snapshot::capture(&g, VIEW, model(), Some(LADDER[0])).compare(model().hash, &g),
        Ok(())
    );
    let (sent, here) = (restored.projection.unwrap(), g.projection.unwrap());
    assert!(trajectory_difference(&sent, &here) < 1e-4);
}

#[test]
fn a_rerun_is_compared_on_the_links_axes_not_its_own_refit() {
    let g = generation(&[3, 8, 2], 4);
    let snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    assert!(snapshot
        .trace
        .as_ref()
        .unwrap()
        .paths
        .as_ref()
        .unwrap()
        .basis
        .is_some());
    // A refit that turned its axes (as float differences between backends can) changes nothing.
    let mut turned = g.clone();
    for point in turned
        .projection
        .as_mut()
        .unwrap()
        .paths
        .iter_mut()
        .flatten()
    {
        point.iter_mut().for_each(|x| *x = -*x);
    }
    assert_eq!(snapshot.compare(model().hash, &turned), Ok(()));
    // Without states (a re-shared link) the refit is what there is to compare.
    turned.positions.clear();
    assert!(snapshot.compare(model().hash, &turned).is_err());
    assert!(Snapshot::capture(&g, VIEW, model(), Some(LADDER[3]))
        .trace
        .unwrap()
        .paths
        .unwrap()
        .basis
        .is_none());
}

#[test]
fn a_coarse_link_keeps_only_the_pair_in_view() {
    let g = generation(&[3, 8], 1);
    let snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[4]));
    let projection = snapshot.generation().projection.unwrap();
    assert_eq!(projection.pairs, [false, true, false]);
    assert_eq!(snapshot.trace.unwrap().lens_k, 1);
}

#[test]
fn a_rerun_that_differs_says_where() {
    let g = generation(&[3, 8, 2], 3);
    let snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    let mut other = g.clone();
    other.tokens[1].id = 44;
    other.vocab.insert(44, "w44".into());
    let why = snapshot.compare(model().hash, &other).unwrap_err();
    assert!(why.contains("token 2"), "{why}");
    let mut longer = g.clone();
    longer.tokens[2].iterations = 5;
    assert!(snapshot
        .compare(model().hash, &longer)
        .unwrap_err()
        .contains("iterations"));
    let mut moved = g.clone();
    moved.positions[0].steps[1].normed.as_mut().unwrap()[0] += 10.0;
    assert!(snapshot
        .compare(model().hash, &moved)
        .unwrap_err()
        .contains("trajectories"));
    let mut narrower = g.clone();
    narrower.positions[0].steps[0]
        .normed
        .as_mut()
        .unwrap()
        .pop();
    assert!(snapshot
        .compare(model().hash, &narrower)
        .unwrap_err()
        .contains("dimensions"));
    assert!(snapshot.compare(1, &g).unwrap_err().contains("model"));
    let mut shorter = g.clone();
    shorter.tokens.pop();
    assert!(snapshot
        .compare(model().hash, &shorter)
        .unwrap_err()
        .contains("2 tokens here"));
}

#[test]
fn a_large_trace_degrades_instead_of_failing() {
    let g = generation(&[12; 40], 5);
    let roomy = share(&g, VIEW, model(), 1 << 20);
    assert_eq!(roomy.fidelity, Some(LADDER[0]));
    let tight = share(&g, VIEW, model(), roomy.text.len() / 3);
    assert!(tight.text.len() <= roomy.text.len() / 3 || tight.fidelity.is_none());
    assert_ne!(tight.fidelity, Some(LADDER[0]));
    let none = share(&g, VIEW, model(), 10);
    assert_eq!(none.fidelity, None);
    assert_eq!(decode(&none.text).unwrap().generation().prompt, g.prompt);
}

#[test]
fn bad_links_say_what_is_wrong() {
    let g = generation(&[3, 2], 2);
    let text = encode(&Snapshot::capture(&g, VIEW, model(), Some(LADDER[0])));
    assert_eq!(decode(""), Err(LinkError::Empty));
    assert_eq!(decode("a b"), Err(LinkError::NotBase64));
    assert_eq!(
        decode(&text[..text.len() / 8 * 4]),
        Err(LinkError::Corrupted)
    );
    let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
    bytes[0] = VERSION + 1;
    assert_eq!(
        decode(&URL_SAFE_NO_PAD.encode(&bytes)),
        Err(LinkError::FutureVersion(VERSION + 1))
    );
    bytes[0] = 0;
    assert_eq!(
        decode(&URL_SAFE_NO_PAD.encode(&bytes)),
        Err(LinkError::UnknownVersion(0))
    );
    let bomb = [
        vec![VERSION],
        miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 9 << 20], 9),
    ]
    .concat();
    assert_eq!(
        decode(&URL_SAFE_NO_PAD.encode(&bomb)),
        Err(LinkError::TooLarge)
    );
    let garbage = [
        vec![VERSION],
        miniz_oxide::deflate::compress_to_vec_zlib(&[0xff; 40], 9),
    ]
    .concat();
    assert!(matches!(
        decode(&URL_SAFE_NO_PAD.encode(&garbage)),
        Err(LinkError::Malformed(_))
    ));
    let mut wrong = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    wrong.view.selected = Some(2);
    assert!(
        matches!(decode(&encode(&wrong)), Err(LinkError::Invalid(m)) if m.contains("selected"))
    );
    let mut wrong = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    wrong.settings.init_scale = f32::NAN;
    assert!(matches!(
        decode(&encode(&wrong)),
        Err(LinkError::Invalid(_))
    ));
    let mut wrong = Snapshot::capture(&g, VIEW, model(), Some(LADDER[0]));
    wrong.trace.as_mut().unwrap().lens_ids.pop();
    assert!(matches!(decode(&encode(&wrong)), Err(LinkError::Invalid(m)) if m.contains("lens")));
    assert_eq!(payload("#s=abc"), Some("abc"));
    assert_eq!(payload("#other"), None);
}

/// Every decoded snapshot must restore and compare without panicking.
fn survives(text: &str) {
    if let Ok(snapshot) = decode(text) {
        let g = snapshot.generation();
        let _ = snapshot.compare(0, &g);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "[A-Za-z0-9_=-]{0,400}") {
        survives(&text);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let bytes = [vec![VERSION], miniz_oxide::deflate::compress_to_vec_zlib(&body, 1)].concat();
        survives(&URL_SAFE_NO_PAD.encode(bytes));
    }

    #[test]
    fn damaged_links_never_panic(at in 0usize..4000, byte in any::<u8>(), cut in any::<bool>()) {
        let g = generation(&[3, 8, 1], 9);
        let snapshot = Snapshot::capture(&g, VIEW, model(), Some(LADDER[2]));
        let mut body = postcard::to_allocvec(&snapshot).unwrap();
        let at = at % body.len();
        if cut { body.truncate(at) } else { body[at] = byte }
        let bytes = [vec![VERSION], miniz_oxide::deflate::compress_to_vec_zlib(&body, 1)].concat();
        survives(&URL_SAFE_NO_PAD.encode(bytes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generations_round_trip_at_any_budget(
        shape in proptest::collection::vec(1usize..12, 1..10),
        seed in any::<u64>(),
        budget in 100usize..6000,
        selected in 0usize..10,
        pair in 0u8..3,
    ) {
        let g = generation(&shape, seed);
        let view = View { selected: Some((selected % shape.len()) as u32), iteration: 1, pair, heat: 1 };
        let shared = share(&g, view, model(), budget);
        let decoded = decode(&shared.text).unwrap();
        prop_assert_eq!(&decoded, &Snapshot::capture(&g, view, model(), shared.fidelity));
        prop_assert_eq!(encode(&decoded), shared.text.clone());
        if shared.fidelity.is_some() {
            prop_assert!(shared.text.len() <= budget);
            prop_assert_eq!(decoded.compare(model().hash, &g), Ok(()));
        }
    }
}

/// Shares a `tokens`-token generation of the default model at 32 iterations (no early exit: the
/// largest trace) within an 8 KB link; returns (full-trace length, link length, fidelity).
fn default_model_link(tokens: usize) -> (usize, usize, Option<Fidelity>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/models/loopscope-tiny");
    let loaded = load_dir::<NdArray<f32>>(&dir, &Default::default()).unwrap();
    let tokenizer = loaded.tokenizer.as_ref().unwrap();
    let prompt = "Tom had 47 marbles and won 38 more, so now he has";
    let ids = tokenizer.encode(prompt).unwrap();
    let budget = 8192 - "https://loopscope.example/#s=".len();
    let settings = ThinkingSettings {
        steps: 32,
        ..ThinkingSettings::default()
    };
    let mut g = Generation::new(Some(model()), prompt.into(), settings.clone(), tokens);
    let mut session = Session::new(&loaded.model, settings, RECORD).unwrap();
    block_on(session.generate(&ids, tokens, &[], async |p| {
        g.push(p.clone(), |id| tokenizer.token_text(id));
        true
    }))
    .unwrap();
    g.finish();
    let view = View {
        selected: Some(3),
        iteration: 7,
        pair: 0,
        heat: 0,
    };
    let shared = share(&g, view, model(), budget);
    let full = encode(&Snapshot::capture(&g, view, model(), Some(LADDER[0]))).len();
    println!(
        "{} tokens x 32 iterations: full trace {full} characters; link {} characters at {:?}",
        g.tokens.len(),
        shared.text.len(),
        shared.fidelity
    );
    assert_eq!(
        decode(&shared.text).unwrap(),
        Snapshot::capture(&g, view, model(), shared.fidelity)
    );
    (full, shared.text.len(), shared.fidelity)
}

/// The budget: 64 tokens at 32 iterations in an 8 KB link, with every component.
#[test]
fn the_default_model_shares_64_tokens_at_32_iterations_in_8_kb() {
    let (_, length, fidelity) = default_model_link(64);
    assert!(length <= 8192);
    assert!(fidelity.is_some_and(|f| f.all_pairs), "{fidelity:?}");
    let (full, length, fidelity) = default_model_link(16);
    assert_eq!(
        (length, fidelity),
        (full, Some(LADDER[0])),
        "16 tokens keep the full trace"
    );
}

/// The README's figure for the longest generation the context allows (slow: run with
/// `cargo test -p loopscope-app -- --ignored`).
#[test]
#[ignore]
fn the_default_model_shares_a_full_context_in_8_kb() {
    let (_, length, fidelity) = default_model_link(256);
    assert!(length <= 8192 && fidelity.is_some());
}
