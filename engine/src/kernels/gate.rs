//! The gated MLP's middle as one CubeCL kernel: silu(gate) * up, reading both halves of the
//! fc output in place. Burn's tensor operations take about eight dispatches for the same (the
//! halves' copies, silu's exponential, sum, reciprocal and products).

use cubecl::prelude::*;

/// Threads per workgroup.
pub const GATE_THREADS: u32 = 64;

/// silu(gate) * up.
#[cube]
pub(super) fn silu_times(gate: f32, up: f32) -> f32 {
    gate / (1.0f32 + f32::exp(-gate)) * up
}

/// out [rows, i] = silu(h[:, ..i]) * h[:, i..] for h [rows, 2i]; one thread per output, spread
/// over two grid dimensions (WebGPU allows at most 65535 workgroups along each).
#[cube(launch_unchecked)]
pub fn silu_gate(h: &Array<f32>, out: &mut Array<f32>, rows: u32, i: u32) {
    let at = (CUBE_POS_X + CUBE_POS_Y * CUBE_COUNT_X) * GATE_THREADS + UNIT_POS_X;
    if at < rows * i {
        let row = at / i;
        let c = at % i;
        let gate = h[(row * 2 * i + c) as usize];
        let up = h[(row * 2 * i + i + c) as usize];
        out[at as usize] = silu_times(gate, up);
    }
}
