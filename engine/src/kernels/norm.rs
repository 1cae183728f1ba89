//! RMSNorm as one CubeCL kernel: a workgroup per row sums the squares in shared memory, then
//! scales the row. Burn's tensor operations take seven dispatches for the same (square, mean,
//! add, square root, reciprocal, two products), and a decoded token runs a dozen norms an
//! iteration.

use cubecl::prelude::*;

/// Threads per workgroup (one row).
pub const NORM_THREADS: u32 = 64;

/// out[row] = x[row] / sqrt(mean(x[row]^2) + eps) * weight for x [rows, dim], rows spread over
/// two grid dimensions (WebGPU allows at most 65535 workgroups along each).
#[cube(launch_unchecked)]
pub fn rms_norm(
    x: &Array<f32>,
    weight: &Array<f32>,
    out: &mut Array<f32>,
    rows: u32,
    dim: u32,
    eps: f32,
) {
    let row = CUBE_POS_X + CUBE_POS_Y * CUBE_COUNT_X;
    let t = UNIT_POS_X;
    let mut sum = 0.0f32;
    if row < rows {
        let mut i = t;
        while i < dim {
            let v = x[(row * dim + i) as usize];
            sum += v * v;
            i += NORM_THREADS;
        }
    }
    let mut smem = SharedMemory::<f32>::new(NORM_THREADS as usize);
    smem[t as usize] = sum;
    sync_cube();
    #[unroll]
    for i in 0..6u32 {
        let s = 32u32 >> i;
        if t < s {
            smem[t as usize] = smem[t as usize] + smem[(t + s) as usize];
        }
        sync_cube();
    }
    if row < rows {
        let inv = 1.0f32 / f32::sqrt(smem[0] / f32::cast_from(dim) + eps);
        let mut i = t;
        while i < dim {
            let at = (row * dim + i) as usize;
            out[at] = x[at] * inv * weight[i as usize];
            i += NORM_THREADS;
        }
    }
}
