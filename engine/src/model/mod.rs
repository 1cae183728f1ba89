//! The recurrent-depth model: prelude, adapter + core block iterated on a latent state, coda, tied head.
//! Tensor names mirror the Hugging Face checkpoint (`transformer.prelude.0.attn.Wqkv.weight`, ...).

mod attention;
mod block;
mod embedding;
mod init;
mod linear;
mod mlp;
mod norm;
mod rope;

pub use attention::{Kv, Past};
pub use block::SandwichBlock;
pub use embedding::Embedding;
pub use linear::Linear;
pub use norm::RmsNorm;
pub use rope::Rope;

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};

use crate::cache::{KvMemory, Slot};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::Kernels;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct RecurrentModel<B: Backend> {
    /// Token embedding [vocab, embd]; also the output head when tied.
    pub wte: Embedding<B>,
    pub prelude: Vec<SandwichBlock<B>>,
    /// Linear(2E -> E) applied to concat[state, prelude output] before each core iteration.
    pub adapter: Linear<B>,
    pub core_block: Vec<SandwichBlock<B>>,
    pub coda: Vec<SandwichBlock<B>>,
    pub ln_f: RmsNorm<B>,
    /// Untied output head [embd, vocab]; `None` when the head is the embedding.
    pub lm_head: Option<Linear<B>>,
    pub rope: Rope<B>,
    #[module(skip)]
    pub config: ModelConfig,
}

impl<B: Kernels> RecurrentModel<B> {
    /// Builds the model from a Hugging Face layout checkpoint. `lm_head.weight` is ignored when the
    /// head is tied (the published Huginn-0125 shards store it a second time).
    pub fn load(config: &ModelConfig, ckpt: &Checkpoint, device: &B::Device) -> Result<Self> {
        let (e, v) = (config.n_embd, config.padded_vocab_size);
        let blocks = |part: &str, n: usize| {
            (0..n)
                .map(|i| {
                    SandwichBlock::load(ckpt, &format!("transformer.{part}.{i}"), config, device)
                })
                .collect::<Result<Vec<_>>>()
        };
        let lm_head = if config.tie_embeddings {
            None
        } else {
            Some(Linear::load(ckpt, "lm_head.weight", e, v, device)?)
        };
        Ok(Self {
            wte: Embedding::load(ckpt, "transformer.wte.weight", v, e, device)?,
            prelude: blocks("prelude", config.n_layers_in_prelude)?,
            adapter: Linear::load(ckpt, "transformer.adapter.weight", 2 * e, e, device)?,
            core_block: blocks("core_block", config.n_layers_in_recurrent_block)?,
            coda: blocks("coda", config.n_layers_in_coda)?,
            ln_f: RmsNorm::load(ckpt, "transformer.ln_f.weight", e, config.norm_eps, device)?,
            lm_head,
            rope: Rope::new(
                config.head_dim(),
                config.block_size,
                config.rope_base,
                device,
            ),
            config: config.clone(),
        })
    }

    pub fn device(&self) -> B::Device {
        self.ln_f.weight.val().device()
    }

    /// e = Prelude(wte[ids] * embed_scale) for `ids` (row-major [batch, seq]) starting at
    /// position `start`.
    pub fn prelude_forward(
        &self,
        ids: &[u32],
        shape: [usize; 2],
        start: usize,
        memory: &mut impl KvMemory<B>,
    ) -> Tensor<B, 3> {
        let embedded = self.wte.lookup(ids, shape, &self.device());
        let mut x = embedded * self.config.embed_scale();
        for (layer, block) in self.prelude.iter().enumerate() {
            x = run_block(block, x, &self.rope, start, Slot::Prelude(layer), memory);
        }
        x
    }

    /// One core iteration (0-based `iteration`): s_i = Core(Adapter(concat[s_{i-1}, e])).
    pub fn core_forward(
        &self,
        state: Tensor<B, 3>,
        embedded: Tensor<B, 3>,
        iteration: usize,
        start: usize,
        memory: &mut impl KvMemory<B>,
    ) -> Tensor<B, 3> {
        let mut x = self.adapter.forward(Tensor::cat(vec![state, embedded], 2));
        for (layer, block) in self.core_block.iter().enumerate() {
            x = run_block(
                block,
                x,
                &self.rope,
                start,
                Slot::Core { iteration, layer },
                memory,
            );
        }
        x
    }

    /// Logits of lm_head(ln_f(Coda(ln_f(state)))): the model's output, and the logit lens when
    /// applied to an intermediate state.
    pub fn coda_forward(
        &self,
        state: Tensor<B, 3>,
        start: usize,
        memory: &mut impl KvMemory<B>,
    ) -> Tensor<B, 3> {
        let mut x = self.ln_f.forward(state);
        for (layer, block) in self.coda.iter().enumerate() {
            x = run_block(block, x, &self.rope, start, Slot::Coda(layer), memory);
        }
        self.head(self.ln_f.forward(x))
    }

    fn head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => head.forward(x),
            None => {
                let [b, s, e] = x.dims();
                let logits = self.wte.head(x.reshape([b * s, e]));
                let v = logits.dims()[1];
                logits.reshape([b, s, v])
            }
        }
    }
}

fn run_block<B: Kernels>(
    block: &SandwichBlock<B>,
    x: Tensor<B, 3>,
    rope: &Rope<B>,
    start: usize,
    slot: Slot,
    memory: &mut impl KvMemory<B>,
) -> Tensor<B, 3> {
    let past = memory.past(slot);
    let (out, kv) = block.forward(x, rope, start, past.as_ref());
    memory.write(slot, kv);
    out
}
