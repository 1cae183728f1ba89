//! The engine's kernels on a real wgpu device (Mesa's lavapipe where there is no GPU): the
//! quantized products against the dequantized matrix multiplied on the host in f64, RMSNorm
//! and decoding attention against the host's f64.
#![cfg(feature = "wgpu")]

use burn::backend::wgpu::{Wgpu, WgpuDevice};
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use loopscope_engine::kernels::attention::MAX_KEYS;
use loopscope_engine::kernels::{Kernels, QWeight, MAX_BINDING_BYTES};
use loopscope_engine::model::{Kv, Past, Rope};
use loopscope_engine::quant::{Format, Quantized};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
}

/// x [rows, k] times the dequantized [n, k] matrix, in f64.
fn reference(x: &[f32], rows: usize, w: &Quantized) -> Vec<f32> {
    let (n, k) = (w.rows, w.cols);
    let values = w.dequantize();
    let mut out = vec![0.0f32; rows * n];
    for r in 0..rows {
        for o in 0..n {
            let dot: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * values[o * k + i] as f64)
                .sum();
            out[r * n + o] = dot as f32;
        }
    }
    out
}

fn product<B: Kernels>(x: &[f32], rows: usize, w: &QWeight<B>, device: &B::Device) -> Vec<f32> {
    let k = x.len() / rows;
    let x = Tensor::<B, 2>::from_data(TensorData::new(x.to_vec(), [rows, k]), device);
    B::qlinear(x, w).into_data().to_vec::<f32>().unwrap()
}

/// Largest error relative to the output's largest magnitude.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0, f32::max)
}

fn check(format: Format, rows: usize, n: usize, k: usize, binding: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = Quantized::quantize(format, &random(n * k, &mut rng), n, k);
    let x = random(rows * k, &mut rng);
    let want = reference(&x, rows, &w);
    let device = WgpuDevice::default();
    let packed = <Wgpu as Kernels>::upload(&w, &device, binding);
    assert!(
        matches!(packed, QWeight::Packed { .. }),
        "uploaded as codes"
    );
    let got = product::<Wgpu>(&x, rows, &packed, &device);
    assert_eq!(got.len(), rows * n);
    let error = relative_error(&got, &want);
    assert!(
        error < 1e-5,
        "{format:?} {rows}x{k} · {k}x{n}: relative error {error:e}"
    );
    // The CPU backend's path (dequantize once, then matmul) agrees too.
    let cpu = <NdArray as Kernels>::upload(&w, &Default::default(), binding);
    let error = relative_error(
        &product::<NdArray>(&x, rows, &cpu, &Default::default()),
        &want,
    );
    assert!(error < 1e-5, "cpu: relative error {error:e}");
}

#[test]
fn decoding_and_prefill_shapes_match_the_host_for_both_formats() {
    // One row and a few with short rows (a thread per output) and long ones (a workgroup per
    // output), many rows and odd counts (tiled kernel), odd output widths, tiles partly filled.
    let shapes = [
        (1, 1, 32),
        (1, 7, 96),
        (3, 65, 128),
        (4, 130, 64),
        (1, 3, 544),
        (2, 40, 1024),
        (5, 33, 32),
        (70, 129, 160),
    ];
    for format in [Format::Q8, Format::Q4] {
        for (i, &(rows, n, k)) in shapes.iter().enumerate() {
            check(format, rows, n, k, MAX_BINDING_BYTES, i as u64);
        }
    }
}

#[test]
fn matrices_split_across_buffers_fill_one_output() {
    // 300 bytes a binding: a few rows of codes per buffer, so dozens of chunks.
    for format in [Format::Q8, Format::Q4] {
        check(format, 1, 97, 256, 300, 11);
        check(format, 9, 97, 256, 300, 12);
    }
}

#[test]
fn rows_that_are_not_whole_groups_stay_dense() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w = Quantized::quantize(Format::Q8, &random(8 * 40, &mut rng), 8, 40);
    let packed = <Wgpu as Kernels>::upload(&w, &WgpuDevice::default(), MAX_BINDING_BYTES);
    assert!(matches!(packed, QWeight::Dense(_)));
}

/// RMSNorm of [rows, dim] in f64.
fn norm_reference(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    x.chunks(weight.len())
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / row.len() as f64;
            let inv = 1.0 / (mean + eps).sqrt();
            row.iter()
                .zip(weight)
                .map(move |(&v, &w)| (v as f64 * inv * w as f64) as f32)
        })
        .collect()
}

/// RMSNorm of x (+ residual) on backend B.
fn normed<B: Kernels>(
    x: &[f32],
    residual: Option<&[f32]>,
    weight: &[f32],
    eps: f64,
    device: &B::Device,
) -> Vec<f32> {
    let dim = weight.len();
    let rows = |v: &[f32]| {
        Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [v.len() / dim, dim]), device)
    };
    let weight = Tensor::<B, 1>::from_data(TensorData::new(weight.to_vec(), [dim]), device);
    B::rms_norm(rows(x), residual.map(rows), weight, eps)
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn rms_norm_matches_the_host() {
    // A row shorter than the workgroup, the model's width, widths that leave threads a partial
    // turn, Huginn-0125's width, and more rows than one grid dimension holds; each alone and
    // as the residual sum x + r.
    let shapes = [(1, 8), (3, 128), (5, 100), (2, 5280), (70_000, 4)];
    for (i, &(rows, dim)) in shapes.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(40 + i as u64);
        let mut x = random(rows * dim, &mut rng);
        // A zero row: only eps keeps it finite.
        x[..dim].fill(0.0);
        let r = random(rows * dim, &mut rng);
        let weight = random(dim, &mut rng);
        let sum: Vec<f32> = x.iter().zip(&r).map(|(a, b)| a + b).collect();
        for (residual, input) in [(None, &x), (Some(&r[..]), &sum)] {
            let what = format!("{rows}x{dim} residual {}", residual.is_some());
            let want = norm_reference(input, &weight, 1e-6);
            let got = normed::<Wgpu>(&x, residual, &weight, 1e-6, &WgpuDevice::default());
            assert!(got.iter().all(|v| v.is_finite()), "{what}: finite");
            let error = relative_error(&got, &want);
            assert!(error < 1e-5, "{what}: relative error {error:e}");
            // The default path (burn's tensor operations, here the CPU's) to the same bound: it
            // divides, since ndarray's reciprocal is approximate (3e-4 on AVX2).
            let cpu = normed::<NdArray>(&x, residual, &weight, 1e-6, &Default::default());
            let error = relative_error(&cpu, &want);
            assert!(error < 1e-5, "cpu {what}: relative error {error:e}");
        }
    }
}

#[test]
fn silu_gate_matches_the_host() {
    // The model's MLP width, a few odd ones, and more outputs than one grid dimension holds.
    for (seed, &(rows, i)) in [(1, 320), (3, 5), (7, 33), (40_000, 70)].iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(60 + seed as u64);
        let h: Vec<f32> = random(rows * 2 * i, &mut rng)
            .iter()
            .map(|v| v * 8.0)
            .collect();
        let want: Vec<f32> = h
            .chunks(2 * i)
            .flat_map(|row| {
                (0..i).map(move |c| {
                    let gate = row[c] as f64;
                    (gate / (1.0 + (-gate).exp()) * row[i + c] as f64) as f32
                })
            })
            .collect();
        let gated = |device| {
            let h = Tensor::<Wgpu, 2>::from_data(TensorData::new(h.clone(), [rows, 2 * i]), device);
            <Wgpu as Kernels>::silu_gate(h)
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let got = gated(&WgpuDevice::default());
        let error = relative_error(&got, &want);
        assert!(error < 1e-5, "{rows}x{i}: relative error {error:e}");
        let cpu = Tensor::<NdArray, 2>::from_data(
            TensorData::new(h.clone(), [rows, 2 * i]),
            &Default::default(),
        );
        let cpu = <NdArray as Kernels>::silu_gate(cpu)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let error = relative_error(&cpu, &want);
        assert!(error < 2e-4, "cpu {rows}x{i}: relative error {error:e}");
    }
}

/// One new position's attention on the host in f64: the bias, RoPE (rows `cos`/`sin` of its
/// position), softmax(q k^T / sqrt(d)) v over the cache then itself. Returns y [b, h d] and the
/// new keys and values [b, h, d].
#[allow(clippy::too_many_arguments)]
fn attention_reference(
    qkv: &[f32],
    bias: Option<&[f32]>,
    cos: &[f32],
    sin: &[f32],
    past_k: &[f32],
    past_v: &[f32],
    (b, h, d, t0, capacity): (usize, usize, usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let e = h * d;
    let (mut y, mut keys, mut values) = (vec![0.0; b * e], vec![0.0; b * e], vec![0.0; b * e]);
    for s in 0..b {
        for head in 0..h {
            let part = |which: usize| -> Vec<f64> {
                (0..d)
                    .map(|c| {
                        let bias = bias.map_or(0.0, |bias| bias[which * e + head * d + c]);
                        (qkv[s * 3 * e + which * e + head * d + c] + bias) as f64
                    })
                    .collect()
            };
            let rotate = |x: Vec<f64>| -> Vec<f64> {
                (0..d)
                    .map(|c| {
                        let partner = if c % 2 == 0 { -x[c + 1] } else { x[c - 1] };
                        x[c] * cos[c] as f64 + partner * sin[c] as f64
                    })
                    .collect()
            };
            let (q, k) = (rotate(part(0)), rotate(part(1)));
            let v: Vec<f64> = (0..d)
                .map(|c| qkv[s * 3 * e + 2 * e + head * d + c] as f64)
                .collect();
            let cached = |cache: &[f32], j: usize, c: usize| {
                cache[((s * h + head) * capacity + j) * d + c] as f64
            };
            let key = |j: usize, c: usize| if j < t0 { cached(past_k, j, c) } else { k[c] };
            let value = |j: usize, c: usize| if j < t0 { cached(past_v, j, c) } else { v[c] };
            let scores: Vec<f64> = (0..=t0)
                .map(|j| (0..d).map(|c| q[c] * key(j, c)).sum::<f64>() / (d as f64).sqrt())
                .collect();
            let top = scores.iter().cloned().fold(f64::MIN, f64::max);
            let weights: Vec<f64> = scores.iter().map(|x| (x - top).exp()).collect();
            let total: f64 = weights.iter().sum();
            for c in 0..d {
                let at = s * e + head * d + c;
                y[at] = ((0..=t0).map(|j| weights[j] * value(j, c)).sum::<f64>() / total) as f32;
                keys[at] = k[c] as f32;
                values[at] = v[c] as f32;
            }
        }
    }
    (y, keys, values)
}

/// `t0` cached positions in buffers with room for `spare` more, holding values the kernel must
/// not read.
#[allow(clippy::too_many_arguments)]
fn check_attention(
    b: usize,
    h: usize,
    d: usize,
    t0: usize,
    spare: usize,
    position: usize,
    bias: bool,
    seed: u64,
) {
    let capacity = t0 + spare;
    let device = WgpuDevice::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = h * d;
    let qkv = random(b * 3 * e, &mut rng);
    let bias_values = random(2 * e, &mut rng);
    let past_k = random(b * e * capacity, &mut rng);
    let past_v = random(b * e * capacity, &mut rng);
    let rope = Rope::<Wgpu>::new(d, position + 1, 10000.0, &device);
    let row = |t: &Tensor<Wgpu, 2>| {
        let all = t.clone().into_data().to_vec::<f32>().unwrap();
        all[position * d..(position + 1) * d].to_vec()
    };
    let (cos, sin) = (row(rope.tables().0), row(rope.tables().1));
    let tensor = |values: &[f32], shape: [usize; 4]| {
        Tensor::<Wgpu, 4>::from_data(TensorData::new(values.to_vec(), shape), &device)
    };
    let past = Past {
        buffers: Kv {
            k: tensor(&past_k, [b, h, capacity, d]),
            v: tensor(&past_v, [b, h, capacity, d]),
        },
        len: t0,
    };
    let (y, kv) = <Wgpu as Kernels>::decode_attention(
        &Tensor::from_data(TensorData::new(qkv.clone(), [b, 1, 3 * e]), &device),
        bias.then(|| tensor(&bias_values, [2, 1, h, d])),
        rope.tables(),
        position,
        (t0 > 0).then_some(&past),
        h,
    )
    .expect("the kernel takes this shape");
    let (want_y, want_k, want_v) = attention_reference(
        &qkv,
        bias.then_some(&bias_values[..]),
        &cos,
        &sin,
        &past_k,
        &past_v,
        (b, h, d, t0, capacity),
    );
    assert_eq!(y.dims(), [b, 1, e]);
    assert_eq!(kv.k.dims(), [b, h, 1, d]);
    let read = |t: Tensor<Wgpu, 4>| t.into_data().to_vec::<f32>().unwrap();
    let shape = format!("b {b} h {h} d {d} t0 {t0} of {capacity} at {position} bias {bias}");
    for (name, got, want) in [
        ("y", y.into_data().to_vec::<f32>().unwrap(), want_y),
        ("k", read(kv.k), want_k),
        ("v", read(kv.v), want_v),
    ] {
        let error = relative_error(&got, &want);
        assert!(error < 1e-5, "{shape}: {name} relative error {error:e}");
    }
}

#[test]
fn decoding_attention_matches_the_host() {
    // No cache yet, the model's heads, several sequences, a head wider than the workgroup, more
    // keys than threads, Huginn-0125's head width, and no bias; buffers full and with room.
    check_attention(1, 4, 32, 0, 0, 0, true, 1);
    check_attention(1, 4, 32, 9, 0, 9, true, 2);
    check_attention(1, 4, 32, 9, 23, 9, true, 6);
    check_attention(3, 2, 8, 70, 58, 130, true, 3);
    check_attention(2, 3, 96, 200, 56, 250, true, 4);
    check_attention(1, 2, 130, 5, 0, 7, false, 5);
}

#[test]
fn caches_beyond_the_kernels_workgroup_memory_fall_back_to_tensor_operations() {
    let device = WgpuDevice::default();
    let (h, d, t0) = (1, 2, MAX_KEYS as usize);
    let zeros = |t| Tensor::<Wgpu, 4>::zeros([1, h, t, d], &device);
    let past = Past {
        buffers: Kv {
            k: zeros(t0),
            v: zeros(t0),
        },
        len: t0,
    };
    let rope = Rope::<Wgpu>::new(d, t0 + 1, 10000.0, &device);
    let qkv = Tensor::zeros([1, 1, 3 * h * d], &device);
    let result = <Wgpu as Kernels>::decode_attention(&qkv, None, rope.tables(), t0, Some(&past), h);
    assert!(result.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_shapes_match_the_host(
        q4 in any::<bool>(),
        rows in 1usize..20,
        n in 1usize..150,
        groups in 1usize..6,
        seed in any::<u64>(),
    ) {
        let format = if q4 { Format::Q4 } else { Format::Q8 };
        check(format, rows, n, 32 * groups, MAX_BINDING_BYTES, seed);
    }
}

mod whole_model {
    use std::path::PathBuf;

    use burn::backend::wgpu::{Wgpu, WgpuDevice};
    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};
    use loopscope_engine::folder::{load_dir, LoadedModel};
    use loopscope_engine::kernels::{Fused, Kernels};
    use loopscope_engine::model::{Kv, Past};
    use loopscope_engine::quant::Format;
    use loopscope_engine::quantize::{quantize_folder, SHARD_BYTES};
    use loopscope_engine::{block_on, Record, Session, ThinkingSettings};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::{random, relative_error};

    const PROMPTS: [&str; 3] = [
        "Tom had 47 marbles and won 38 more, so now he has",
        "a is 7. b is a plus 5. c is b minus 3. So c is",
        "The old dog sleeps by the warm",
    ];

    fn model_dir(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../public/models")
            .join(name)
    }

    /// Final logits after each prompt (a prefill of many rows, then one decoded token: both
    /// kernels) at 4 iterations.
    fn logits<B: Kernels>(model: &LoadedModel<B>) -> Vec<Vec<f32>> {
        let tokenizer = model.tokenizer.as_ref().unwrap();
        PROMPTS
            .iter()
            .map(|prompt| {
                let ids = tokenizer.encode(prompt).unwrap();
                let settings = ThinkingSettings {
                    steps: 4,
                    ..ThinkingSettings::default()
                };
                let mut session = Session::new(&model.model, settings, Record::default()).unwrap();
                let first = block_on(session.feed(&ids)).unwrap();
                block_on(session.feed(&[first.next])).unwrap().logits
            })
            .collect()
    }

    /// The same quantized folder through the kernels (wgpu) and dequantized (CPU).
    fn kernels_agree_with_the_dequantized_model(dir: &std::path::Path) {
        let gpu = load_dir::<Wgpu>(dir, &WgpuDevice::default()).unwrap();
        assert!(
            gpu.model.adapter.packed.0.is_some(),
            "matrices stay packed on wgpu"
        );
        assert!(gpu.model.adapter.weight.is_none());
        let wte = &gpu.model.wte;
        assert!(
            wte.weight.is_none() && wte.packed.0.is_some() && wte.rows.is_some(),
            "the embedding stays codes: on the host for lookups, packed for the tied head"
        );
        let blocks = || gpu.model.prelude.iter().chain(&gpu.model.core_block);
        assert!(
            blocks().chain(&gpu.model.coda).all(|b| b.fused.0.is_some()),
            "every block decodes as one kernel"
        );
        let cpu = load_dir::<NdArray>(dir, &Default::default()).unwrap();
        assert!(cpu.model.adapter.weight.is_some(), "the CPU dequantizes");
        assert!(cpu.model.core_block.iter().all(|b| b.fused.0.is_none()));
        assert!(cpu.model.wte.weight.is_some());
        for (a, b) in logits(&gpu).iter().zip(logits(&cpu)) {
            let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(
                worst / scale < 1e-4,
                "logits differ by {worst} (largest {scale})"
            );
        }
    }

    /// A core block as one kernel and op by op (the other kernels), two sequences: decoding
    /// one position and a prefill of five, with and without the q/k bias, an empty cache and
    /// one of 37 positions in buffers of 64.
    fn fused_block_agrees_with_op_by_op(dir: &std::path::Path) {
        let device = WgpuDevice::default();
        let model = load_dir::<Wgpu>(dir, &device).unwrap().model;
        let (e, heads) = (model.config.n_embd, model.config.n_heads);
        let d = e / heads;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut tensor = |shape: Vec<usize>| {
            let len = shape.iter().product();
            Tensor::<Wgpu, 1>::from_data(TensorData::new(random(len, &mut rng), [len]), &device)
        };
        for with_bias in [true, false] {
            let mut fused = model.core_block[0].clone();
            assert_eq!(fused.attn.qk_bias.is_some(), model.config.qk_bias);
            if !with_bias {
                fused.attn.qk_bias = None;
                fused.fused = Fused(Wgpu::pack_block(&fused));
            }
            assert!(fused.fused.0.is_some(), "the block packs");
            let mut op_by_op = fused.clone();
            op_by_op.fused = Fused(None);
            for (positions, t0, capacity) in [(1, 0, 0), (1, 37, 64), (5, 0, 0), (5, 37, 64)] {
                let x = tensor(vec![2, positions, e]).reshape([2, positions, e]);
                let past = (t0 > 0).then(|| Past {
                    buffers: Kv {
                        k: tensor(vec![2, heads, capacity, d]).reshape([2, heads, capacity, d]),
                        v: tensor(vec![2, heads, capacity, d]).reshape([2, heads, capacity, d]),
                    },
                    len: t0,
                });
                let run = |block: &loopscope_engine::model::SandwichBlock<Wgpu>| {
                    let (out, kv) = block.forward(x.clone(), &model.rope, t0, past.as_ref());
                    let values = |t: Tensor<Wgpu, 4>| t.into_data().to_vec::<f32>().unwrap();
                    (
                        out.into_data().to_vec::<f32>().unwrap(),
                        values(kv.k),
                        values(kv.v),
                    )
                };
                let (got, want) = (run(&fused), run(&op_by_op));
                for (name, a, b) in [
                    ("output", &got.0, &want.0),
                    ("keys", &got.1, &want.1),
                    ("values", &got.2, &want.2),
                ] {
                    let error = relative_error(a, b);
                    assert!(
                        error < 1e-4,
                        "{name} off by {error} (bias {with_bias}, {positions} positions, \
                         {t0} cached)"
                    );
                }
            }
        }
    }

    #[test]
    fn the_shipped_q8_model_runs_on_the_kernels_as_on_the_cpu() {
        kernels_agree_with_the_dequantized_model(&model_dir("loopscope-tiny-q8"));
    }

    #[test]
    fn a_q8_block_runs_as_one_kernel_as_op_by_op() {
        fused_block_agrees_with_op_by_op(&model_dir("loopscope-tiny-q8"));
    }

    #[test]
    fn a_q4_model_runs_on_the_kernels_as_on_the_cpu() {
        let out = tempfile::tempdir().unwrap();
        quantize_folder(
            &model_dir("loopscope-tiny"),
            out.path(),
            Format::Q4,
            SHARD_BYTES,
            |_, _, _| {},
        )
        .unwrap();
        kernels_agree_with_the_dequantized_model(out.path());
        fused_block_agrees_with_op_by_op(out.path());
    }
}
