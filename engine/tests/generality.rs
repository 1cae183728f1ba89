//! The engine on model folders other than the golden one: random checkpoints of other sizes,
//! layer counts, RoPE bases, dtypes and file layouts, compared with an independent naive f64
//! implementation of DESIGN.md (tests/oracle). The oracle itself is first checked against the
//! reference's golden vectors.
//!
//! Tolerance: 1e-4 absolute on every array (latents, ln_f(latents), prelude output, lens logits,
//! final and decoded logits), the same as golden::TOLERANCE. The engine computes in f32 and the
//! oracle in f64 from the same (rounded) weights, so the gap is f32 rounding alone: measured
//! at most 3.3e-6 (values of magnitude ~1-10 through a few dozen blocks). The random models use
//! Takase-shaped weights at twice the spread (oracle::GAIN): sharper than an initialisation, yet
//! not so chaotic that f32 rounding grows past the tolerance (at 4x it reaches 7e-3 after four
//! iterations, in the oracle alone under a one-ulp change of s_0).

mod oracle;

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use loopscope_engine::cache::NoMemory;
use loopscope_engine::folder::load_dir;
use loopscope_engine::golden::GoldenCase;
use loopscope_engine::readback::read;
use loopscope_engine::{block_on, Record, RecurrentModel, Session, ThinkingSettings};
use oracle::{
    max_abs_diff, random_states, random_tokens, write_folder, DType, Forward, Layout, Oracle, Spec,
};
use proptest::prelude::*;

type B = NdArray;

/// Largest absolute error accepted between the engine (f32) and the oracle (f64).
const TOLERANCE: f64 = 1e-4;

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

// ---------------------------------------------------------------------------------------------
// The oracle against the reference
// ---------------------------------------------------------------------------------------------

#[test]
fn oracle_reproduces_the_reference_golden_vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/huginn-tiny-a");
    let case = GoldenCase::open(&dir).unwrap();
    let oracle = Oracle::load(&dir);
    let (s, e, v, r) = (
        case.manifest.seq_len,
        oracle.config.n_embd,
        oracle.config.vocab,
        case.manifest.num_steps,
    );
    let out = oracle.forward(&case.input_ids, &to_f64(&case.init_state), r);
    let p = case.manifest.prefill_len;
    let decoded: Vec<f64> = out.logits()[(p - 1) * v..].to_vec();
    let arrays: [(&str, Vec<f64>); 6] = [
        ("prelude_out", out.prelude_out.clone()),
        ("latents", out.latents.concat()),
        ("latents_normed", out.normed.concat()),
        ("lens_logits", out.lens.concat()),
        ("logits", out.logits().to_vec()),
        // Every token runs r iterations, so cached decoding equals the full pass at positions P-1..S-1.
        ("decode_logits", decoded),
    ];
    for (name, computed) in arrays {
        let expected = &case.expected[name];
        let err = max_abs_diff(expected, &computed);
        eprintln!("oracle vs reference {name}: max abs error {err:.2e}");
        assert!(
            err < TOLERANCE,
            "oracle disagrees with the reference on {name}: {err}"
        );
    }
    assert_eq!(out.latents[0].len(), s * e);
}

// ---------------------------------------------------------------------------------------------
// The engine against the oracle
// ---------------------------------------------------------------------------------------------

/// One comparison: a random model folder, a random sequence, r iterations.
#[derive(Debug, Clone)]
struct Case {
    spec: Spec,
    layout: Layout,
    seq: usize,
    r: usize,
    /// Also decode with the session: prefill this many tokens, then one token at a time.
    prefill: Option<usize>,
}

impl Case {
    fn new(spec: Spec, seq: usize, r: usize) -> Self {
        Self {
            spec,
            layout: Layout::default(),
            seq,
            r,
            prefill: None,
        }
    }
}

/// Largest absolute errors of one case.
#[derive(Debug, Default)]
struct Errors {
    prelude_out: f64,
    latents: f64,
    normed: f64,
    lens: f64,
    logits: f64,
    decode: f64,
}

impl Errors {
    fn max(&self) -> f64 {
        [
            self.prelude_out,
            self.latents,
            self.normed,
            self.lens,
            self.logits,
            self.decode,
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }
}

/// The engine's version of [`oracle::Forward`].
struct EngineForward {
    prelude_out: Vec<f32>,
    latents: Vec<Vec<f32>>,
    normed: Vec<Vec<f32>>,
    lens: Vec<Vec<f32>>,
}

/// The engine's full causal pass, with the calls `GoldenCase::reproduce` makes.
fn engine_forward(model: &RecurrentModel<B>, ids: &[u32], s0: &[f32], r: usize) -> EngineForward {
    let (s, e) = (ids.len(), model.config.n_embd);
    let device = model.device();
    let embedded = model.prelude_forward(ids, [1, s], 0, &mut NoMemory);
    let prelude_out = block_on(read(embedded.clone())).unwrap();
    let mut state = Tensor::<B, 3>::from_data(TensorData::new(s0.to_vec(), [1, s, e]), &device);
    let mut latents = vec![s0.to_vec()];
    let mut normed = vec![block_on(read(model.ln_f.forward(state.clone()))).unwrap()];
    let mut lens = Vec::new();
    for iteration in 0..r {
        state = model.core_forward(state, embedded.clone(), iteration, 0, &mut NoMemory);
        latents.push(block_on(read(state.clone())).unwrap());
        normed.push(block_on(read(model.ln_f.forward(state.clone()))).unwrap());
        lens.push(block_on(read(model.coda_forward(state.clone(), 0, &mut NoMemory))).unwrap());
    }
    EngineForward {
        prelude_out,
        latents,
        normed,
        lens,
    }
}

/// Session decoding: prefill `p` tokens, then one at a time; the logits of positions p-1..S-1.
fn engine_decode(
    model: &RecurrentModel<B>,
    ids: &[u32],
    s0: &[f32],
    r: usize,
    p: usize,
) -> Vec<f32> {
    let settings = ThinkingSettings {
        steps: r,
        ..ThinkingSettings::default()
    };
    let mut session = Session::new(model, settings, Record::default())
        .unwrap()
        .with_initial_states(s0.to_vec());
    let mut logits = block_on(session.feed(&ids[..p])).unwrap().logits;
    for &t in &ids[p..] {
        logits.extend(block_on(session.feed(&[t])).unwrap().logits);
    }
    logits
}

fn compare(got: &[f32], expected: &[f64]) -> f64 {
    max_abs_diff(got, expected)
}

fn run(case: &Case) -> (Errors, Forward) {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &case.spec, &case.layout);
    let model = load_dir::<B>(dir.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{case:?}: {e}"))
        .model;
    let oracle = Oracle::load(dir.path());
    let ids = random_tokens(case.spec.vocab, case.seq, case.spec.seed);
    let s0 = random_states(&case.spec, case.seq, case.spec.seed);
    let expected = oracle.forward(&ids, &to_f64(&s0), case.r);
    let EngineForward {
        prelude_out,
        latents,
        normed,
        lens,
    } = engine_forward(&model, &ids, &s0, case.r);
    let each = |got: &[Vec<f32>], want: &[Vec<f64>]| {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .map(|(g, w)| compare(g, w))
            .fold(0.0, f64::max)
    };
    let mut errors = Errors {
        prelude_out: compare(&prelude_out, &expected.prelude_out),
        latents: each(&latents, &expected.latents),
        normed: each(&normed, &expected.normed),
        lens: each(&lens, &expected.lens),
        logits: compare(lens.last().unwrap(), expected.logits()),
        decode: 0.0,
    };
    if let Some(p) = case.prefill {
        let v = case.spec.vocab;
        let decoded = engine_decode(&model, &ids, &s0, case.r, p);
        errors.decode = compare(&decoded, &expected.logits()[(p - 1) * v..]);
    }
    (errors, expected)
}

fn assert_matches(case: Case) {
    let (errors, _) = run(&case);
    eprintln!("{errors:?}  <- {case:?}");
    assert!(
        errors.max() < TOLERANCE,
        "engine and oracle differ beyond {TOLERANCE}: {errors:?}\ncase: {case:?}"
    );
}

#[test]
fn small_model_two_heads_rope_10000() {
    let spec = Spec {
        seed: 1,
        ..Spec::new(32, 2, (1, 1, 1), 97, 10_000.0)
    };
    assert_matches(Case::new(spec, 7, 3));
}

#[test]
fn three_heads_deep_prelude_rope_500000() {
    // head_dim 16 with n_embd 48: n_embd is not a power of two and sqrt(n_embd) is irrational.
    let spec = Spec {
        seed: 2,
        intermediate: 72,
        ..Spec::new(48, 3, (3, 2, 1), 300, 500_000.0)
    };
    assert_matches(Case::new(spec, 9, 4));
}

#[test]
fn eight_heads_of_eight_three_core_layers() {
    let spec = Spec {
        seed: 3,
        norm_eps: 1e-5,
        ..Spec::new(64, 8, (2, 3, 2), 300, 50_000.0)
    };
    assert_matches(Case::new(spec, 6, 3));
}

#[test]
fn one_head_and_an_embed_scale_other_than_sqrt_n_embd() {
    let spec = Spec {
        seed: 4,
        embed_scale: Some(3.0),
        intermediate: 24,
        ..Spec::new(16, 1, (1, 2, 2), 97, 10_000.0)
    };
    assert_matches(Case::new(spec, 5, 2));
}

#[test]
fn a_sequence_that_fills_the_context() {
    let spec = Spec {
        seed: 5,
        block_size: 12,
        ..Spec::new(32, 4, (1, 1, 1), 97, 50_000.0)
    };
    assert_matches(Case::new(spec, 12, 2));
}

#[test]
fn bf16_weights() {
    let spec = Spec {
        seed: 6,
        ..Spec::new(48, 3, (2, 2, 1), 97, 10_000.0)
    };
    let layout = Layout {
        dtype: DType::BF16,
        ..Layout::default()
    };
    assert_matches(Case {
        layout,
        ..Case::new(spec, 6, 3)
    });
}

#[test]
fn f16_weights() {
    let spec = Spec {
        seed: 7,
        ..Spec::new(32, 2, (1, 2, 1), 300, 500_000.0)
    };
    let layout = Layout {
        dtype: DType::F16,
        ..Layout::default()
    };
    assert_matches(Case {
        layout,
        ..Case::new(spec, 6, 3)
    });
}

#[test]
fn sharded_checkpoint_with_the_tied_head_stored_twice() {
    let spec = Spec {
        seed: 8,
        ..Spec::new(32, 2, (2, 1, 2), 97, 10_000.0)
    };
    for shards in [2, 3] {
        let layout = Layout {
            dtype: DType::BF16,
            shards,
            duplicate_lm_head: true,
            ..Layout::default()
        };
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), &spec, &layout);
        assert!(dir.path().join("model.safetensors.index.json").exists());
        assert!(dir
            .path()
            .join(format!("model-00002-of-{shards:05}.safetensors"))
            .exists());
        assert!(!dir.path().join("model.safetensors").exists());
        assert_matches(Case {
            layout,
            ..Case::new(spec.clone(), 5, 2)
        });
    }
}

#[test]
fn untied_head() {
    let spec = Spec {
        seed: 9,
        ..Spec::new(32, 2, (1, 1, 1), 97, 10_000.0)
    };
    let layout = Layout {
        untied_head: true,
        ..Layout::default()
    };
    assert_matches(Case {
        layout,
        ..Case::new(spec, 5, 2)
    });
}

#[test]
fn cached_decoding_equals_the_full_pass() {
    let spec = Spec {
        seed: 10,
        ..Spec::new(48, 3, (2, 2, 1), 97, 50_000.0)
    };
    for prefill in [1, 4] {
        let case = Case {
            prefill: Some(prefill),
            ..Case::new(spec.clone(), 8, 3)
        };
        assert_matches(case);
    }
}

/// Guards against a vacuous comparison: an oracle with a slightly different RoPE base, embedding
/// scale or norm epsilon, or without the q/k bias, must disagree with the engine by well over the
/// tolerance (measured at gain 2: 1.4e-3, 1.0e-2, 2.9e-3 and 0.15 on the logits).
#[test]
fn the_comparison_notices_small_differences() {
    let spec = Spec {
        seed: 11,
        ..Spec::new(32, 2, (1, 1, 1), 97, 10_000.0)
    };
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path(), &spec, &Layout::default());
    let model = load_dir::<B>(dir.path(), &Default::default())
        .unwrap()
        .model;
    let (ids, s0) = (
        random_tokens(spec.vocab, 6, 11),
        random_states(&spec, 6, 11),
    );
    let lens = engine_forward(&model, &ids, &s0, 2).lens;
    type Mutation = fn(&mut Oracle);
    let mutations: [(&str, Mutation); 4] = [
        ("rope_base * 1.05", |o| o.config.rope_base *= 1.05),
        ("embed_scale * 1.01", |o| o.config.embed_scale *= 1.01),
        ("norm_eps * 100", |o| o.config.norm_eps *= 100.0),
        ("no qk_bias", |o| o.config.qk_bias = false),
    ];
    for (name, mutate) in mutations {
        let mut oracle = Oracle::load(dir.path());
        mutate(&mut oracle);
        let expected = oracle.forward(&ids, &to_f64(&s0), 2);
        let err = compare(lens.last().unwrap(), expected.logits());
        eprintln!("oracle with {name}: logits differ by {err:.2e}");
        assert!(
            err > 10.0 * TOLERANCE,
            "an oracle with {name} agrees with the engine: {err}"
        );
    }
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::BF16), Just(DType::F16)]
}

fn case() -> impl Strategy<Value = Case> {
    (
        // n_embd of at least 16: on narrower random models (RMSNorm over 4 or 8 values) f32
        // rounding alone, amplified by the layers, was measured up to 2.7e-5; from 16 on, the
        // worst of 400 cases was 3.3e-6.
        (
            (1usize..=4, prop_oneof![Just(4usize), Just(8), Just(16)])
                .prop_filter("n_embd >= 16", |(h, d)| h * d >= 16),
            1usize..=3,
            1usize..=3,
            1usize..=2,
        ),
        (
            8usize..=64,
            16usize..=200,
            prop_oneof![Just(10_000.0), Just(50_000.0), Just(500_000.0), Just(1e6)],
        ),
        (
            dtype(),
            1usize..=2,
            any::<bool>(),
            1usize..=8,
            1usize..=3,
            any::<u64>(),
        ),
    )
        .prop_flat_map(
            |(((heads, head_dim), prelude, core, coda), (intermediate, vocab, rope_base), rest)| {
                let (dtype, shards, duplicate, seq, r, seed) = rest;
                (1usize..=seq).prop_map(move |prefill| {
                    let spec = Spec {
                        intermediate,
                        block_size: 16,
                        seed,
                        ..Spec::new(
                            heads * head_dim,
                            heads,
                            (prelude, core, coda),
                            vocab,
                            rope_base,
                        )
                    };
                    let layout = Layout {
                        dtype,
                        shards,
                        duplicate_lm_head: duplicate,
                        untied_head: false,
                    };
                    Case {
                        spec,
                        layout,
                        seq,
                        r,
                        prefill: Some(prefill),
                    }
                })
            },
        )
}

proptest! {
    // A fixed seed keeps CI deterministic; widen locally with PROPTEST_CASES and a random seed.
    #![proptest_config(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x100b5c0be),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_oracle_on_random_models(case in case()) {
        let (errors, _) = run(&case);
        eprintln!("{errors:?}  <- {case:?}");
        prop_assert!(errors.max() < TOLERANCE, "errors {:?}", errors);
    }
}
