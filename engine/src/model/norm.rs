//! RMSNorm: x / sqrt(mean(x^2) + eps) * w, in f32.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::Result;
use crate::kernels::Kernels;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Kernels> RmsNorm<B> {
    pub fn load(
        ckpt: &Checkpoint,
        name: &str,
        dim: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self> {
        let t = ckpt.tensor(name, &[dim])?;
        let weight = Tensor::from_data(TensorData::new(t.values, [dim]), device);
        Ok(Self {
            weight: Param::from_tensor(weight),
            eps,
        })
    }

    /// Normalizes over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let dim = dims[D - 1];
        let rows = x.shape().num_elements() / dim;
        B::rms_norm(x.reshape([rows, dim]), self.weight.val(), self.eps).reshape(dims)
    }
}
