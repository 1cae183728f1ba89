//! Rotary position embedding on interleaved pairs (2j, 2j+1), computed in f32 as the reference does.

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// cos and sin of pos * base^(-2j/head_dim) for every position of the context.
/// Plain tensors, not parameters: training leaves them alone.
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> Rope<B> {
    pub fn new(head_dim: usize, context: usize, base: f64, device: &B::Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(context * half);
        let mut sin = Vec::with_capacity(context * half);
        for pos in 0..context {
            for j in 0..half {
                let inv_freq = 1.0f32 / (base as f32).powf((2 * j) as f32 / head_dim as f32);
                let angle = pos as f32 * inv_freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [context, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [context, half]), device),
        }
    }

    /// Rotates x: [batch, seq, heads, head_dim] whose first row sits at position `start`.
    pub fn apply(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        let [b, s, h, d] = x.dims();
        let half = d / 2;
        let cos = self
            .cos
            .clone()
            .narrow(0, start, s)
            .reshape([1, s, 1, half, 1]);
        let sin = self
            .sin
            .clone()
            .narrow(0, start, s)
            .reshape([1, s, 1, half, 1]);
        let pairs = x.reshape([b, s, h, half, 2]);
        let even = pairs.clone().narrow(4, 0, 1);
        let odd = pairs.narrow(4, 1, 1);
        let rotated_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
        let rotated_odd = odd * cos + even * sin;
        Tensor::cat(vec![rotated_even, rotated_odd], 4).reshape([b, s, h, d])
    }

    pub fn context(&self) -> usize {
        self.cos.dims()[0]
    }
}
