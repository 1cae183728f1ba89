//! The model's operations that a backend may run as its own GPU kernels, written in CubeCL for
//! burn's CubeCL backends (wgpu: Vulkan, Metal, WebGPU), with burn's tensor operations as the
//! default everywhere else (the CPU, training's autodiff, fusion):
//! - products with quantized weights: on the GPU the codes stay on the device and are
//!   dequantized inside the kernel; elsewhere the matrix is dequantized once;
//! - RMSNorm (of a residual sum): one dispatch instead of the seven or eight its tensor
//!   operations take;
//! - the gated MLP's silu(gate) * up: one dispatch instead of about eight;
//! - decoding attention (bias, RoPE, the cache, softmax, the weighted sum): one dispatch
//!   instead of about thirty;
//! - a whole sandwich block of packed q8/q4 weights (`block`): one dispatch instead of ten when
//!   decoding, two instead of about thirty in a prefill, where the model is small enough for
//!   one workgroup to hold a position.
//!
//! All of them matter because decoding a small model costs dispatches, not arithmetic.
//!
//! `Kernels` extends burn's `Backend` the way burn's own custom-kernel examples do, so that
//! a model generic over the backend picks the right path at compile time.

#[cfg(feature = "wgpu")]
pub mod attention;
#[cfg(feature = "wgpu")]
pub mod block;
#[cfg(feature = "wgpu")]
mod cube;
#[cfg(feature = "wgpu")]
pub mod gate;
#[cfg(feature = "wgpu")]
pub mod norm;
#[cfg(feature = "wgpu")]
pub mod qmatmul;
#[cfg(feature = "wgpu")]
mod reduce;

use burn::module::{
    AutodiffModule, Content, Devices, EmptyRecord, Module, ModuleDisplay, ModuleDisplayDefault,
    ModuleMapper, ModuleVisitor,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{Kv, Past, SandwichBlock};
use crate::quant::{Format, Quantized, GROUP};

/// Largest storage buffer a browser binds by default (WebGPU's maxStorageBufferBindingSize):
/// larger matrices are split by output columns.
pub const MAX_BINDING_BYTES: usize = 128 << 20;

/// A sandwich block's weights as `fused_block` reads them, packed once at load.
#[derive(Clone, Debug)]
pub struct BlockPack<B: Backend> {
    pub format: Format,
    pub has_bias: bool,
    pub heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub eps: f64,
    /// f32: norm_1..norm_4 weights, the q/k bias, then the scales of Wqkv, attn.proj, mlp.fc
    /// and mlp.proj, then (q4) their minimums in the same order.
    pub params: Tensor<B, 1>,
    /// u32 words: the four matrices' codes in the same order.
    pub codes: Tensor<B, 1, Int>,
}

/// A matrix as `qlinear` reads it.
#[derive(Clone, Debug)]
pub enum QWeight<B: Backend> {
    /// Dequantized, [k = in, n = out].
    Dense(Tensor<B, 2>),
    /// Codes on the device, split by output columns so that every buffer fits one binding.
    Packed {
        format: Format,
        n: usize,
        k: usize,
        chunks: Vec<Chunk<B>>,
    },
}

/// Output columns col_offset..col_offset + n of a packed matrix.
#[derive(Clone, Debug)]
pub struct Chunk<B: Backend> {
    pub n: usize,
    pub col_offset: usize,
    /// u32 words: four q8 codes or eight q4 codes each.
    pub codes: Tensor<B, 1, Int>,
    /// f32, one per row and group.
    pub scales: Tensor<B, 1>,
    /// q4 only.
    pub mins: Option<Tensor<B, 1>>,
}

impl<B: Backend> QWeight<B> {
    /// The matrix dequantized on the host.
    pub fn dense(w: &Quantized, device: &B::Device) -> Self {
        Self::Dense(transposed(&w.dequantize(), w.rows, w.cols, device))
    }
}

/// A checkpoint's [out, in] matrix (row-major `values`) as the [in, out] tensor a product
/// `x · W` reads.
pub fn transposed<B: Backend>(
    values: &[f32],
    out: usize,
    d_in: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut t = vec![0.0f32; d_in * out];
    for (o, row) in values.chunks(d_in).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            t[i * out + o] = v;
        }
    }
    Tensor::from_data(TensorData::new(t, [d_in, out]), device)
}

pub trait Kernels: Backend {
    /// Whether `upload` keeps `w` as codes on the device (otherwise it dequantizes).
    fn packs(w: &Quantized) -> bool {
        let _ = w;
        false
    }

    /// Places `w` ([out, in] as stored) where `qlinear` reads it, in buffers of at most
    /// `max_binding_bytes`.
    fn upload(w: &Quantized, device: &Self::Device, max_binding_bytes: usize) -> QWeight<Self> {
        let _ = max_binding_bytes;
        QWeight::dense(w, device)
    }

    /// x [rows, in] times the matrix: [rows, out].
    fn qlinear(x: Tensor<Self, 2>, w: &QWeight<Self>) -> Tensor<Self, 2> {
        match w {
            QWeight::Dense(d) => x.matmul(d.clone()),
            QWeight::Packed { .. } => {
                unreachable!("only backends with kernels upload packed matrices")
            }
        }
    }

    /// RMSNorm of each row of v = x (+ residual) [rows, dim]: v / sqrt(mean(v^2) + eps) * weight.
    fn rms_norm(
        x: Tensor<Self, 2>,
        residual: Option<Tensor<Self, 2>>,
        weight: Tensor<Self, 1>,
        eps: f64,
    ) -> Tensor<Self, 2> {
        let x = match residual {
            Some(r) => x + r,
            None => x,
        };
        let mean_square = x.clone().powi_scalar(2).mean_dim(1);
        // A division, not a product with `recip()`: burn's ndarray takes the reciprocal with the
        // CPU's approximate instruction (relative error 3e-4 measured on AVX2; 5e-5 was seen on
        // earlier machines).
        x / (mean_square + eps).sqrt() * weight.unsqueeze()
    }

    /// silu(gate) * up for h = [gate, up] [rows, 2i]: [rows, i].
    fn silu_gate(h: Tensor<Self, 2>) -> Tensor<Self, 2> {
        let i = h.dims()[1] / 2;
        let gate = h.clone().narrow(1, 0, i);
        burn::tensor::activation::silu(gate) * h.narrow(1, i, i)
    }

    /// Attention of one new position per sequence (decoding) in one kernel: q, k and v split
    /// from `qkv` [b, 1, 3e] into `heads` heads, the q/k bias ([2, 1, heads, d]) added, RoPE at
    /// `position` from the `cos`/`sin` tables [context, d], then softmax(q k^T / sqrt(d)) v over
    /// `past`'s committed positions followed by the new position. Returns y [b, 1, e] and the new position's keys and
    /// values ([b, heads, 1, d]); `None` where the backend has no kernel for it, and the caller's
    /// tensor operations run the same math.
    fn decode_attention(
        qkv: &Tensor<Self, 3>,
        qk_bias: Option<Tensor<Self, 4>>,
        rope: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        position: usize,
        past: Option<&Past<Self>>,
        heads: usize,
    ) -> Option<(Tensor<Self, 3>, Kv<Self>)> {
        let _ = (qkv, qk_bias, rope, position, past, heads);
        None
    }

    /// `block`'s weights packed for `fused_block`; `None` where the backend has no such
    /// kernel or the block does not fit it (dense weights, shapes past its limits).
    fn pack_block(block: &SandwichBlock<Self>) -> Option<BlockPack<Self>> {
        let _ = block;
        None
    }

    /// The whole block for the positions of x [b, s, e], the first at `start`, attending to
    /// `past` followed by themselves (the math of `SandwichBlock::forward`). Returns the block's
    /// output [b, s, e] and the positions' keys and values ([b, heads, s, d]); `None` where the
    /// kernel cannot take this call (the caller runs the block op by op).
    fn fused_block(
        pack: &BlockPack<Self>,
        x: &Tensor<Self, 3>,
        rope: (&Tensor<Self, 2>, &Tensor<Self, 2>),
        start: usize,
        past: Option<&Past<Self>>,
    ) -> Option<(Tensor<Self, 3>, Kv<Self>)> {
        let _ = (pack, x, rope, start, past);
        None
    }
}

/// Whether the kernels can read `w` as stored: whole groups of 32 along each row.
pub fn packable(w: &Quantized) -> bool {
    w.cols.is_multiple_of(GROUP)
}

#[cfg(feature = "ndarray")]
impl<E, I, Q> Kernels for burn::backend::NdArray<E, I, Q>
where
    E: burn::backend::ndarray::FloatNdArrayElement,
    I: burn::backend::ndarray::IntNdArrayElement,
    Q: burn::backend::ndarray::QuantElement,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<E>>,
    burn::backend::ndarray::NdArrayTensor: From<burn::backend::ndarray::SharedArray<I>>,
{
}

/// The fused wgpu backend multiplies dense matrices.
#[cfg(feature = "fusion")]
impl<B: burn_fusion::FusionBackend> Kernels for burn_fusion::Fusion<B> {}

/// Burn's `Module` for a field that holds device data but no parameters (nothing to train,
/// save or move), so that the modules around it still derive `Module`. Under autodiff it is
/// empty: training multiplies dense matrices op by op.
macro_rules! constant_module {
    ($name:ident, |$value:ident| $describe:expr) => {
        impl<B: Backend> Module<B> for $name<B> {
            type Record = EmptyRecord;

            fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
                devices
            }
            fn fork(self, _: &B::Device) -> Self {
                self
            }
            fn to_device(self, _: &B::Device) -> Self {
                self
            }
            fn visit<V: ModuleVisitor<B>>(&self, _: &mut V) {}
            fn map<M: ModuleMapper<B>>(self, _: &mut M) -> Self {
                self
            }
            fn load_record(self, _: Self::Record) -> Self {
                self
            }
            fn into_record(self) -> Self::Record {
                EmptyRecord::new()
            }
        }

        impl<B: AutodiffBackend> AutodiffModule<B> for $name<B> {
            type InnerModule = $name<B::InnerBackend>;

            fn valid(&self) -> Self::InnerModule {
                $name(None)
            }
            fn from_inner(_: Self::InnerModule) -> Self {
                $name(None)
            }
        }

        impl<B: Backend> ModuleDisplayDefault for $name<B> {
            fn content(&self, content: Content) -> Option<Content> {
                let text = match &self.0 {
                    Some($value) => $describe,
                    None => "none".to_string(),
                };
                content.add_single(&text).optional()
            }
        }

        impl<B: Backend> ModuleDisplay for $name<B> {}
    };
}

/// A packed matrix as a field of a burn module.
#[derive(Clone, Debug)]
pub struct Packed<B: Backend>(pub Option<QWeight<B>>);

constant_module!(Packed, |weight| match weight {
    QWeight::Packed { format, n, k, .. } => format!("{format:?} {n}x{k}"),
    QWeight::Dense(_) => "dense".to_string(),
});

/// A sandwich block packed for `fused_block`, as a field of the block.
#[derive(Clone, Debug)]
pub struct Fused<B: Backend>(pub Option<BlockPack<B>>);

constant_module!(Fused, |pack| format!("{:?} one kernel", pack.format));

/// Training (autodiff) multiplies dense matrices.
#[cfg(feature = "autodiff")]
impl<B: Kernels, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> Kernels
    for burn::backend::Autodiff<B, C>
{
}
