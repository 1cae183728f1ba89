//! Causal self-attention with the per-head q/k bias and RoPE of Huginn-0125.

use burn::module::{Module, Param};
use burn::tensor::{activation::softmax, backend::Backend, Tensor, TensorData};

use super::linear::Linear;
use super::rope::Rope;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::Kernels;
use crate::weights::Checkpoint;

/// Keys and values of some positions of one layer application: [batch, heads, positions, head_dim].
#[derive(Debug, Clone)]
pub struct Kv<B: Backend> {
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
}

impl<B: Backend> Kv<B> {
    pub fn len(&self) -> usize {
        self.k.dims()[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions `start..start+len`.
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        Self {
            k: self.k.clone().narrow(2, start, len),
            v: self.v.clone().narrow(2, start, len),
        }
    }

    /// This cache followed by `next` along the positions.
    pub fn append(&self, next: &Kv<B>) -> Self {
        Self {
            k: Tensor::cat(vec![self.k.clone(), next.k.clone()], 2),
            v: Tensor::cat(vec![self.v.clone(), next.v.clone()], 2),
        }
    }

    /// `rows` written over positions `at..at + rows.len()`. In place on the GPU when nothing
    /// else holds these buffers; burn copies first otherwise.
    pub fn write(self, at: usize, rows: &Kv<B>) -> Self {
        let [b, h, n, d] = rows.k.dims();
        let range = [0..b, 0..h, at..at + n, 0..d];
        Self {
            k: self.k.slice_assign(range.clone(), rows.k.clone()),
            v: self.v.slice_assign(range, rows.v.clone()),
        }
    }
}

/// Earlier positions' keys and values as a cache holds them: the first `len` positions of
/// buffers with room for more, so that committing a position writes a row instead of copying
/// the whole cache.
#[derive(Debug, Clone)]
pub struct Past<B: Backend> {
    pub buffers: Kv<B>,
    pub len: usize,
}

impl<B: Backend> Past<B> {
    /// The committed positions alone.
    pub fn filled(&self) -> Kv<B> {
        self.buffers.narrow(0, self.len)
    }
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub wqkv: Linear<B>,
    /// [2, 1, heads, head_dim]: the bias added to q (row 0) and k (row 1) before RoPE.
    pub qk_bias: Option<Param<Tensor<B, 4>>>,
    pub proj: Linear<B>,
    pub n_heads: usize,
}

impl<B: Kernels> Attention<B> {
    pub fn load(
        ckpt: &Checkpoint,
        prefix: &str,
        config: &ModelConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let e = config.n_embd;
        let qk_bias = if config.qk_bias {
            let shape = [2, 1, config.n_heads, config.head_dim()];
            let t = ckpt.tensor(&format!("{prefix}.qk_bias"), &shape)?;
            Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(t.values, shape),
                device,
            )))
        } else {
            None
        };
        Ok(Self {
            wqkv: Linear::load(ckpt, &format!("{prefix}.Wqkv.weight"), e, 3 * e, device)?,
            qk_bias,
            proj: Linear::load(ckpt, &format!("{prefix}.proj.weight"), e, e, device)?,
            n_heads: config.n_heads,
        })
    }

    /// Attends from the positions of `x` ([batch, seq, embd], first at position `start`) to `past`
    /// followed by themselves. Returns the output and the keys/values of `x`'s positions.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        start: usize,
        past: Option<&Past<B>>,
    ) -> (Tensor<B, 3>, Kv<B>) {
        let [b, s, e] = x.dims();
        let h = self.n_heads;
        let d = e / h;
        let qkv = self.wqkv.forward(x);
        let bias = || self.qk_bias.as_ref().map(|b| b.val());
        if s == 1 {
            if let Some((y, kv)) = B::decode_attention(&qkv, bias(), rope.tables(), start, past, h)
            {
                return (self.proj.forward(y), kv);
            }
        }
        let split = |i: usize| qkv.clone().narrow(2, i * e, e).reshape([b, s, h, d]);
        let (mut q, mut k, v) = (split(0), split(1), split(2));
        if let Some(bias) = bias() {
            q = q + bias.clone().narrow(0, 0, 1);
            k = k + bias.narrow(0, 1, 1);
        }
        let q = rope.apply(q, start).swap_dims(1, 2);
        let new = Kv {
            k: rope.apply(k, start).swap_dims(1, 2),
            v: v.swap_dims(1, 2),
        };
        let all = match past {
            Some(past) => past.filled().append(&new),
            None => new.clone(),
        };
        let t = all.len();
        let mut scores = q.matmul(all.k.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
        if s > 1 {
            scores = scores + causal_mask::<B>(s, t, &qkv.device());
        }
        let y = softmax(scores, 3)
            .matmul(all.v)
            .swap_dims(1, 2)
            .reshape([b, s, e]);
        (self.proj.forward(y), new)
    }
}

/// Additive mask [1, 1, s, t]: query i (at key index t - s + i) sees keys up to its own index.
fn causal_mask<B: Kernels>(s: usize, t: usize, device: &B::Device) -> Tensor<B, 4> {
    let offset = t - s;
    let values: Vec<f32> = (0..s)
        .flat_map(|i| {
            (0..t).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, s, t]), device)
}
