//! A bias-free linear layer. Weights are kept as [in, out] so the forward pass is one matmul.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::Result;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// [d_in, d_out]: the transpose of the checkpoint's [out, in] layout.
    pub weight: Param<Tensor<B, 2>>,
}

impl<B: Backend> Linear<B> {
    /// Loads `name` stored as [d_out, d_in] (PyTorch's layout).
    pub fn load(
        ckpt: &Checkpoint,
        name: &str,
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let t = ckpt.tensor(name, &[d_out, d_in])?;
        let mut transposed = vec![0.0f32; d_in * d_out];
        for o in 0..d_out {
            for i in 0..d_in {
                transposed[i * d_out + o] = t.values[o * d_in + i];
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), device);
        Ok(Self {
            weight: Param::from_tensor(weight),
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = x.shape().num_elements() / d_in;
        let y = x.reshape([rows, d_in]).matmul(self.weight.val());
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }
}
