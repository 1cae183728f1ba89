//! The GPU kernels behind a quantized Linear, written in CubeCL (compiled to WGSL for WebGPU,
//! SPIR-V or WGSL natively). They read q8/q4 codes as u32 words and dequantize in registers:
//! f32 arithmetic only, since browsers rarely offer shader-f16.
//!
//! Layout, as `quant::Quantized` stores it: [n = out, k = in] row-major, groups of 32 along k.
//! q8: four int8 codes per word, lowest k in the lowest byte; one scale per group.
//! q4: eight 4-bit codes per word, lowest k in the lowest nibble (the stored byte stream read
//! as little-endian words); value = code * scale + min.
//! x is f32 [rows, k]; out is f32 [rows, out_stride] and a launch writes columns
//! col_offset..col_offset + n, so that a matrix split into several buffers (a browser binds at
//! most 128 MiB) fills one output. Every kernel takes the format at compile time (`q4`; q8
//! otherwise) and, for q8, ignores `mins` (the caller passes the scales again).

use cubecl::prelude::*;

use super::reduce::workgroup_reduce;

/// Threads per workgroup of the matrix-vector kernels.
pub const GEMV_THREADS: u32 = 64;
/// The matrix-matrix kernel's tile: TM rows x TN columns per workgroup of 16 x 16 threads,
/// each thread computing RPT x 4 outputs.
pub const TM: u32 = 64;
pub const TN: u32 = 64;
const RPT: u32 = TM / 16;

/// One group of 32 of output column `col`'s row, dotted with x from `xg`, scaled. Slices, so
/// that x may sit in workgroup memory and a matrix inside a larger buffer (`block`).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn group_dot(
    x: &Slice<f32>,
    codes: &Slice<u32>,
    scales: &Slice<f32>,
    mins: &Slice<f32>,
    col: u32,
    g: u32,
    k: u32,
    xg: usize,
    #[comptime] q4: bool,
) -> f32 {
    let at = (col * (k / 32) + g) as usize;
    let mut dot = 0.0f32;
    let mut xsum = 0.0f32;
    if q4 {
        // x · (c s + m) = s (x · c) + m sum x
        let wg = (col * (k / 8) + g * 4) as usize;
        #[unroll]
        for w in 0..4u32 {
            let word = codes[wg + w as usize];
            #[unroll]
            for b in 0..8u32 {
                let xv = x[xg + (w * 8 + b) as usize];
                dot += f32::cast_from((word >> (b * 4)) & 0xFu32) * xv;
                xsum += xv;
            }
        }
    } else {
        let wg = (col * (k / 4) + g * 8) as usize;
        #[unroll]
        for w in 0..8u32 {
            let word = codes[wg + w as usize];
            #[unroll]
            for b in 0..4u32 {
                // An int8 code: its byte with the sign bit flipped, less 128.
                let byte = (word >> (b * 8)) & 0xFFu32;
                dot += (f32::cast_from(byte ^ 0x80u32) - 128.0f32) * x[xg + (w * 4 + b) as usize];
            }
        }
    }
    let mut value = dot * scales[at];
    if q4 {
        value += xsum * mins[at];
    }
    value
}

/// Decoding. With long rows, one workgroup of 64 threads per (output column, row): the column
/// spans two grid dimensions (WebGPU allows at most 65535 workgroups along each), threads take
/// turns over the groups of 32, then sum in shared memory. With short rows (`narrow`), one
/// thread per (output column, row) walks its whole row: the wide layout would leave most
/// threads idle and pay for a reduction.
#[cube(launch_unchecked)]
pub fn gemv(
    x: &Array<f32>,
    codes: &Array<u32>,
    scales: &Array<f32>,
    mins: &Array<f32>,
    out: &mut Array<f32>,
    k: u32,
    n: u32,
    out_stride: u32,
    col_offset: u32,
    #[comptime] q4: bool,
    #[comptime] narrow: bool,
) {
    let (x, codes) = (x.to_slice(), codes.to_slice());
    let (scales, mins) = (scales.to_slice(), mins.to_slice());
    if narrow {
        let col = CUBE_POS_X * GEMV_THREADS + UNIT_POS_X;
        let row = CUBE_POS_Y;
        if col < n {
            let mut acc = 0.0f32;
            for g in 0..k / 32 {
                let xg = (row * k + g * 32) as usize;
                acc += group_dot(&x, &codes, &scales, &mins, col, g, k, xg, q4);
            }
            out[(row * out_stride + col_offset + col) as usize] = acc;
        }
    } else {
        let col = CUBE_POS_X + CUBE_POS_Y * CUBE_COUNT_X;
        let row = CUBE_POS_Z;
        let t = UNIT_POS_X;
        let mut acc = 0.0f32;
        if col < n {
            let mut g = t;
            while g < k / 32 {
                let xg = (row * k + g * 32) as usize;
                acc += group_dot(&x, &codes, &scales, &mins, col, g, k, xg, q4);
                g += GEMV_THREADS;
            }
        }
        let mut red = SharedMemory::<f32>::new(GEMV_THREADS as usize);
        let total = workgroup_reduce(acc, &mut red, GEMV_THREADS, false);
        if t == 0 && col < n {
            out[(row * out_stride + col_offset + col) as usize] = total;
        }
    }
}

/// Prefill (many rows): a TM x TN tile of the output per workgroup, stepping along k one group
/// at a time through shared memory (32 x (TM + TN) f32 = 16 KiB, WebGPU's default workgroup
/// storage).
#[cube(launch_unchecked)]
pub fn gemm(
    x: &Array<f32>,
    codes: &Array<u32>,
    scales: &Array<f32>,
    mins: &Array<f32>,
    out: &mut Array<f32>,
    rows: u32,
    k: u32,
    n: u32,
    out_stride: u32,
    col_offset: u32,
    #[comptime] q4: bool,
) {
    let tx = UNIT_POS_X; // columns
    let ty = UNIT_POS_Y; // rows
    let tid = ty * 16 + tx;
    let col0 = CUBE_POS_X * TN;
    let row0 = CUBE_POS_Y * TM;
    let groups = k / 32;

    // xs[kk * TM + r], ws[kk * TN + c]
    let mut xs = SharedMemory::<f32>::new((32 * TM) as usize);
    let mut ws = SharedMemory::<f32>::new((32 * TN) as usize);

    let mut acc = Array::<f32>::new((RPT * 4) as usize);
    #[unroll]
    for i in 0..RPT * 4 {
        acc[i as usize] = 0.0f32;
    }

    for g in 0..groups {
        // x tile: TM rows x 32 k, TM/8 values per thread.
        #[unroll]
        for i in 0..TM / 8 {
            let idx = tid + i * 256;
            let r = idx / 32;
            let kk = idx % 32;
            let grow = row0 + r;
            let mut v = 0.0f32;
            if grow < rows {
                v = x[(grow * k + g * 32 + kk) as usize];
            }
            xs[(kk * TM + r) as usize] = v;
        }
        // w tile, dequantized: 64 columns x 32 values.
        if q4 {
            // 256 words, one per thread, eight codes each.
            let c = tid / 4;
            let w = tid % 4;
            let gcol = col0 + c;
            let mut word = 0u32;
            let mut sc = 0.0f32;
            let mut mn = 0.0f32;
            if gcol < n {
                word = codes[(gcol * (k / 8) + g * 4 + w) as usize];
                sc = scales[(gcol * groups + g) as usize];
                mn = mins[(gcol * groups + g) as usize];
            }
            #[unroll]
            for b in 0..8u32 {
                let v = f32::cast_from((word >> (b * 4)) & 0xFu32) * sc + mn;
                ws[((w * 8 + b) * TN + c) as usize] = v;
            }
        } else {
            // 512 words, two per thread, four codes each.
            #[unroll]
            for i in 0..2u32 {
                let idx = tid + i * 256;
                let c = idx / 8;
                let w = idx % 8;
                let gcol = col0 + c;
                let mut word = 0x80808080u32; // decodes to zeros
                let mut sc = 0.0f32;
                if gcol < n {
                    word = codes[(gcol * (k / 4) + g * 8 + w) as usize];
                    sc = scales[(gcol * groups + g) as usize];
                }
                #[unroll]
                for b in 0..4u32 {
                    let byte = (word >> (b * 8)) & 0xFFu32;
                    let v = (f32::cast_from(byte ^ 0x80u32) - 128.0f32) * sc;
                    ws[((w * 4 + b) * TN + c) as usize] = v;
                }
            }
        }
        sync_cube();
        for kk in 0..32u32 {
            let mut b = Array::<f32>::new(4usize);
            #[unroll]
            for j in 0..4u32 {
                b[j as usize] = ws[(kk * TN + tx + j * 16) as usize];
            }
            #[unroll]
            for i in 0..RPT {
                let a = xs[(kk * TM + ty + i * 16) as usize];
                #[unroll]
                for j in 0..4u32 {
                    acc[(i * 4 + j) as usize] += a * b[j as usize];
                }
            }
        }
        sync_cube();
    }

    #[unroll]
    for i in 0..RPT {
        let grow = row0 + ty + i * 16;
        #[unroll]
        for j in 0..4u32 {
            let gcol = col0 + tx + j * 16;
            if grow < rows && gcol < n {
                out[(grow * out_stride + col_offset + gcol) as usize] = acc[(i * 4 + j) as usize];
            }
        }
    }
}
