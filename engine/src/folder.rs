//! A model folder in the engine's layout: `config.json`, the safetensors weights (one file or an
//! index with shards) and, optionally, `tokenizer.json`.

use std::collections::HashMap;

use burn::tensor::backend::Backend;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kernels::Kernels;
use crate::model::RecurrentModel;
use crate::tokenizer::Tokenizer;
use crate::weights::Checkpoint;

pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

pub struct LoadedModel<B: Backend> {
    pub model: RecurrentModel<B>,
    pub tokenizer: Option<Tokenizer>,
}

/// Builds a model from the folder's files, already in memory (file name -> bytes).
pub fn load_files<B: Kernels>(
    mut files: HashMap<String, Vec<u8>>,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let config = files
        .remove(CONFIG_FILE)
        .ok_or_else(|| EngineError::Config("config.json is missing".into()))?;
    let config = ModelConfig::from_json(
        std::str::from_utf8(&config)
            .map_err(|_| EngineError::Config("config.json is not UTF-8 text".into()))?,
    )?;
    let tokenizer = files
        .remove(TOKENIZER_FILE)
        .map(|t| Tokenizer::from_bytes(&t))
        .transpose()?;
    let checkpoint = Checkpoint::from_files(files)?;
    let model = RecurrentModel::load(&config, &checkpoint, device)?;
    Ok(LoadedModel { model, tokenizer })
}

/// Reads a model folder from disk.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir<B: Kernels>(dir: &std::path::Path, device: &B::Device) -> Result<LoadedModel<B>> {
    let mut files = crate::weights::read_weight_files(dir)?;
    for name in [CONFIG_FILE, TOKENIZER_FILE] {
        let path = dir.join(name);
        if name == CONFIG_FILE || path.exists() {
            let bytes = std::fs::read(&path).map_err(|source| EngineError::Io {
                path: path.display().to_string(),
                source,
            })?;
            files.insert(name.to_string(), bytes);
        }
    }
    load_files(files, device)
}
