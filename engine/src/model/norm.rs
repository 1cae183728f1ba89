//! RMSNorm: x / sqrt(mean(x^2) + eps) * w, in f32.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::Result;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
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

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mean_square = x.clone().powi_scalar(2).mean_dim(D - 1);
        let inv = (mean_square + self.eps).sqrt().recip();
        let mut shape = [1usize; D];
        shape[D - 1] = self.weight.dims()[0];
        x * inv * self.weight.val().reshape(shape)
    }
}
