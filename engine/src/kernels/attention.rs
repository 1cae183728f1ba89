//! Decoding attention as one CubeCL kernel: for one new position, its query and key get the q/k
//! bias and RoPE, then softmax(q k^T / sqrt(d)) v runs over the cached keys followed by its own.
//! Burn's tensor operations take about 30 dispatches for the same (split, bias, rotation, cache
//! concatenation, two products, scaling, softmax, the copies between them).

use cubecl::prelude::*;

use super::reduce::workgroup_reduce;

/// Threads per workgroup (one head of one sequence).
pub const ATTENTION_THREADS: u32 = 64;
/// Widest head the kernel holds in workgroup memory.
pub const MAX_HEAD_DIM: u32 = 256;
/// Most keys (cached positions and the new one) whose scores fit workgroup memory: with the
/// query, the new key and the reduction, 10.3 KiB of WebGPU's 16 KiB.
pub const MAX_KEYS: u32 = 2048;

/// Value c of a RoPE-rotated head vector: pairs (2j, 2j + 1) turn by the angle of pair j at
/// the row `at` of the tables, `x` and `partner` being elements c and c ^ 1.
#[cube]
pub(super) fn rotated(
    x: f32,
    partner: f32,
    c: u32,
    cos: &Array<f32>,
    sin: &Array<f32>,
    at: usize,
) -> f32 {
    // The even element of a pair takes -partner * sin, the odd one +partner * sin.
    let sign = f32::cast_from(c % 2) * 2.0f32 - 1.0f32;
    x * cos[at] + sign * partner * sin[at]
}

/// Workgroup (head, sequence). `qkv` [b, 3 h d] holds the new position's projections, `bias`
/// [2, h, d] the q and k biases (ignored without `has_bias`), `cos`/`sin` [context, d] the RoPE
/// tables, `past_k`/`past_v` [b, h, capacity, d] the cache, whose rows below t0 are read (none
/// when t0 is 0). Writes y [b, h d]
/// and the new position's rotated key and value, [b, h, d] each.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn decode_attention(
    qkv: &Array<f32>,
    bias: &Array<f32>,
    cos: &Array<f32>,
    sin: &Array<f32>,
    past_k: &Array<f32>,
    past_v: &Array<f32>,
    y: &mut Array<f32>,
    new_k: &mut Array<f32>,
    new_v: &mut Array<f32>,
    heads: u32,
    d: u32,
    t0: u32,
    capacity: u32,
    position: u32,
    scale: f32,
    #[comptime] has_bias: bool,
) {
    let head = CUBE_POS_X;
    let seq = CUBE_POS_Y;
    let tid = UNIT_POS_X;
    let e = heads * d;
    let row = seq * 3 * e + head * d;
    let slot = (seq * heads + head) * d;
    let table = position * d;

    let mut q = SharedMemory::<f32>::new(MAX_HEAD_DIM as usize);
    let mut k = SharedMemory::<f32>::new(MAX_HEAD_DIM as usize);
    let mut c = tid;
    while c < d {
        let partner = c ^ 1u32;
        let mut qc = qkv[(row + c) as usize];
        let mut qp = qkv[(row + partner) as usize];
        let mut kc = qkv[(row + e + c) as usize];
        let mut kp = qkv[(row + e + partner) as usize];
        if has_bias {
            qc += bias[(head * d + c) as usize];
            qp += bias[(head * d + partner) as usize];
            kc += bias[(e + head * d + c) as usize];
            kp += bias[(e + head * d + partner) as usize];
        }
        let at = (table + c) as usize;
        q[c as usize] = rotated(qc, qp, c, cos, sin, at);
        let key = rotated(kc, kp, c, cos, sin, at);
        k[c as usize] = key;
        new_k[(slot + c) as usize] = key;
        new_v[(slot + c) as usize] = qkv[(row + 2 * e + c) as usize];
        c += ATTENTION_THREADS;
    }
    sync_cube();

    // Scores, each thread its own keys j = tid, tid + 64, ...
    let t = t0 + 1;
    let cached = (seq * heads + head) * capacity * d;
    let mut scores = SharedMemory::<f32>::new(MAX_KEYS as usize);
    let mut largest = f32::new(-1.0e30);
    let mut j = tid;
    while j < t {
        let mut dot = 0.0f32;
        if j < t0 {
            let from = cached + j * d;
            for i in 0..d {
                dot += q[i as usize] * past_k[(from + i) as usize];
            }
        } else {
            for i in 0..d {
                dot += q[i as usize] * k[i as usize];
            }
        }
        scores[j as usize] = dot * scale;
        if dot * scale > largest {
            largest = dot * scale;
        }
        j += ATTENTION_THREADS;
    }
    let mut red = SharedMemory::<f32>::new(ATTENTION_THREADS as usize);
    let top = workgroup_reduce(largest, &mut red, ATTENTION_THREADS, true);

    let mut sum = 0.0f32;
    let mut j = tid;
    while j < t {
        let weight = f32::exp(scores[j as usize] - top);
        scores[j as usize] = weight;
        sum += weight;
        j += ATTENTION_THREADS;
    }
    let total = workgroup_reduce(sum, &mut red, ATTENTION_THREADS, false);

    // y = softmax · v, each thread its own columns.
    let mut c = tid;
    while c < d {
        let mut acc = 0.0f32;
        for j in 0..t0 {
            acc += scores[j as usize] * past_v[(cached + j * d + c) as usize];
        }
        acc += scores[t0 as usize] * qkv[(row + 2 * e + c) as usize];
        y[(seq * e + head * d + c) as usize] = acc / total;
        c += ATTENTION_THREADS;
    }
}
