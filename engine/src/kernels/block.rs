//! A whole sandwich block as one CubeCL kernel (two for a prefill): one workgroup per position
//! keeps its 128-wide state in workgroup memory through the four norms, the four products
//! (q8/q4 codes read as `qmatmul` reads them), attention over the cache and the MLP's gate. Op
//! by op the same block is ten dispatches when decoding and about thirty in a prefill, each
//! costing far more than its arithmetic in a small model.
//!
//! Weights come in two buffers (`BlockPack`), so that the kernel binds as few storage buffers
//! as the attention kernel (browsers guarantee 8 a stage, most offer 10 or more):
//! - `params` f32: norm_1..norm_4 weights (e each), the q/k bias (2e, with `has_bias`), then the
//!   scales of Wqkv, proj, fc and the MLP's proj in that order, then (q4) their minimums;
//! - `codes` u32: the four matrices' codes in the same order.

use cubecl::prelude::*;

use super::attention::rotated;
use super::gate::silu_times;
use super::qmatmul::group_dot;
use super::reduce::workgroup_reduce;

/// Threads per workgroup (one position of one sequence).
pub const BLOCK_THREADS: u32 = 128;
/// Widest state the kernel holds.
pub const MAX_EMBD: u32 = 256;
/// Widest product output it holds: 3 n_embd (q, k, v) and 2 intermediate_size (gate, up).
pub const MAX_WIDE: u32 = 1024;
/// Widest head.
pub const MAX_HEAD_DIM: u32 = 128;
/// Most keys (cached positions and the call's). With the buffers above, 13.8 KiB of WebGPU's
/// 16 KiB of workgroup memory.
pub const MAX_KEYS: u32 = 1024;

/// 1 / sqrt(mean(v^2) + eps) of v = src[0..e].
#[cube]
fn inv_rms(src: &SharedMemory<f32>, e: u32, eps: f32, red: &mut SharedMemory<f32>) -> f32 {
    let mut sum = 0.0f32;
    let mut c = UNIT_POS_X;
    while c < e {
        sum += src[c as usize] * src[c as usize];
        c += BLOCK_THREADS;
    }
    let total = workgroup_reduce(sum, red, BLOCK_THREADS, false);
    1.0f32 / f32::sqrt(total / f32::cast_from(e) + eps)
}

/// u32 words of a packed [rows, k] matrix.
#[cube]
fn words(rows: u32, k: u32, #[comptime] q4: bool) -> u32 {
    if q4 {
        rows * k / 8
    } else {
        rows * k / 4
    }
}

/// dst[c] = norm(src)[c] = src[c] / rms(src) * params[weight_at + c] for c < e.
#[cube]
#[allow(clippy::too_many_arguments)]
fn normalized(
    src: &SharedMemory<f32>,
    dst: &mut SharedMemory<f32>,
    params: &Array<f32>,
    weight_at: u32,
    e: u32,
    eps: f32,
    red: &mut SharedMemory<f32>,
) {
    let inv = inv_rms(src, e, eps, red);
    let mut c = UNIT_POS_X;
    while c < e {
        dst[c as usize] = src[c as usize] * inv * params[(weight_at + c) as usize];
        c += BLOCK_THREADS;
    }
    sync_cube();
}

/// out[col] = x · row col of the packed [n, k] matrix whose codes start at word `codes_at`
/// and whose scales start at `scales_at` of `params` (minimums `spread` further), for col < n,
/// threads taking turns.
#[cube]
#[allow(clippy::too_many_arguments)]
fn product(
    x: &Slice<f32>,
    codes: &Array<u32>,
    params: &Array<f32>,
    codes_at: u32,
    scales_at: u32,
    spread: u32,
    out: &mut SharedMemory<f32>,
    n: u32,
    k: u32,
    #[comptime] q4: bool,
) {
    let codes = codes.slice(codes_at as usize, (codes_at + words(n, k, q4)) as usize);
    let groups = n * (k / 32);
    let scales = params.slice(scales_at as usize, (scales_at + groups) as usize);
    let mins_at = scales_at + spread;
    let mins = params.slice(mins_at as usize, (mins_at + groups) as usize);
    let mut col = UNIT_POS_X;
    while col < n {
        let mut acc = 0.0f32;
        for g in 0..k / 32 {
            acc += group_dot(x, &codes, &scales, &mins, col, g, k, (g * 32) as usize, q4);
        }
        out[col as usize] = acc;
        col += BLOCK_THREADS;
    }
    sync_cube();
}

/// The RoPE-rotated query and key of every head of one position, from its projections in
/// `wide` (q, k, v one after another) plus the bias, into `qk` (q then k).
#[cube]
#[allow(clippy::too_many_arguments)]
fn rotate_all(
    wide: &SharedMemory<f32>,
    qk: &mut SharedMemory<f32>,
    params: &Array<f32>,
    cos: &Array<f32>,
    sin: &Array<f32>,
    e: u32,
    d: u32,
    position: u32,
    #[comptime] has_bias: bool,
) {
    let bias_at = 4 * e;
    let mut c = UNIT_POS_X;
    while c < e {
        // Pairs never cross heads (d is even), so the partner is c ^ 1 over all heads too.
        let partner = c ^ 1u32;
        let mut qc = wide[c as usize];
        let mut qp = wide[partner as usize];
        let mut kc = wide[(e + c) as usize];
        let mut kp = wide[(e + partner) as usize];
        if has_bias {
            qc += params[(bias_at + c) as usize];
            qp += params[(bias_at + partner) as usize];
            kc += params[(bias_at + e + c) as usize];
            kp += params[(bias_at + e + partner) as usize];
        }
        let within = c % d;
        let table = (position * d + within) as usize;
        qk[c as usize] = rotated(qc, qp, within, cos, sin, table);
        qk[(e + c) as usize] = rotated(kc, kp, within, cos, sin, table);
        c += BLOCK_THREADS;
    }
    sync_cube();
}

/// Workgroup (sequence `row`, position `p` of `s`): out [b, s, e] = the block applied to x
/// [b, s, e], the first position at `start`, attending to rows below t0 of the cache buffers
/// [b, heads, capacity, d], then to the call's positions up to its own. `fresh` [planes, b,
/// heads, s, d] holds the call's rotated keys (plane 0), values (1) and, between two stages,
/// queries (2).
///
/// One position (decoding) is one dispatch, `project` and `finish` both set. Several positions
/// (prefill) attend to each other's keys, which no workgroup can wait for: a first dispatch
/// (`project` alone) writes every position's q, k and v, a second (`finish` alone) reads them.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn block(
    x: &Array<f32>,
    params: &Array<f32>,
    codes: &Array<u32>,
    cos: &Array<f32>,
    sin: &Array<f32>,
    past_k: &Array<f32>,
    past_v: &Array<f32>,
    out: &mut Array<f32>,
    fresh: &mut Array<f32>,
    heads: u32,
    d: u32,
    inter: u32,
    t0: u32,
    capacity: u32,
    start: u32,
    scale: f32,
    eps: f32,
    #[comptime] q4: bool,
    #[comptime] has_bias: bool,
    #[comptime] project: bool,
    #[comptime] finish: bool,
) {
    let row = CUBE_POS_X;
    let b = CUBE_COUNT_X;
    let p = CUBE_POS_Y;
    let s = CUBE_COUNT_Y;
    let t = UNIT_POS_X;
    let e = heads * d;

    // Where each matrix's scales (and minimums, `spread` further) and codes start.
    let mut s_qkv = 4 * e;
    if has_bias {
        s_qkv += 2 * e;
    }
    let s_proj = s_qkv + 3 * e * (e / 32);
    let s_fc = s_proj + e * (e / 32);
    let s_down = s_fc + 2 * inter * (e / 32);
    let s_end = s_down + e * (inter / 32);
    let mut spread = 0u32;
    if q4 {
        spread = s_end - s_qkv;
    }
    let c_proj = words(3 * e, e, q4);
    let c_fc = c_proj + words(e, e, q4);
    let c_down = c_fc + words(2 * inter, e, q4);
    // One plane of `fresh`: [b, heads, s, d].
    let plane = b * e * s;

    let mut xs = SharedMemory::<f32>::new(MAX_EMBD as usize);
    let mut a = SharedMemory::<f32>::new(MAX_EMBD as usize);
    let mut ys = SharedMemory::<f32>::new(MAX_EMBD as usize);
    let mut wide = SharedMemory::<f32>::new(MAX_WIDE as usize);
    let mut qk = SharedMemory::<f32>::new(2 * MAX_EMBD as usize);
    let mut scores = SharedMemory::<f32>::new(MAX_KEYS as usize);
    let mut red = SharedMemory::<f32>::new(BLOCK_THREADS as usize);

    let x_at = (row * s + p) * e;
    let mut c = t;
    while c < e {
        xs[c as usize] = x[(x_at + c) as usize];
        c += BLOCK_THREADS;
    }
    sync_cube();

    // This position's rotated q and k into qk, its v into wide[2e..3e]: computed as
    // norm_1(x) Wqkv, or read back from the first stage.
    if project {
        normalized(&xs, &mut a, params, 0, e, eps, &mut red);
        product(
            &a.to_slice(),
            codes,
            params,
            0,
            s_qkv,
            spread,
            &mut wide,
            3 * e,
            e,
            q4,
        );
        rotate_all(&wide, &mut qk, params, cos, sin, e, d, start + p, has_bias);
        let mut c = t;
        while c < e {
            let at = ((row * heads + c / d) * s + p) * d + c % d;
            fresh[at as usize] = qk[(e + c) as usize];
            fresh[(at + plane) as usize] = wide[(2 * e + c) as usize];
            if !finish {
                fresh[(at + 2 * plane) as usize] = qk[c as usize];
            }
            c += BLOCK_THREADS;
        }
    } else {
        let mut c = t;
        while c < e {
            let at = ((row * heads + c / d) * s + p) * d + c % d;
            qk[(e + c) as usize] = fresh[at as usize];
            wide[(2 * e + c) as usize] = fresh[(at + plane) as usize];
            qk[c as usize] = fresh[(at + 2 * plane) as usize];
            c += BLOCK_THREADS;
        }
        sync_cube();
    }

    if finish {
        // Attention, a head at a time, over the cache, the call's earlier positions, then this
        // one; y into ys.
        let keys = t0 + p + 1;
        for head in 0..heads {
            let at = head * d;
            let cached = (row * heads + head) * capacity * d;
            let earlier = (row * heads + head) * s * d;
            let mut largest = f32::new(-1.0e30);
            let mut j = t;
            while j < keys {
                let mut dot = 0.0f32;
                if j < t0 {
                    for i in 0..d {
                        dot += qk[(at + i) as usize] * past_k[(cached + j * d + i) as usize];
                    }
                } else if j < t0 + p {
                    let from = earlier + (j - t0) * d;
                    for i in 0..d {
                        dot += qk[(at + i) as usize] * fresh[(from + i) as usize];
                    }
                } else {
                    for i in 0..d {
                        dot += qk[(at + i) as usize] * qk[(e + at + i) as usize];
                    }
                }
                let score = dot * scale;
                scores[j as usize] = score;
                if score > largest {
                    largest = score;
                }
                j += BLOCK_THREADS;
            }
            let top = workgroup_reduce(largest, &mut red, BLOCK_THREADS, true);
            let mut sum = 0.0f32;
            let mut j = t;
            while j < keys {
                let weight = f32::exp(scores[j as usize] - top);
                scores[j as usize] = weight;
                sum += weight;
                j += BLOCK_THREADS;
            }
            let total = workgroup_reduce(sum, &mut red, BLOCK_THREADS, false);
            let values = earlier + plane;
            let mut c = t;
            while c < d {
                let mut acc = 0.0f32;
                for j in 0..t0 {
                    acc += scores[j as usize] * past_v[(cached + j * d + c) as usize];
                }
                for j in 0..p {
                    acc += scores[(t0 + j) as usize] * fresh[(values + j * d + c) as usize];
                }
                acc += scores[(keys - 1) as usize] * wide[(2 * e + at + c) as usize];
                ys[(at + c) as usize] = acc / total;
                c += BLOCK_THREADS;
            }
            sync_cube();
        }

        // h = norm_2(x + y Wproj), kept in xs.
        product(
            &ys.to_slice(),
            codes,
            params,
            c_proj,
            s_proj,
            spread,
            &mut a,
            e,
            e,
            q4,
        );
        let mut c = t;
        while c < e {
            a[c as usize] = a[c as usize] + xs[c as usize];
            c += BLOCK_THREADS;
        }
        sync_cube();
        normalized(&a, &mut xs, params, e, e, eps, &mut red);

        // gate, up = norm_3(h) Wfc; silu(gate) * up; then its product with the MLP's proj into ys.
        normalized(&xs, &mut a, params, 2 * e, e, eps, &mut red);
        product(
            &a.to_slice(),
            codes,
            params,
            c_fc,
            s_fc,
            spread,
            &mut wide,
            2 * inter,
            e,
            q4,
        );
        let mut c = t;
        while c < inter {
            let gate = wide[c as usize];
            wide[c as usize] = silu_times(gate, wide[(inter + c) as usize]);
            c += BLOCK_THREADS;
        }
        sync_cube();
        product(
            &wide.to_slice(),
            codes,
            params,
            c_down,
            s_down,
            spread,
            &mut ys,
            e,
            inter,
            q4,
        );

        // out = norm_4(h + mlp)
        let mut c = t;
        while c < e {
            a[c as usize] = xs[c as usize] + ys[c as usize];
            c += BLOCK_THREADS;
        }
        sync_cube();
        let inv = inv_rms(&a, e, eps, &mut red);
        let mut c = t;
        while c < e {
            out[(x_at + c) as usize] = a[c as usize] * inv * params[(3 * e + c) as usize];
            c += BLOCK_THREADS;
        }
    }
}
