//! Writes a random-weight checkpoint of any shape in the Hugging Face layout, as the published
//! Huginn-0125 is stored: bf16, split into shards with an index, the tied head stored a second
//! time as `lm_head.weight`. Streams tensor by tensor, so a 7 GB checkpoint needs little memory.
//! For exercising `quantize` and `bench` at full scale where the real weights cannot be fetched.
//!
//!     cargo run --release -p loopscope-engine --example random_checkpoint -- CONFIG.json OUT_DIR SHARDS

use std::io::{BufWriter, Write};
use std::path::Path;

use half::bf16;
use loopscope_engine::ModelConfig;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// Every tensor of a checkpoint of this shape, in the reference's names and [out, in] layout.
fn tensors(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (e, i, v) = (c.n_embd, c.intermediate_size, c.padded_vocab_size);
    let mut out = vec![("transformer.wte.weight".to_string(), vec![v, e])];
    for (part, n) in [
        ("prelude", c.n_layers_in_prelude),
        ("core_block", c.n_layers_in_recurrent_block),
        ("coda", c.n_layers_in_coda),
    ] {
        for layer in 0..n {
            let p = format!("transformer.{part}.{layer}");
            for norm in 1..=4 {
                out.push((format!("{p}.norm_{norm}.weight"), vec![e]));
            }
            out.push((format!("{p}.attn.Wqkv.weight"), vec![3 * e, e]));
            out.push((format!("{p}.attn.proj.weight"), vec![e, e]));
            if c.qk_bias {
                out.push((
                    format!("{p}.attn.qk_bias"),
                    vec![2, 1, c.n_heads, c.head_dim()],
                ));
            }
            out.push((format!("{p}.mlp.fc.weight"), vec![2 * i, e]));
            out.push((format!("{p}.mlp.proj.weight"), vec![e, i]));
        }
    }
    out.push(("transformer.adapter.weight".to_string(), vec![e, 2 * e]));
    out.push(("transformer.ln_f.weight".to_string(), vec![e]));
    out.push(("lm_head.weight".to_string(), vec![v, e]));
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config_path, out, shards] = args.as_slice() else {
        return Err("usage: random_checkpoint CONFIG.json OUT_DIR SHARDS".into());
    };
    let shards: usize = shards.parse()?;
    let text = std::fs::read_to_string(config_path)?;
    let config = ModelConfig::from_json(&text)?;
    let out = Path::new(out);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("config.json"), &text)?;

    let all = tensors(&config);
    let total: usize = all.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    let per_shard = total.div_ceil(shards.max(1));
    // Consecutive tensors fill a shard up to its share of the values.
    let mut groups: Vec<Vec<(String, Vec<usize>)>> = vec![Vec::new()];
    let mut filled = 0;
    for (name, shape) in all {
        let n: usize = shape.iter().product();
        if filled >= per_shard && groups.len() < shards {
            groups.push(Vec::new());
            filled = 0;
        }
        filled += n;
        groups
            .last_mut()
            .expect("one group at least")
            .push((name, shape));
    }
    let count = groups.len();
    let mut weight_map = Map::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (s, group) in groups.iter().enumerate() {
        let file = format!("model-{:05}-of-{count:05}.safetensors", s + 1);
        let mut entries = Map::new();
        let mut offset = 0usize;
        for (name, shape) in group {
            let bytes = 2 * shape.iter().product::<usize>();
            entries.insert(
                name.clone(),
                json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
            weight_map.insert(name.clone(), Value::String(file.clone()));
        }
        let mut header = serde_json::to_vec(&Value::Object(entries))?;
        while header.len() % 8 != 0 {
            header.push(b' ');
        }
        let mut writer = BufWriter::with_capacity(1 << 22, std::fs::File::create(out.join(&file))?);
        writer.write_all(&(header.len() as u64).to_le_bytes())?;
        writer.write_all(&header)?;
        for (name, shape) in group {
            let n: usize = shape.iter().product();
            // Norms at one, everything else small and centred, as an initialised model.
            let norm = name.contains("norm") || name.contains("ln_f");
            let mut chunk = Vec::with_capacity(2 << 16);
            for start in (0..n).step_by(1 << 16) {
                chunk.clear();
                for _ in start..(start + (1 << 16)).min(n) {
                    let x = if norm {
                        1.0
                    } else {
                        (rng.random::<f32>() - 0.5) * 0.04
                    };
                    chunk.extend_from_slice(&bf16::from_f32(x).to_le_bytes());
                }
                writer.write_all(&chunk)?;
            }
        }
        writer.flush()?;
        eprintln!(
            "{file}: {} tensors, {:.2} GB",
            group.len(),
            offset as f64 / 1e9
        );
    }
    let index = json!({"metadata": {"total_size": 2 * total}, "weight_map": weight_map});
    std::fs::write(
        out.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&index)?,
    )?;
    Ok(())
}
