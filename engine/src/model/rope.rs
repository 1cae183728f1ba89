//! Rotary position embedding on interleaved pairs (2j, 2j+1), computed in f32 as the reference does.

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// cos and sin of pos * base^(-2j/head_dim) for every position of the context, each written twice
/// (once per member of its pair), and the matrix that swaps the members of every pair.
/// Plain tensors, not parameters: training leaves them alone.
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    /// [head_dim, head_dim]: x @ swap = (-x1, x0, -x3, x2, ...).
    swap: Tensor<B, 2>,
}

impl<B: Backend> Rope<B> {
    pub fn new(head_dim: usize, context: usize, base: f64, device: &B::Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(context * head_dim);
        let mut sin = Vec::with_capacity(context * head_dim);
        for pos in 0..context {
            for j in 0..half {
                let inv_freq = 1.0f32 / (base as f32).powf((2 * j) as f32 / head_dim as f32);
                let angle = pos as f32 * inv_freq;
                cos.extend([angle.cos(); 2]);
                sin.extend([angle.sin(); 2]);
            }
        }
        let mut swap = vec![0.0f32; head_dim * head_dim];
        for j in 0..half {
            swap[(2 * j + 1) * head_dim + 2 * j] = -1.0;
            swap[2 * j * head_dim + 2 * j + 1] = 1.0;
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [context, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [context, head_dim]), device),
            swap: Tensor::from_data(TensorData::new(swap, [head_dim, head_dim]), device),
        }
    }

    /// Rotates x: [batch, seq, heads, head_dim] whose first row sits at position `start`:
    /// (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) for every pair. The swap is a matmul rather
    /// than slicing the pairs apart and concatenating them again: on the CPU those strided copies
    /// took a fifth of a training step. Each swapped value is one exact product, so the result
    /// is the same to the bit.
    pub fn apply(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        let [b, s, h, d] = x.dims();
        let table = |t: &Tensor<B, 2>| t.clone().narrow(0, start, s).reshape([1, s, 1, d]);
        let swapped = x
            .clone()
            .reshape([b * s * h, d])
            .matmul(self.swap.clone())
            .reshape([b, s, h, d]);
        x * table(&self.cos) + swapped * table(&self.sin)
    }

    /// The cos and sin tables, [context, head_dim]: each pair's value repeated for both elements.
    pub fn tables(&self) -> (&Tensor<B, 2>, &Tensor<B, 2>) {
        (&self.cos, &self.sin)
    }

    pub fn context(&self) -> usize {
        self.cos.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    /// The rotation written out pair by pair, as the reference writes it.
    #[test]
    fn rotates_each_pair_by_its_angle() {
        let device = Default::default();
        let (d, context, start) = (8, 6, 2);
        let rope = Rope::<NdArray>::new(d, context, 10000.0, &device);
        let values: Vec<f32> = (0..2 * 3 * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let x =
            Tensor::<NdArray, 4>::from_data(TensorData::new(values.clone(), [1, 3, 2, d]), &device);
        let rotated = rope.apply(x, start).into_data().to_vec::<f32>().unwrap();
        for (row, (got, want)) in rotated.chunks(d).zip(values.chunks(d)).enumerate() {
            let pos = start + row / 2;
            for j in 0..d / 2 {
                let inv_freq = 1.0f32 / 10000f32.powf((2 * j) as f32 / d as f32);
                let angle = pos as f32 * inv_freq;
                let (c, s) = (angle.cos(), angle.sin());
                let (x0, x1) = (want[2 * j], want[2 * j + 1]);
                assert_eq!(got[2 * j], x0 * c - x1 * s);
                assert_eq!(got[2 * j + 1], x1 * c + x0 * s);
            }
        }
    }
}
