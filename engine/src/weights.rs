//! Reading Hugging Face safetensors checkpoints: one file or an index with shards, f32/bf16/f16,
//! or matrices quantized to q8/q4 (see `quant`), which load as their f32 values.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::quant::{Format, Quantized, MINS, QWEIGHT, SCALES};

/// The name of the single-file checkpoint and of the shard index, as `save_pretrained` writes them.
pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A tensor converted to f32 on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The raw bytes of every safetensors file of a checkpoint, and which file holds each tensor.
pub struct Checkpoint {
    files: Vec<(String, Vec<u8>)>,
    location: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl Checkpoint {
    /// Builds a checkpoint from files already in memory (the browser's path). `files` holds
    /// either `model.safetensors`, or `model.safetensors.index.json` and the shards it names.
    pub fn from_files(mut files: HashMap<String, Vec<u8>>) -> Result<Self> {
        let names: Vec<String> = if let Some(index) = files.remove(INDEX_FILE) {
            shard_names(&index)?
        } else {
            vec![SINGLE_FILE.to_string()]
        };
        let mut checkpoint = Checkpoint {
            files: Vec::new(),
            location: HashMap::new(),
        };
        for name in names {
            let bytes = files.remove(&name).ok_or_else(|| EngineError::Weights {
                file: name.clone(),
                message: "file is missing".into(),
            })?;
            checkpoint.add_file(name, bytes)?;
        }
        Ok(checkpoint)
    }

    fn add_file(&mut self, name: String, bytes: Vec<u8>) -> Result<()> {
        let parsed = SafeTensors::deserialize(&bytes).map_err(|e| EngineError::Weights {
            file: name.clone(),
            message: format!("not a valid safetensors file ({e})"),
        })?;
        let index = self.files.len();
        for tensor in parsed.names() {
            self.location.insert(tensor.to_string(), index);
        }
        self.files.push((name, bytes));
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name) || self.location.contains_key(&format!("{name}{QWEIGHT}"))
    }

    /// Loads one tensor as f32, checking its shape against `expected`.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let tensor = self.tensor_any_shape(name)?;
        if tensor.shape != expected {
            return Err(shape_mismatch(name, &tensor.shape, expected));
        }
        Ok(tensor)
    }

    /// `quantized`, checking the matrix is `expected` ([rows, cols] as stored).
    pub fn quantized_matrix(&self, name: &str, expected: [usize; 2]) -> Result<Option<Quantized>> {
        let quantized = self.quantized(name)?;
        if let Some(q) = &quantized {
            if [q.rows, q.cols] != expected {
                return Err(shape_mismatch(name, &[q.rows, q.cols], &expected));
            }
        }
        Ok(quantized)
    }

    /// Loads one tensor as f32 whatever its shape.
    pub fn tensor_any_shape(&self, name: &str) -> Result<HostTensor> {
        if let Some(quantized) = self.quantized(name)? {
            return Ok(HostTensor {
                shape: vec![quantized.rows, quantized.cols],
                values: quantized.dequantize(),
            });
        }
        let (dtype, shape, data) = self.stored(name)?;
        let values = to_f32(dtype, &data).map_err(|message| EngineError::Tensor {
            name: name.into(),
            message,
        })?;
        Ok(HostTensor { shape, values })
    }

    /// A stored tensor's dtype, shape and bytes.
    fn stored(&self, name: &str) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
        let &index = self
            .location
            .get(name)
            .ok_or_else(|| EngineError::MissingTensor { name: name.into() })?;
        let (file, bytes) = &self.files[index];
        let parsed = SafeTensors::deserialize(bytes).map_err(|e| EngineError::Weights {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let view = parsed.tensor(name).map_err(|e| EngineError::Tensor {
            name: name.into(),
            message: e.to_string(),
        })?;
        Ok((view.dtype(), view.shape().to_vec(), view.data().to_vec()))
    }

    /// A matrix stored quantized, as stored: i8 codes mean q8, packed u8 codes q4 (see
    /// `quant`). `None` when `name` is stored as plain floats.
    pub fn quantized(&self, name: &str) -> Result<Option<Quantized>> {
        if self.location.contains_key(name) || !self.contains(name) {
            return Ok(None);
        }
        let bad = |message: String| EngineError::Tensor {
            name: name.into(),
            message,
        };
        let (dtype, shape, data) = self.stored(&format!("{name}{QWEIGHT}"))?;
        let &[rows, stored] = shape.as_slice() else {
            return Err(bad(format!("quantized data has shape {shape:?}, not 2-D")));
        };
        let (format, cols) = match dtype {
            Dtype::I8 => (Format::Q8, stored),
            Dtype::U8 => (Format::Q4, 2 * stored),
            other => {
                return Err(bad(format!(
                    "quantized data has dtype {other:?}, not I8 or U8"
                )))
            }
        };
        let halves = |suffix: &str| -> Result<Vec<half::f16>> {
            let (dtype, _, bytes) = self.stored(&format!("{name}{suffix}"))?;
            if dtype != Dtype::F16 {
                return Err(bad(format!("{suffix} has dtype {dtype:?}, not F16")));
            }
            Ok(bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                .collect())
        };
        let quantized = Quantized {
            format,
            rows,
            cols,
            data,
            scales: halves(SCALES)?,
            mins: match format {
                Format::Q8 => Vec::new(),
                Format::Q4 => halves(MINS)?,
            },
        };
        quantized.check().map_err(bad)?;
        Ok(Some(quantized))
    }
}

/// Reads the weight files of a checkpoint folder: the single file, or the index and its shards.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_weight_files(dir: &std::path::Path) -> Result<HashMap<String, Vec<u8>>> {
    let mut files = HashMap::new();
    for name in weight_file_names(dir)? {
        files.insert(name.clone(), read_file(&dir.join(&name))?);
    }
    if dir.join(INDEX_FILE).exists() {
        files.insert(INDEX_FILE.to_string(), read_file(&dir.join(INDEX_FILE))?);
    }
    Ok(files)
}

#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EngineError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn shape_mismatch(name: &str, found: &[usize], expected: &[usize]) -> EngineError {
    EngineError::Tensor {
        name: name.into(),
        message: format!("has shape {found:?}, the config implies {expected:?}"),
    }
}

/// The safetensors files holding a folder's weights: the shards its index names, or the single
/// file.
#[cfg(not(target_arch = "wasm32"))]
pub fn weight_file_names(dir: &std::path::Path) -> Result<Vec<String>> {
    if !dir.join(INDEX_FILE).exists() {
        return Ok(vec![SINGLE_FILE.to_string()]);
    }
    shard_names(&read_file(&dir.join(INDEX_FILE))?)
}

/// The shard files a `model.safetensors.index.json` names, sorted. Names are plain file names in
/// the folder: an index that points elsewhere is refused (a page fetches what it names).
pub fn shard_names(index: &[u8]) -> Result<Vec<String>> {
    let bad = |message: String| EngineError::Weights {
        file: INDEX_FILE.into(),
        message,
    };
    let index: ShardIndex = serde_json::from_slice(index).map_err(|e| bad(e.to_string()))?;
    let mut shards: Vec<String> = index.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    if let Some(odd) = shards
        .iter()
        .find(|s| s.is_empty() || s.contains(['/', '\\']) || s.starts_with('.'))
    {
        return Err(bad(format!("names `{odd}`, not a file in the folder")));
    }
    if shards.is_empty() {
        return Err(bad("names no shards".into()));
    }
    Ok(shards)
}

/// Converts little-endian bytes of a floating-point dtype to f32.
pub fn to_f32(dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, String> {
    let pairs = || {
        data.chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    match dtype {
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        Dtype::BF16 => Ok(pairs()
            .map(|bits| half::bf16::from_bits(bits).to_f32())
            .collect()),
        Dtype::F16 => Ok(pairs()
            .map(|bits| half::f16::from_bits(bits).to_f32())
            .collect()),
        other => Err(format!(
            "has dtype {other:?}; only F32, BF16 and F16 weights can be loaded"
        )),
    }
}

/// Serialises tensors as a safetensors file in f32 (or bf16, halving the size).
pub fn write_safetensors(tensors: &[(String, HostTensor)], bf16: bool) -> Result<Vec<u8>> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = match bf16 {
                true => t
                    .values
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                false => t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let dtype = if bf16 { Dtype::BF16 } else { Dtype::F32 };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| EngineError::Tensor {
                    name: name.clone(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| EngineError::Weights {
        file: SINGLE_FILE.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_names_its_shards_once_each_and_only_files_in_the_folder() {
        let index = br#"{"weight_map": {"a": "model-00002-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}"#;
        assert_eq!(
            shard_names(index).unwrap(),
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ]
        );
        for bad in [
            r#"{"weight_map": {"a": "../secret"}}"#,
            r#"{"weight_map": {"a": "https://elsewhere/x"}}"#,
            r#"{"weight_map": {}}"#,
            r#"{"shards": 3}"#,
            "not json",
        ] {
            let error = shard_names(bad.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(INDEX_FILE), "{bad}: {error}");
        }
    }
}
