//! RMSNorm as one CubeCL kernel: a workgroup per row sums the squares in shared memory, then
//! scales the row. Burn's tensor operations take seven dispatches for the same (square, mean,
//! add, square root, reciprocal, two products), eight with the residual sum the sandwich block
//! normalizes, and a core iteration runs eight norms.

use cubecl::prelude::*;

use super::reduce::workgroup_reduce;

/// Threads per workgroup (one row).
pub const NORM_THREADS: u32 = 64;

#[cube]
fn value(x: &Array<f32>, residual: &Array<f32>, at: usize, #[comptime] has_residual: bool) -> f32 {
    let mut v = x[at];
    if has_residual {
        v += residual[at];
    }
    v
}

/// out[row] = v / sqrt(mean(v^2) + eps) * weight with v = x[row] (+ residual[row] with
/// `has_residual`) for x [rows, dim], rows spread over two grid dimensions (WebGPU allows at
/// most 65535 workgroups along each).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn rms_norm(
    x: &Array<f32>,
    residual: &Array<f32>,
    weight: &Array<f32>,
    out: &mut Array<f32>,
    rows: u32,
    dim: u32,
    eps: f32,
    #[comptime] has_residual: bool,
) {
    let row = CUBE_POS_X + CUBE_POS_Y * CUBE_COUNT_X;
    let t = UNIT_POS_X;
    let mut sum = 0.0f32;
    if row < rows {
        let mut i = t;
        while i < dim {
            let v = value(x, residual, (row * dim + i) as usize, has_residual);
            sum += v * v;
            i += NORM_THREADS;
        }
    }
    let mut red = SharedMemory::<f32>::new(NORM_THREADS as usize);
    let total = workgroup_reduce(sum, &mut red, NORM_THREADS, false);
    if row < rows {
        let inv = 1.0f32 / f32::sqrt(total / f32::cast_from(dim) + eps);
        let mut i = t;
        while i < dim {
            let at = (row * dim + i) as usize;
            out[at] = value(x, residual, at, has_residual) * inv * weight[i as usize];
            i += NORM_THREADS;
        }
    }
}
