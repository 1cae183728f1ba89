//! Gated MLP: [a, b] = fc(x) split in halves; proj(silu(a) * b).

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};

use super::linear::Linear;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::Kernels;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct GatedMlp<B: Backend> {
    pub fc: Linear<B>,
    pub proj: Linear<B>,
}

impl<B: Kernels> GatedMlp<B> {
    pub fn load(
        ckpt: &Checkpoint,
        prefix: &str,
        config: &ModelConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let (e, i) = (config.n_embd, config.intermediate_size);
        Ok(Self {
            fc: Linear::load(ckpt, &format!("{prefix}.fc.weight"), e, 2 * i, device)?,
            proj: Linear::load(ckpt, &format!("{prefix}.proj.weight"), i, e, device)?,
        })
    }

    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.fc.forward(x);
        let [b, s, two_i] = h.dims();
        let gated = B::silu_gate(h.reshape([b * s, two_i]));
        self.proj.forward(gated.reshape([b, s, two_i / 2]))
    }
}
