//! Converting a model folder to a quantized one (`loopscope quantize`), one tensor at a time:
//! the input files are memory-mapped and the output's header is planned from the input headers
//! before any data is written, so a checkpoint larger than free memory converts (the largest
//! single tensor, as f32, is what must fit).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use memmap2::Mmap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::quant::{is_quantized, Format, Quantization, Quantized, GROUP, MINS, QWEIGHT, SCALES};
use crate::weights::{to_f32, weight_file_names, INDEX_FILE, SINGLE_FILE};

const CONFIG: &str = "config.json";
/// Files the engine reads that a conversion keeps as they are: the tokenizer and the held-out
/// split `loopscope eval` measures.
const CARRIED: [&str; 2] = ["tokenizer.json", "eval.jsonl"];

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub tensors: usize,
    pub quantized: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One output tensor: where its bytes come from.
struct Part {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: usize,
}

/// One input tensor and the parts it becomes.
struct Planned {
    file: usize,
    name: String,
    quantize: bool,
    parts: Vec<Part>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn weights_error(file: &str, message: impl ToString) -> EngineError {
    EngineError::Weights {
        file: file.into(),
        message: message.to_string(),
    }
}

/// Whether `name` with `shape` is stored quantized in `format` (q4 packs pairs of columns, so an
/// odd-width matrix stays as it is).
fn quantizes(format: Format, name: &str, shape: &[usize]) -> bool {
    is_quantized(name, shape) && (format == Format::Q8 || shape[1].is_multiple_of(2))
}

fn plan_parts(format: Format, name: &str, dtype: Dtype, shape: &[usize]) -> Vec<Part> {
    if !quantizes(format, name, shape) {
        let bytes = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        return vec![Part {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            bytes,
        }];
    }
    let (rows, cols) = (shape[0], shape[1]);
    let groups = rows * cols.div_ceil(GROUP);
    let row_bytes = Quantized::row_bytes(format, cols);
    let data_dtype = match format {
        Format::Q8 => Dtype::I8,
        Format::Q4 => Dtype::U8,
    };
    let halves = |suffix: &str| Part {
        name: format!("{name}{suffix}"),
        dtype: Dtype::F16,
        shape: vec![rows, cols.div_ceil(GROUP)],
        bytes: groups * 2,
    };
    let mut parts = vec![
        Part {
            name: format!("{name}{QWEIGHT}"),
            dtype: data_dtype,
            shape: vec![rows, row_bytes],
            bytes: rows * row_bytes,
        },
        halves(SCALES),
    ];
    if format == Format::Q4 {
        parts.push(halves(MINS));
    }
    parts
}

/// The safetensors header for `parts` in order, padded to 8 bytes as the format asks.
fn header(parts: &[&Part]) -> Result<Vec<u8>> {
    let mut entries = serde_json::Map::new();
    let mut offset = 0;
    for part in parts {
        entries.insert(
            part.name.clone(),
            json!({
                "dtype": part.dtype.to_string(),
                "shape": part.shape,
                "data_offsets": [offset, offset + part.bytes],
            }),
        );
        offset += part.bytes;
    }
    let mut text =
        serde_json::to_vec(&Value::Object(entries)).map_err(|e| weights_error(SINGLE_FILE, e))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text);
    Ok(bytes)
}

/// Largest output file `loopscope quantize` writes. A browser holds each file in one buffer, and
/// one allocation in wasm32 stays below 2 GiB; a 1 GiB cap leaves room to spare.
pub const SHARD_BYTES: usize = 1 << 30;

/// Consecutive tensors grouped into files of at most `max_bytes` (a larger tensor alone).
fn shard(planned: &[Planned], max_bytes: usize) -> Vec<Vec<&Planned>> {
    let mut shards: Vec<Vec<&Planned>> = vec![Vec::new()];
    let mut filled = 0;
    for tensor in planned {
        let bytes: usize = tensor.parts.iter().map(|p| p.bytes).sum();
        if filled + bytes > max_bytes && filled > 0 {
            shards.push(Vec::new());
            filled = 0;
        }
        filled += bytes;
        shards.last_mut().expect("one shard at least").push(tensor);
    }
    shards
}

/// The bytes of `tensor`'s stored parts, in the order of `tensor.parts`.
fn stored_parts(format: Format, tensor: &Planned, view: &TensorView) -> Result<Vec<Vec<u8>>> {
    if !tensor.quantize {
        return Ok(vec![view.data().to_vec()]);
    }
    let values = to_f32(view.dtype(), view.data()).map_err(|message| EngineError::Tensor {
        name: tensor.name.clone(),
        message,
    })?;
    let (rows, cols) = (view.shape()[0], view.shape()[1]);
    let q = Quantized::quantize(format, &values, rows, cols);
    let halves = |v: &[half::f16]| v.iter().flat_map(|h| h.to_le_bytes()).collect();
    let mut parts = vec![q.data, halves(&q.scales)];
    if format == Format::Q4 {
        parts.push(halves(&q.mins));
    }
    Ok(parts)
}

/// Converts the folder `input` to `output` in `format`, in one `model.safetensors` or, past
/// `max_file_bytes`, in shards with an index. Calls `progress(done, total, name)` with input
/// bytes after each tensor.
pub fn quantize_folder(
    input: &Path,
    output: &Path,
    format: Format,
    max_file_bytes: usize,
    mut progress: impl FnMut(u64, u64, &str),
) -> Result<Converted> {
    let config_path = input.join(CONFIG);
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&config_path).map_err(io(&config_path))?)
            .map_err(|e| EngineError::Config(e.to_string()))?;
    if config.get("quantization").is_some_and(|q| !q.is_null()) {
        return Err(EngineError::Config(
            "the input is already quantized; convert from an f32, bf16 or f16 checkpoint".into(),
        ));
    }
    let tied = config
        .get("tie_embeddings")
        .and_then(Value::as_bool)
        .unwrap_or(true);

    let names = weight_file_names(input)?;
    let maps = names
        .iter()
        .map(|name| {
            let path = input.join(name);
            let file = File::open(&path).map_err(io(&path))?;
            // Safety: the input folder is only read while it is mapped.
            unsafe { Mmap::map(&file) }.map_err(io(&path))
        })
        .collect::<Result<Vec<Mmap>>>()?;
    let parsed = maps
        .iter()
        .zip(&names)
        .map(|(map, name)| SafeTensors::deserialize(map).map_err(|e| weights_error(name, e)))
        .collect::<Result<Vec<_>>>()?;

    let mut planned = Vec::new();
    for (file, tensors) in parsed.iter().enumerate() {
        for (name, view) in tensors.tensors() {
            // The tied embedding's second copy: the engine reads `wte` only.
            if tied && name == "lm_head.weight" {
                continue;
            }
            planned.push(Planned {
                file,
                quantize: quantizes(format, &name, view.shape()),
                parts: plan_parts(format, &name, view.dtype(), view.shape()),
                name,
            });
        }
    }
    planned.sort_by(|a, b| a.name.cmp(&b.name));

    std::fs::create_dir_all(output).map_err(io(output))?;
    let shards = shard(&planned, max_file_bytes);
    let file_names: Vec<String> = match shards.len() {
        1 => vec![SINGLE_FILE.to_string()],
        n => (1..=n)
            .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
            .collect(),
    };
    let total: u64 = maps.iter().map(|m| m.len() as u64).sum();
    let mut done = 0u64;
    let mut weight_map = serde_json::Map::new();
    let mut bytes_out = 0;
    for (tensors, file_name) in shards.iter().zip(&file_names) {
        let out_path = output.join(file_name);
        let mut out = BufWriter::new(File::create(&out_path).map_err(io(&out_path))?);
        let parts: Vec<&Part> = tensors.iter().flat_map(|p| &p.parts).collect();
        for part in &parts {
            weight_map.insert(part.name.clone(), Value::from(file_name.as_str()));
        }
        out.write_all(&header(&parts)?).map_err(io(&out_path))?;
        for tensor in tensors {
            let view = parsed[tensor.file]
                .tensor(&tensor.name)
                .map_err(|e| weights_error(&names[tensor.file], e))?;
            for (part, data) in tensor
                .parts
                .iter()
                .zip(stored_parts(format, tensor, &view)?)
            {
                debug_assert_eq!(part.bytes, data.len(), "{}", part.name);
                out.write_all(&data).map_err(io(&out_path))?;
            }
            done += view.data().len() as u64;
            progress(done, total, &tensor.name);
        }
        out.flush().map_err(io(&out_path))?;
        bytes_out += std::fs::metadata(&out_path).map_err(io(&out_path))?.len();
    }
    if file_names.len() > 1 {
        let index = json!({ "metadata": { "total_size": bytes_out }, "weight_map": weight_map });
        let index_path = output.join(INDEX_FILE);
        std::fs::write(
            &index_path,
            serde_json::to_vec_pretty(&index).map_err(|e| weights_error(INDEX_FILE, e))?,
        )
        .map_err(io(&index_path))?;
    }

    config["quantization"] = serde_json::to_value(Quantization {
        format,
        group_size: GROUP,
    })
    .map_err(|e| EngineError::Config(e.to_string()))?;
    let config_out = output.join(CONFIG);
    std::fs::write(
        &config_out,
        serde_json::to_vec_pretty(&config).map_err(|e| EngineError::Config(e.to_string()))?,
    )
    .map_err(io(&config_out))?;
    for name in CARRIED {
        if input.join(name).exists() {
            std::fs::copy(input.join(name), output.join(name)).map_err(io(output))?;
        }
    }
    Ok(Converted {
        tensors: planned.len(),
        quantized: planned.iter().filter(|p| p.quantize).count(),
        bytes_in: total,
        bytes_out,
    })
}
