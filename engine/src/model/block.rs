//! The "sandwich" block shared by prelude, core and coda:
//! h = norm_2(x + attn(norm_1(x))); out = norm_4(h + mlp(norm_3(h))).

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};

use super::attention::{Attention, Kv, Past};
use super::mlp::GatedMlp;
use super::norm::RmsNorm;
use super::rope::Rope;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::{Fused, Kernels};
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct SandwichBlock<B: Backend> {
    pub norm_1: RmsNorm<B>,
    pub attn: Attention<B>,
    pub norm_2: RmsNorm<B>,
    pub mlp: GatedMlp<B>,
    pub norm_3: RmsNorm<B>,
    pub norm_4: RmsNorm<B>,
    /// The same weights packed for the one-kernel block, where the backend has it.
    pub fused: Fused<B>,
}

impl<B: Kernels> SandwichBlock<B> {
    pub fn load(
        ckpt: &Checkpoint,
        prefix: &str,
        config: &ModelConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let norm = |n: usize| {
            RmsNorm::load(
                ckpt,
                &format!("{prefix}.norm_{n}.weight"),
                config.n_embd,
                config.norm_eps,
                device,
            )
        };
        let mut block = Self {
            norm_1: norm(1)?,
            attn: Attention::load(ckpt, &format!("{prefix}.attn"), config, device)?,
            norm_2: norm(2)?,
            mlp: GatedMlp::load(ckpt, &format!("{prefix}.mlp"), config, device)?,
            norm_3: norm(3)?,
            norm_4: norm(4)?,
            fused: Fused(None),
        };
        block.fused = Fused(B::pack_block(&block));
        Ok(block)
    }

    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        start: usize,
        past: Option<&Past<B>>,
    ) -> (Tensor<B, 3>, Kv<B>) {
        if let Some(pack) = &self.fused.0 {
            if let Some(fused) = B::fused_block(pack, &x, rope.tables(), start, past) {
                return fused;
            }
        }
        let (attended, kv) = self
            .attn
            .forward(self.norm_1.forward(x.clone()), rope, start, past);
        let h = self.norm_2.forward_sum(x, attended);
        let out = self
            .norm_4
            .forward_sum(h.clone(), self.mlp.forward(self.norm_3.forward(h)));
        (out, kv)
    }
}
