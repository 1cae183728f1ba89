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
        self.run(x, None)
    }

    /// Normalizes x + residual (one kernel where the backend has it).
    pub fn forward_sum<const D: usize>(
        &self,
        x: Tensor<B, D>,
        residual: Tensor<B, D>,
    ) -> Tensor<B, D> {
        self.run(x, Some(residual))
    }

    fn run<const D: usize>(&self, x: Tensor<B, D>, residual: Option<Tensor<B, D>>) -> Tensor<B, D> {
        let dims = x.dims();
        let dim = dims[D - 1];
        let rows = x.shape().num_elements() / dim;
        let residual = residual.map(|r| r.reshape([rows, dim]));
        B::rms_norm(
            x.reshape([rows, dim]),
            residual,
            self.weight.val(),
            self.eps,
        )
        .reshape(dims)
    }
}
