//! The model's shape, read from the `config.json` that Hugging Face `save_pretrained` writes.

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Shape and constants of a recurrent-depth model. Field names follow the checkpoint's config.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub n_embd: usize,
    pub n_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    pub n_layers_in_prelude: usize,
    pub n_layers_in_recurrent_block: usize,
    pub n_layers_in_coda: usize,
    pub intermediate_size: usize,
    pub padded_vocab_size: usize,
    #[serde(default)]
    pub vocab_size: Option<usize>,
    pub rope_base: f64,
    pub norm_eps: f64,
    pub qk_bias: bool,
    pub tie_embeddings: bool,
    /// Context length the model was trained for.
    pub block_size: usize,
    /// Iteration count the model was trained around; the default number of core iterations.
    #[serde(default = "default_mean_recurrence")]
    pub mean_recurrence: usize,
    #[serde(default)]
    pub mean_backprop_depth: Option<usize>,
    #[serde(default)]
    pub init_values: Option<InitValues>,
    /// Set when the matrices are stored quantized (they load as their f32 values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<crate::quant::Quantization>,
}

fn default_mean_recurrence() -> usize {
    32
}

/// Scales of the Takase initialisation; `std` also sets the spread of the random initial state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitValues {
    pub std: f64,
    pub embed_scale: f64,
    #[serde(default)]
    pub embedding: Option<f64>,
    #[serde(default)]
    pub out_proj: Option<f64>,
}

impl ModelConfig {
    /// Parses and validates a config.json text.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: ModelConfig =
            serde_json::from_str(text).map_err(|e| EngineError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_heads
    }

    /// Embedding scale: the saved value when present, else sqrt(n_embd) as in the paper.
    pub fn embed_scale(&self) -> f32 {
        self.init_values
            .as_ref()
            .map_or((self.n_embd as f64).sqrt(), |v| v.embed_scale) as f32
    }

    /// Standard deviation of the initial state before the embedding scale: sqrt(2 / (5 n_embd)).
    pub fn init_std(&self) -> f32 {
        self.init_values
            .as_ref()
            .map_or((2.0 / (5.0 * self.n_embd as f64)).sqrt(), |v| v.std) as f32
    }

    fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(EngineError::Config(m));
        for (name, value) in [
            ("n_embd", self.n_embd),
            ("n_heads", self.n_heads),
            (
                "n_layers_in_recurrent_block",
                self.n_layers_in_recurrent_block,
            ),
            ("intermediate_size", self.intermediate_size),
            ("padded_vocab_size", self.padded_vocab_size),
            ("block_size", self.block_size),
        ] {
            if value == 0 {
                return fail(format!("`{name}` must be positive"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_heads) {
            return fail(format!(
                "n_embd {} is not divisible by n_heads {}",
                self.n_embd, self.n_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return fail(format!(
                "head dimension {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if let Some(kv) = self.num_key_value_heads {
            if kv != self.n_heads {
                return fail(format!(
                    "num_key_value_heads {kv} differs from n_heads {}: grouped-query attention is not part of this architecture",
                    self.n_heads
                ));
            }
        }
        // Written so that NaN fails too.
        let positive = |x: f64| x > 0.0;
        if !positive(self.rope_base) || !positive(self.norm_eps) {
            return fail("rope_base and norm_eps must be positive".into());
        }
        Ok(())
    }
}
