//! Fresh weights for training (the paper's Takase initialisation) and the reverse of loading:
//! the model's tensors under their Hugging Face names, in the checkpoint's layout.

use burn::module::Param;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::attention::Attention;
use super::block::SandwichBlock;
use super::embedding::Embedding;
use super::linear::Linear;
use super::mlp::GatedMlp;
use super::norm::RmsNorm;
use super::rope::Rope;
use super::RecurrentModel;
use crate::config::ModelConfig;
use crate::kernels::Fused;
use crate::state::truncated_standard_normal;
#[cfg(not(target_arch = "wasm32"))]
use crate::weights::HostTensor;

/// Draws truncated-normal weights from one seeded generator, in a fixed order.
struct Init<'d, B: Backend> {
    rng: ChaCha8Rng,
    device: &'d B::Device,
    /// sqrt(2 / (5 E)), for inputs, the adapter and the embedding.
    std: f32,
    /// std / sqrt(2 l), l = prelude + coda + core * mean recurrence: for output projections.
    out_std: f32,
}

impl<B: Backend> Init<'_, B> {
    fn tensor<const D: usize>(&mut self, shape: [usize; D], std: f32) -> Tensor<B, D> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| truncated_standard_normal(&mut self.rng) as f32 * std)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    fn linear(&mut self, d_in: usize, d_out: usize, std: f32) -> Linear<B> {
        Linear::dense(self.tensor([d_in, d_out], std))
    }

    fn norm(&self, dim: usize, eps: f64) -> RmsNorm<B> {
        RmsNorm {
            weight: Param::from_tensor(Tensor::ones([dim], self.device)),
            eps,
        }
    }

    fn block(&mut self, config: &ModelConfig) -> SandwichBlock<B> {
        let (e, i, eps) = (config.n_embd, config.intermediate_size, config.norm_eps);
        let (std, out_std) = (self.std, self.out_std);
        let qk_bias = config.qk_bias.then(|| {
            Param::from_tensor(Tensor::zeros(
                [2, 1, config.n_heads, config.head_dim()],
                self.device,
            ))
        });
        SandwichBlock {
            norm_1: self.norm(e, eps),
            attn: Attention {
                wqkv: self.linear(e, 3 * e, std),
                qk_bias,
                proj: self.linear(e, e, out_std),
                n_heads: config.n_heads,
            },
            norm_2: self.norm(e, eps),
            mlp: GatedMlp {
                fc: self.linear(e, 2 * i, std),
                proj: self.linear(i, e, out_std),
            },
            norm_3: self.norm(e, eps),
            norm_4: self.norm(e, eps),
            fused: Fused(None),
        }
    }
}

impl<B: Backend> RecurrentModel<B> {
    /// A freshly initialised model: Takase init with truncated normals, norms at one, q/k biases
    /// at zero, the head tied to the embedding. The same seed gives the same weights.
    pub fn init(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let e = config.n_embd;
        let depth = config.n_layers_in_prelude
            + config.n_layers_in_coda
            + config.n_layers_in_recurrent_block * config.mean_recurrence;
        let std = config.init_std();
        let mut init = Init::<B> {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            std,
            out_std: std / (2.0 * depth.max(1) as f32).sqrt(),
        };
        let wte = Embedding::dense(init.tensor([config.padded_vocab_size, e], std));
        let prelude = (0..config.n_layers_in_prelude)
            .map(|_| init.block(config))
            .collect();
        let adapter = init.linear(2 * e, e, std);
        let core_block = (0..config.n_layers_in_recurrent_block)
            .map(|_| init.block(config))
            .collect();
        let coda = (0..config.n_layers_in_coda)
            .map(|_| init.block(config))
            .collect();
        let lm_head =
            (!config.tie_embeddings).then(|| init.linear(e, config.padded_vocab_size, std));
        Self {
            wte,
            prelude,
            adapter,
            core_block,
            coda,
            ln_f: init.norm(e, config.norm_eps),
            lm_head,
            rope: Rope::new(
                config.head_dim(),
                config.block_size,
                config.rope_base,
                device,
            ),
            config: config.clone(),
        }
    }

    /// Every weight under its Hugging Face name, in the checkpoint's layout ([out, in] matrices).
    /// Reads the device synchronously: for native callers (training, quantization).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn named_tensors(&self) -> Vec<(String, HostTensor)> {
        let mut out = Vec::new();
        let host = |t: Tensor<B, 2>| HostTensor {
            shape: t.dims().to_vec(),
            values: t
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 data"),
        };
        let vector = |t: Tensor<B, 1>| HostTensor {
            shape: t.dims().to_vec(),
            values: t
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 data"),
        };
        let linear = |l: &Linear<B>| {
            let weight = l
                .weight
                .as_ref()
                .expect("fresh and trained layers are dense");
            host(weight.val().transpose())
        };
        let wte = self
            .wte
            .weight
            .as_ref()
            .expect("fresh and trained embeddings are dense");
        out.push(("transformer.wte.weight".to_string(), host(wte.val())));
        for (part, blocks) in [
            ("prelude", &self.prelude),
            ("core_block", &self.core_block),
            ("coda", &self.coda),
        ] {
            for (i, block) in blocks.iter().enumerate() {
                let p = format!("transformer.{part}.{i}");
                for (n, norm) in [
                    (1, &block.norm_1),
                    (2, &block.norm_2),
                    (3, &block.norm_3),
                    (4, &block.norm_4),
                ] {
                    out.push((format!("{p}.norm_{n}.weight"), vector(norm.weight.val())));
                }
                out.push((format!("{p}.attn.Wqkv.weight"), linear(&block.attn.wqkv)));
                out.push((format!("{p}.attn.proj.weight"), linear(&block.attn.proj)));
                if let Some(bias) = &block.attn.qk_bias {
                    let t = bias.val();
                    let shape = t.dims().to_vec();
                    let values = t
                        .into_data()
                        .convert::<f32>()
                        .into_vec::<f32>()
                        .expect("f32 data");
                    out.push((format!("{p}.attn.qk_bias"), HostTensor { shape, values }));
                }
                out.push((format!("{p}.mlp.fc.weight"), linear(&block.mlp.fc)));
                out.push((format!("{p}.mlp.proj.weight"), linear(&block.mlp.proj)));
            }
        }
        out.push((
            "transformer.adapter.weight".to_string(),
            linear(&self.adapter),
        ));
        out.push((
            "transformer.ln_f.weight".to_string(),
            vector(self.ln_f.weight.val()),
        ));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), linear(head)));
        }
        out
    }
}
