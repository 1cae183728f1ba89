//! `Kernels` on burn's CubeCL backends (`burn::backend::Wgpu`): codes uploaded as u32
//! words, products by the kernels in `qmatmul`; RMSNorm, the MLP's gate and decoding
//! attention by those in `norm`, `gate` and `attention`; a whole block by `block`.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Shape, Tensor, TensorData, TensorPrimitive};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::{CubeCount, CubeDim};

use super::{attention, block, gate, norm, packable, qmatmul, BlockPack, Chunk, Kernels, QWeight};
use crate::model::{Kv, Linear, Past, SandwichBlock};
use crate::quant::{Format, Quantized, GROUP};

/// Up to this many rows a product is a matrix-vector one (decoding).
const GEMV_MAX_ROWS: usize = 4;
/// Rows of at most this many groups of 32 go one thread per output (the narrow kernels).
const NARROW_MAX_GROUPS: u32 = 16;
/// WebGPU's limit on workgroups along one grid dimension.
const MAX_GRID: u32 = 65535;

impl<R, F, I, BT> Kernels for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn packs(w: &Quantized) -> bool {
        packable(w)
    }

    fn upload(w: &Quantized, device: &Self::Device, max_binding_bytes: usize) -> QWeight<Self> {
        if !Self::packs(w) {
            return QWeight::dense(w, device);
        }
        let (n, k) = (w.rows, w.cols);
        let row_bytes = Quantized::row_bytes(w.format, k);
        let groups = k / GROUP;
        let per_chunk = (max_binding_bytes / row_bytes).max(1);
        let floats = |values: &[half::f16]| -> Tensor<Self, 1> {
            let values: Vec<f32> = values.iter().map(|v| v.to_f32()).collect();
            let len = values.len();
            Tensor::from_data(TensorData::new(values, [len]), device)
        };
        let chunks = (0..n)
            .step_by(per_chunk)
            .map(|start| {
                let rows = per_chunk.min(n - start);
                let words: Vec<u32> = w.data[start * row_bytes..(start + rows) * row_bytes]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let len = words.len();
                let group_range = start * groups..(start + rows) * groups;
                Chunk {
                    n: rows,
                    col_offset: start,
                    // The dtype must be given: by default the values would be converted to i32.
                    codes: Tensor::from_data(TensorData::new(words, [len]), (device, DType::U32)),
                    scales: floats(&w.scales[group_range.clone()]),
                    mins: (w.format == Format::Q4).then(|| floats(&w.mins[group_range])),
                }
            })
            .collect();
        QWeight::Packed {
            format: w.format,
            n,
            k,
            chunks,
        }
    }

    fn qlinear(x: Tensor<Self, 2>, w: &QWeight<Self>) -> Tensor<Self, 2> {
        let (format, n, k, chunks) = match w {
            QWeight::Dense(d) => return x.matmul(d.clone()),
            QWeight::Packed {
                format,
                n,
                k,
                chunks,
            } => (*format, *n, *k, chunks),
        };
        let [rows, d_in] = x.dims();
        assert_eq!(d_in, k, "input width");
        let x = float_arg(x);
        assert_eq!(x.dtype, DType::F32, "the kernels compute in f32");
        let client = x.client.clone();
        let out = empty_device::<R, f32>(client.clone(), x.device.clone(), Shape::new([rows, n]));
        let (rows, k, stride) = (rows as u32, k as u32, n as u32);
        for chunk in chunks {
            let codes: CubeTensor<R> = chunk.codes.clone().into_primitive();
            let scales: CubeTensor<R> = chunk.scales.clone().into_primitive().tensor();
            let mins: Option<CubeTensor<R>> =
                chunk.mins.clone().map(|m| m.into_primitive().tensor());
            let (cols, offset) = (chunk.n as u32, chunk.col_offset as u32);
            let (x, out) = (x.clone(), out.clone());
            let gemv = rows as usize <= GEMV_MAX_ROWS;
            let narrow = gemv && k / GROUP as u32 <= NARROW_MAX_GROUPS;
            let (count, dim) = if narrow {
                let count = CubeCount::Static(cols.div_ceil(qmatmul::GEMV_THREADS), rows, 1);
                (count, CubeDim::new_1d(qmatmul::GEMV_THREADS))
            } else if gemv {
                let across = cols.min(MAX_GRID / 2);
                let count = CubeCount::Static(across, cols.div_ceil(across), rows);
                (count, CubeDim::new_1d(qmatmul::GEMV_THREADS))
            } else {
                let count =
                    CubeCount::Static(cols.div_ceil(qmatmul::TN), rows.div_ceil(qmatmul::TM), 1);
                (count, CubeDim::new_2d(16, 16))
            };
            let q4 = format == Format::Q4;
            // q8 has no minimums; its kernels ignore the argument.
            let mins = mins.unwrap_or_else(|| scales.clone());
            // SAFETY: every global read and write in the kernels is guarded by the row and
            // column counts passed with them, and the buffers are contiguous tensors of the
            // lengths those counts imply (checked above and by `upload`).
            unsafe {
                let (x, codes, scales, mins, out) = (
                    x.into_array_arg(),
                    codes.into_array_arg(),
                    scales.into_array_arg(),
                    mins.into_array_arg(),
                    out.into_array_arg(),
                );
                if gemv {
                    qmatmul::gemv::launch_unchecked::<R>(
                        &client, count, dim, x, codes, scales, mins, out, k, cols, stride, offset,
                        q4, narrow,
                    );
                } else {
                    qmatmul::gemm::launch_unchecked::<R>(
                        &client, count, dim, x, codes, scales, mins, out, rows, k, cols, stride,
                        offset, q4,
                    );
                }
            }
        }
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    fn rms_norm(
        x: Tensor<Self, 2>,
        residual: Option<Tensor<Self, 2>>,
        weight: Tensor<Self, 1>,
        eps: f64,
    ) -> Tensor<Self, 2> {
        let [rows, dim] = x.dims();
        assert_eq!(weight.dims(), [dim], "one weight per column");
        let x = float_arg(x);
        let weight = float_arg(weight);
        assert_eq!(x.dtype, DType::F32, "the kernels compute in f32");
        let has_residual = residual.is_some();
        // Without a residual the kernel never reads the argument.
        let residual: CubeTensor<R> = match residual {
            Some(r) => {
                assert_eq!(r.dims(), [rows, dim], "a residual of x's shape");
                float_arg(r)
            }
            None => x.clone(),
        };
        let client = x.client.clone();
        let out = empty_device::<R, f32>(client.clone(), x.device.clone(), Shape::new([rows, dim]));
        let rows = rows as u32;
        let across = rows.clamp(1, MAX_GRID);
        let count = CubeCount::Static(across, rows.div_ceil(across), 1);
        // SAFETY: the kernel reads and writes only rows below `rows` and columns below `dim` of
        // contiguous [rows, dim] tensors (x, the residual, out), and weight has `dim` values.
        unsafe {
            norm::rms_norm::launch_unchecked::<R>(
                &client,
                count,
                CubeDim::new_1d(norm::NORM_THREADS),
                x.into_array_arg(),
                residual.into_array_arg(),
                weight.into_array_arg(),
                out.clone().into_array_arg(),
                rows,
                dim as u32,
                eps as f32,
                has_residual,
            );
        }
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    fn silu_gate(h: Tensor<Self, 2>) -> Tensor<Self, 2> {
        let [rows, two_i] = h.dims();
        let i = two_i / 2;
        let h = float_arg(h);
        assert_eq!(h.dtype, DType::F32, "the kernels compute in f32");
        let client = h.client.clone();
        let out = empty_device::<R, f32>(client.clone(), h.device.clone(), Shape::new([rows, i]));
        let groups = ((rows * i) as u32).div_ceil(gate::GATE_THREADS).max(1);
        let across = groups.min(MAX_GRID);
        let count = CubeCount::Static(across, groups.div_ceil(across), 1);
        // SAFETY: threads past rows * i write nothing; the others read h [rows, 2i] and write
        // out [rows, i] inside their rows (contiguous tensors of those shapes).
        unsafe {
            gate::silu_gate::launch_unchecked::<R>(
                &client,
                count,
                CubeDim::new_1d(gate::GATE_THREADS),
                h.into_array_arg(),
                out.clone().into_array_arg(),
                rows as u32,
                i as u32,
            );
        }
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    fn decode_attention(
        qkv: &Tensor<Self, 3>,
        qk_bias: Option<Tensor<Self, 4>>,
        rope: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        position: usize,
        past: Option<&Past<Self>>,
        heads: usize,
    ) -> Option<(Tensor<Self, 3>, Kv<Self>)> {
        let [b, _, three_e] = qkv.dims();
        let e = three_e / 3;
        let d = e / heads;
        let (t0, capacity) = cache_extent(past);
        let fits = d <= attention::MAX_HEAD_DIM as usize
            && t0 < attention::MAX_KEYS as usize
            && b as u32 <= MAX_GRID
            && position < rope.0.dims()[0];
        if !fits {
            return None;
        }
        let qkv = float_arg(qkv.clone());
        assert_eq!(qkv.dtype, DType::F32, "the kernels compute in f32");
        let client = qkv.client.clone();
        let device = qkv.device.clone();
        let has_bias = qk_bias.is_some();
        // Without `has_bias` (comptime) the kernel never reads the bias: any buffer will do.
        let bias = qk_bias.map_or_else(|| qkv.clone(), float_arg);
        let (past_k, past_v) = cache_args(past, &qkv);
        let y = empty_device::<R, f32>(client.clone(), device.clone(), Shape::new([b, 1, e]));
        let new_k =
            empty_device::<R, f32>(client.clone(), device.clone(), Shape::new([b, heads, 1, d]));
        let new_v = empty_device::<R, f32>(client.clone(), device, Shape::new([b, heads, 1, d]));
        // SAFETY: every index the kernel forms stays below the lengths of contiguous tensors of
        // the shapes checked above: qkv [b, 3e], bias [2, heads, d], tables [context, d] read at
        // row `position` < context, the cache [b, heads, capacity, d] read at rows < t0 <=
        // capacity, the outputs as allocated.
        unsafe {
            attention::decode_attention::launch_unchecked::<R>(
                &client,
                CubeCount::Static(heads as u32, b as u32, 1),
                CubeDim::new_1d(attention::ATTENTION_THREADS),
                qkv.into_array_arg(),
                bias.into_array_arg(),
                float_arg(rope.0.clone()).into_array_arg(),
                float_arg(rope.1.clone()).into_array_arg(),
                past_k.into_array_arg(),
                past_v.into_array_arg(),
                y.clone().into_array_arg(),
                new_k.clone().into_array_arg(),
                new_v.clone().into_array_arg(),
                heads as u32,
                d as u32,
                t0 as u32,
                capacity as u32,
                position as u32,
                (1.0 / (d as f64).sqrt()) as f32,
                has_bias,
            );
        }
        Some((
            Tensor::from_primitive(TensorPrimitive::Float(y)),
            Kv {
                k: Tensor::from_primitive(TensorPrimitive::Float(new_k)),
                v: Tensor::from_primitive(TensorPrimitive::Float(new_v)),
            },
        ))
    }

    fn pack_block(b: &SandwichBlock<Self>) -> Option<BlockPack<Self>> {
        // Each matrix whole in one buffer, all in one format.
        let packed = |linear: &Linear<Self>| match &linear.packed.0 {
            Some(QWeight::Packed { format, chunks, .. }) if chunks.len() == 1 => {
                Some((*format, chunks[0].clone()))
            }
            _ => None,
        };
        let (wqkv, proj) = (packed(&b.attn.wqkv)?, packed(&b.attn.proj)?);
        let (fc, down) = (packed(&b.mlp.fc)?, packed(&b.mlp.proj)?);
        let format = wqkv.0;
        if [&proj, &fc, &down].iter().any(|m| m.0 != format) {
            return None;
        }
        let [e] = b.norm_1.weight.dims();
        let heads = b.attn.n_heads;
        let head_dim = e / heads;
        let intermediate = fc.1.n / 2;
        let fits = e <= block::MAX_EMBD as usize
            && 3 * e <= block::MAX_WIDE as usize
            && 2 * intermediate <= block::MAX_WIDE as usize
            && head_dim <= block::MAX_HEAD_DIM as usize
            && head_dim.is_multiple_of(2);
        if !fits {
            return None;
        }
        let matrices = [wqkv.1, proj.1, fc.1, down.1];
        let mut params: Vec<Tensor<Self, 1>> = [&b.norm_1, &b.norm_2, &b.norm_3, &b.norm_4]
            .iter()
            .map(|norm| norm.weight.val())
            .collect();
        params.extend(
            b.attn
                .qk_bias
                .as_ref()
                .map(|bias| bias.val().reshape([2 * e])),
        );
        params.extend(matrices.iter().map(|m| m.scales.clone()));
        params.extend(matrices.iter().filter_map(|m| m.mins.clone()));
        let codes: Vec<Tensor<Self, 1, Int>> = matrices.iter().map(|m| m.codes.clone()).collect();
        Some(BlockPack {
            format,
            has_bias: b.attn.qk_bias.is_some(),
            heads,
            head_dim,
            intermediate,
            eps: b.norm_1.eps,
            params: Tensor::cat(params, 0),
            codes: Tensor::cat(codes, 0),
        })
    }

    fn fused_block(
        pack: &BlockPack<Self>,
        x: &Tensor<Self, 3>,
        rope: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        start: usize,
        past: Option<&Past<Self>>,
    ) -> Option<(Tensor<Self, 3>, Kv<Self>)> {
        let [b, s, e] = x.dims();
        let (heads, d) = (pack.heads, pack.head_dim);
        let (t0, capacity) = cache_extent(past);
        let fits = t0 + s <= block::MAX_KEYS as usize
            && b as u32 <= MAX_GRID
            && s as u32 <= MAX_GRID
            && start + s <= rope.0.dims()[0];
        if !fits {
            return None;
        }
        let x = float_arg(x.clone());
        assert_eq!(x.dtype, DType::F32, "the kernels compute in f32");
        let client = x.client.clone();
        let device = x.device.clone();
        let (past_k, past_v) = cache_args(past, &x);
        let out = empty_device::<R, f32>(client.clone(), device.clone(), Shape::new([b, s, e]));
        // Keys and values, and the queries between two stages.
        let planes = if s == 1 { 2 } else { 3 };
        let fresh =
            empty_device::<R, f32>(client.clone(), device, Shape::new([planes, b, heads, s, d]));
        let params = float_arg(pack.params.clone());
        let codes = into_contiguous(pack.codes.clone().into_primitive());
        let (cos, sin) = (float_arg(rope.0.clone()), float_arg(rope.1.clone()));
        let stages: &[(bool, bool)] = if s == 1 {
            &[(true, true)]
        } else {
            &[(true, false), (false, true)]
        };
        for &(project, finish) in stages {
            // SAFETY: `pack_block` checked the shapes against the kernel's workgroup buffers
            // and packed params and codes at the lengths the kernel's offsets imply; x and out
            // are [b, s, e], the tables [context, d] read at rows below start + s <= context,
            // the cache [b, heads, capacity, d] read at rows < t0 <= capacity, fresh [planes,
            // b, heads, s, d] with the query plane wherever a stage writes or reads it.
            unsafe {
                block::block::launch_unchecked::<R>(
                    &client,
                    CubeCount::Static(b as u32, s as u32, 1),
                    CubeDim::new_1d(block::BLOCK_THREADS),
                    x.clone().into_array_arg(),
                    params.clone().into_array_arg(),
                    codes.clone().into_array_arg(),
                    cos.clone().into_array_arg(),
                    sin.clone().into_array_arg(),
                    past_k.clone().into_array_arg(),
                    past_v.clone().into_array_arg(),
                    out.clone().into_array_arg(),
                    fresh.clone().into_array_arg(),
                    heads as u32,
                    d as u32,
                    pack.intermediate as u32,
                    t0 as u32,
                    capacity as u32,
                    start as u32,
                    (1.0 / (d as f64).sqrt()) as f32,
                    pack.eps as f32,
                    pack.format == Format::Q4,
                    pack.has_bias,
                    project,
                    finish,
                );
            }
        }
        let fresh: Tensor<Self, 5> = Tensor::from_primitive(TensorPrimitive::Float(fresh));
        let plane = |i: usize| fresh.clone().narrow(0, i, 1).reshape([b, heads, s, d]);
        Some((
            Tensor::from_primitive(TensorPrimitive::Float(out)),
            Kv {
                k: plane(0),
                v: plane(1),
            },
        ))
    }
}

/// A float tensor as a contiguous kernel argument.
fn float_arg<R, F, I, BT, const D: usize>(t: Tensor<CubeBackend<R, F, I, BT>, D>) -> CubeTensor<R>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    into_contiguous(t.into_primitive().tensor())
}

/// The committed positions and the rows per head of the buffers holding them (0, 0 without a
/// cache): the decoding kernels read the buffers whole, rows 0..t0 of `capacity` per head.
fn cache_extent<B: Backend>(past: Option<&Past<B>>) -> (usize, usize) {
    past.map_or((0, 0), |past| (past.len, past.buffers.len()))
}

/// The cache's key and value buffers as kernel arguments. Without a cache the kernels read no
/// key or value (t0 = 0), so `placeholder` stands in for both.
fn cache_args<R, F, I, BT>(
    past: Option<&Past<CubeBackend<R, F, I, BT>>>,
    placeholder: &CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>)
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    match past {
        Some(past) => (
            float_arg(past.buffers.k.clone()),
            float_arg(past.buffers.v.clone()),
        ),
        None => (placeholder.clone(), placeholder.clone()),
    }
}
