//! An independent test oracle for the recurrent-depth model, written from `../shared/DESIGN.md`
//! and nothing else of the engine's model code:
//!
//! - [`Oracle`]: a deliberately naive forward pass in f64 over plain `Vec<f64>` loops (no burn):
//!   `e = Prelude(wte[x] * embed_scale)`, `s_i = Core(Adapter(concat[s_{i-1}, e]))` r times,
//!   `logits = head(ln_f(Coda(ln_f(s_i))))` for every i (the logit lens; the last one is the output).
//! - [`write_folder`]: writes a random checkpoint folder in the Hugging Face layout (`config.json`,
//!   one safetensors file or an index with shards, f32/bf16/f16, optionally `lm_head.weight` stored
//!   a second time as the published Huginn-0125 shards do).
//!
//! The only engine code the oracle uses is the safetensors reader (`weights::Checkpoint`), so that
//! bf16/f16 weights are seen as the same rounded values by both sides.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use loopscope_engine::weights::{read_weight_files, Checkpoint};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The fields of config.json the forward pass depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleConfig {
    pub n_embd: usize,
    pub n_heads: usize,
    pub prelude: usize,
    pub core: usize,
    pub coda: usize,
    pub intermediate: usize,
    /// padded_vocab_size: the rows of wte and the width of the logits.
    pub vocab: usize,
    pub rope_base: f64,
    pub norm_eps: f64,
    /// init_values.embed_scale when the config has it, else sqrt(n_embd) (the paper's value).
    pub embed_scale: f64,
    pub qk_bias: bool,
    pub tied: bool,
}

impl OracleConfig {
    /// Reads config.json as untyped JSON (not through the engine's `ModelConfig`).
    pub fn from_json(text: &str) -> Self {
        let v: Value = serde_json::from_str(text).expect("config.json is JSON");
        let int = |k: &str| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("config.json: `{k}` missing")) as usize
        };
        let float = |k: &str| {
            v[k].as_f64()
                .unwrap_or_else(|| panic!("config.json: `{k}` missing"))
        };
        let n_embd = int("n_embd");
        let embed_scale = v["init_values"]["embed_scale"]
            .as_f64()
            .unwrap_or((n_embd as f64).sqrt());
        Self {
            n_embd,
            n_heads: int("n_heads"),
            prelude: int("n_layers_in_prelude"),
            core: int("n_layers_in_recurrent_block"),
            coda: int("n_layers_in_coda"),
            intermediate: int("intermediate_size"),
            vocab: int("padded_vocab_size"),
            rope_base: float("rope_base"),
            norm_eps: float("norm_eps"),
            embed_scale,
            qk_bias: v["qk_bias"].as_bool().expect("config.json: `qk_bias`"),
            tied: v["tie_embeddings"]
                .as_bool()
                .expect("config.json: `tie_embeddings`"),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_heads
    }
}

/// Every parameter tensor of the model, Hugging Face names and PyTorch shapes ([out, in] for linears).
/// `lm_head.weight` is listed only for an untied head.
pub fn parameter_shapes(c: &OracleConfig) -> Vec<(String, Vec<usize>)> {
    let (e, i, h, hd, v) = (c.n_embd, c.intermediate, c.n_heads, c.head_dim(), c.vocab);
    let mut out = vec![
        ("transformer.wte.weight".to_string(), vec![v, e]),
        ("transformer.adapter.weight".to_string(), vec![e, 2 * e]),
        ("transformer.ln_f.weight".to_string(), vec![e]),
    ];
    for (part, n) in [
        ("prelude", c.prelude),
        ("core_block", c.core),
        ("coda", c.coda),
    ] {
        for l in 0..n {
            let p = format!("transformer.{part}.{l}");
            out.push((format!("{p}.attn.Wqkv.weight"), vec![3 * e, e]));
            out.push((format!("{p}.attn.proj.weight"), vec![e, e]));
            if c.qk_bias {
                out.push((format!("{p}.attn.qk_bias"), vec![2, 1, h, hd]));
            }
            out.push((format!("{p}.mlp.fc.weight"), vec![2 * i, e]));
            out.push((format!("{p}.mlp.proj.weight"), vec![e, i]));
            for n in 1..=4 {
                out.push((format!("{p}.norm_{n}.weight"), vec![e]));
            }
        }
    }
    if !c.tied {
        out.push(("lm_head.weight".to_string(), vec![v, e]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The naive f64 forward pass
// ---------------------------------------------------------------------------------------------

pub struct Oracle {
    pub config: OracleConfig,
    weights: HashMap<String, Vec<f64>>,
}

/// Everything one full causal pass over a sequence produces. Rows are positions, flattened
/// row-major: [S*E] for states, [S*V] for logits.
#[derive(Debug, Clone)]
pub struct Forward {
    pub prelude_out: Vec<f64>,
    /// s_0 .. s_r.
    pub latents: Vec<Vec<f64>>,
    /// ln_f(s_0) .. ln_f(s_r).
    pub normed: Vec<Vec<f64>>,
    /// Logit lens of s_1 .. s_r; the last one is the model's output.
    pub lens: Vec<Vec<f64>>,
}

impl Forward {
    pub fn logits(&self) -> &[f64] {
        self.lens.last().expect("at least one iteration")
    }
}

type Rows = Vec<Vec<f64>>;

impl Oracle {
    /// Reads config.json and the weights (single file or index + shards) of a model folder.
    pub fn load(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json readable");
        let config = OracleConfig::from_json(&text);
        let checkpoint = Checkpoint::from_files(read_weight_files(dir).expect("weight files"))
            .expect("checkpoint");
        let mut weights = HashMap::new();
        for (name, shape) in parameter_shapes(&config) {
            let t = checkpoint
                .tensor_any_shape(&name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.shape, shape, "{name}");
            weights.insert(name, t.values.iter().map(|&x| x as f64).collect());
        }
        Self { config, weights }
    }

    fn w(&self, name: &str) -> &[f64] {
        self.weights
            .get(name)
            .unwrap_or_else(|| panic!("no weight {name}"))
    }

    /// y = W x for W stored [d_out, d_in] (PyTorch layout).
    fn linear(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let w = self.w(name);
        let d_in = x.len();
        assert_eq!(w.len() % d_in, 0, "{name}: input width");
        let d_out = w.len() / d_in;
        let mut y = vec![0.0; d_out];
        for o in 0..d_out {
            let mut acc = 0.0;
            for i in 0..d_in {
                acc += w[o * d_in + i] * x[i];
            }
            y[o] = acc;
        }
        y
    }

    /// RMSNorm: x / sqrt(mean(x^2) + eps) * w.
    fn rms_norm(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let w = self.w(name);
        let mean_square = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let inv = 1.0 / (mean_square + self.config.norm_eps).sqrt();
        x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
    }

    /// Rotates one head's vector at position `pos`: pairs (2j, 2j+1) by pos * base^(-2j/head_dim).
    fn rope(&self, x: &mut [f64], pos: usize) {
        let hd = x.len();
        for j in 0..hd / 2 {
            let angle = pos as f64 * self.config.rope_base.powf(-((2 * j) as f64) / hd as f64);
            let (sin, cos) = angle.sin_cos();
            let (a, b) = (x[2 * j], x[2 * j + 1]);
            x[2 * j] = a * cos - b * sin;
            x[2 * j + 1] = b * cos + a * sin;
        }
    }

    /// Causal multi-head self-attention over all rows (row p is position p).
    fn attention(&self, prefix: &str, x: &Rows) -> Rows {
        let (e, h, hd) = (
            self.config.n_embd,
            self.config.n_heads,
            self.config.head_dim(),
        );
        let seq = x.len();
        let mut q = vec![vec![0.0; e]; seq];
        let mut k = vec![vec![0.0; e]; seq];
        let mut v = vec![vec![0.0; e]; seq];
        for p in 0..seq {
            let qkv = self.linear(&format!("{prefix}.Wqkv.weight"), &x[p]);
            q[p].copy_from_slice(&qkv[0..e]);
            k[p].copy_from_slice(&qkv[e..2 * e]);
            v[p].copy_from_slice(&qkv[2 * e..3 * e]);
            if self.config.qk_bias {
                // qk_bias [2, 1, H, hd]: row 0 is added to q, row 1 to k (head-major within a row).
                let bias = self.w(&format!("{prefix}.qk_bias"));
                for c in 0..e {
                    q[p][c] += bias[c];
                    k[p][c] += bias[e + c];
                }
            }
            for head in 0..h {
                self.rope(&mut q[p][head * hd..(head + 1) * hd], p);
                self.rope(&mut k[p][head * hd..(head + 1) * hd], p);
            }
        }
        let scale = 1.0 / (hd as f64).sqrt();
        let mut y = vec![vec![0.0; e]; seq];
        for head in 0..h {
            let r = head * hd..(head + 1) * hd;
            for p in 0..seq {
                // Position p sees positions 0..=p.
                let scores: Vec<f64> = (0..=p)
                    .map(|t| {
                        q[p][r.clone()]
                            .iter()
                            .zip(&k[t][r.clone()])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (t, w) in exps.iter().enumerate() {
                    for c in r.clone() {
                        y[p][c] += w / total * v[t][c];
                    }
                }
            }
        }
        y.iter()
            .map(|row| self.linear(&format!("{prefix}.proj.weight"), row))
            .collect()
    }

    /// Gated MLP: [a, b] = fc x split in halves; proj(silu(a) * b).
    fn mlp(&self, prefix: &str, x: &[f64]) -> Vec<f64> {
        let ab = self.linear(&format!("{prefix}.fc.weight"), x);
        let i = ab.len() / 2;
        let gated: Vec<f64> = (0..i)
            .map(|j| {
                let a = ab[j];
                a / (1.0 + (-a).exp()) * ab[i + j]
            })
            .collect();
        self.linear(&format!("{prefix}.proj.weight"), &gated)
    }

    /// Sandwich block: h = norm_2(x + Attn(norm_1(x))); out = norm_4(h + MLP(norm_3(h))).
    fn block(&self, prefix: &str, x: &Rows) -> Rows {
        let normed: Rows = x
            .iter()
            .map(|row| self.rms_norm(&format!("{prefix}.norm_1.weight"), row))
            .collect();
        let attended = self.attention(&format!("{prefix}.attn"), &normed);
        x.iter()
            .zip(&attended)
            .map(|(row, a)| {
                let sum: Vec<f64> = row.iter().zip(a).map(|(p, q)| p + q).collect();
                let h = self.rms_norm(&format!("{prefix}.norm_2.weight"), &sum);
                let m = self.mlp(
                    &format!("{prefix}.mlp"),
                    &self.rms_norm(&format!("{prefix}.norm_3.weight"), &h),
                );
                let sum: Vec<f64> = h.iter().zip(&m).map(|(p, q)| p + q).collect();
                self.rms_norm(&format!("{prefix}.norm_4.weight"), &sum)
            })
            .collect()
    }

    fn blocks(&self, part: &str, n: usize, mut x: Rows) -> Rows {
        for l in 0..n {
            x = self.block(&format!("transformer.{part}.{l}"), &x);
        }
        x
    }

    fn ln_f(&self, x: &Rows) -> Rows {
        x.iter()
            .map(|row| self.rms_norm("transformer.ln_f.weight", row))
            .collect()
    }

    /// head(ln_f(Coda(ln_f(state)))); the head is x . wte^T when tied.
    fn lens(&self, state: &Rows) -> Rows {
        let x = self.ln_f(&self.blocks("coda", self.config.coda, self.ln_f(state)));
        let head = if self.config.tied {
            "transformer.wte.weight"
        } else {
            "lm_head.weight"
        };
        x.iter().map(|row| self.linear(head, row)).collect()
    }

    /// The full causal pass over `ids` with initial states `s0` ([S*E] row-major) and `r` iterations.
    pub fn forward(&self, ids: &[u32], s0: &[f64], r: usize) -> Forward {
        let e = self.config.n_embd;
        assert_eq!(s0.len(), ids.len() * e, "s0 must be [S, E]");
        assert!(r >= 1);
        let wte = self.w("transformer.wte.weight");
        let embedded: Rows = ids
            .iter()
            .map(|&t| {
                wte[t as usize * e..(t as usize + 1) * e]
                    .iter()
                    .map(|v| v * self.config.embed_scale)
                    .collect()
            })
            .collect();
        let prelude_out = self.blocks("prelude", self.config.prelude, embedded);
        let mut state: Rows = s0.chunks(e).map(|c| c.to_vec()).collect();
        let flat = |rows: &Rows| rows.concat();
        let mut out = Forward {
            prelude_out: flat(&prelude_out),
            latents: vec![flat(&state)],
            normed: vec![flat(&self.ln_f(&state))],
            lens: Vec::new(),
        };
        for _ in 0..r {
            let injected: Rows = state
                .iter()
                .zip(&prelude_out)
                .map(|(s, p)| {
                    self.linear(
                        "transformer.adapter.weight",
                        &[s.as_slice(), p.as_slice()].concat(),
                    )
                })
                .collect();
            state = self.blocks("core_block", self.config.core, injected);
            out.latents.push(flat(&state));
            out.normed.push(flat(&self.ln_f(&state)));
            out.lens.push(flat(&self.lens(&state)));
        }
        out
    }
}

/// Largest |a - b| over two equally long arrays.
pub fn max_abs_diff(engine: &[f32], oracle: &[f64]) -> f64 {
    assert_eq!(engine.len(), oracle.len(), "array lengths differ");
    engine
        .iter()
        .zip(oracle)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Random checkpoints in the Hugging Face layout
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    BF16,
    F16,
}

/// The shape of a random model.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub n_embd: usize,
    pub n_heads: usize,
    pub prelude: usize,
    pub core: usize,
    pub coda: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub rope_base: f64,
    pub block_size: usize,
    pub norm_eps: f64,
    /// Written as init_values.embed_scale; None writes sqrt(n_embd), as the paper's models do.
    pub embed_scale: Option<f64>,
    /// Multiplies the spread of every random matrix (wte, adapter, attention, MLP) over the
    /// Takase values. Trained models are sharper than their initialisation; a gain above 1 makes
    /// attention and the head less uniform, so that a wrong detail moves the outputs visibly.
    pub gain: f64,
    pub seed: u64,
}

impl Spec {
    pub fn new(
        n_embd: usize,
        n_heads: usize,
        layers: (usize, usize, usize),
        vocab: usize,
        rope_base: f64,
    ) -> Self {
        Self {
            n_embd,
            n_heads,
            prelude: layers.0,
            core: layers.1,
            coda: layers.2,
            intermediate: n_embd * 5 / 2,
            vocab,
            rope_base,
            block_size: 64,
            norm_eps: 1e-6,
            embed_scale: None,
            gain: GAIN,
            seed: 0,
        }
    }

    pub fn init_std(&self) -> f64 {
        (2.0 / (5.0 * self.n_embd as f64)).sqrt()
    }
}

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub dtype: DType,
    /// 1: `model.safetensors`; n > 1: `model.safetensors.index.json` and n shards.
    pub shards: usize,
    /// Store the tied head a second time as `lm_head.weight` (the published checkpoint does).
    pub duplicate_lm_head: bool,
    /// An untied head (`tie_embeddings: false`) with its own random `lm_head.weight`.
    pub untied_head: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            shards: 1,
            duplicate_lm_head: false,
            untied_head: false,
        }
    }
}

/// Default [`Spec::gain`].
pub const GAIN: f64 = 2.0;

/// Mean recurrence written to the config; also enters the Takase depth for output projections.
const MEAN_RECURRENCE: usize = 4;

struct Gaussian(ChaCha8Rng);

impl Gaussian {
    /// Standard normal (Box-Muller), clipped at 3 sigma.
    fn next(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.0.random::<f64>();
        let u2: f64 = self.0.random::<f64>();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).clamp(-3.0, 3.0)
    }
}

/// Writes `config.json` and random weights for `spec` into `dir`.
pub fn write_folder(dir: &Path, spec: &Spec, layout: &Layout) {
    let embed_scale = spec.embed_scale.unwrap_or((spec.n_embd as f64).sqrt());
    let std = spec.init_std();
    let depth = spec.prelude + spec.coda + spec.core * MEAN_RECURRENCE;
    let out_std = std / (2.0 * depth as f64).sqrt();
    let torch_dtype = match layout.dtype {
        DType::F32 => "float32",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
    };
    let config = json!({
        "architectures": ["RavenForCausalLM"],
        "architecture_class_name": "RecurrentGPT",
        "model_type": "huginn_raven",
        "bias": false,
        "block_class_name": "SandwichBlock",
        "block_size": spec.block_size,
        "effective_expected_depth": depth,
        "head_dim": spec.n_embd / spec.n_heads,
        "init_orthogonal": false,
        "init_strategy": "takase",
        "init_values": {"embed_scale": embed_scale, "embedding": std, "out_proj": out_std, "std": std},
        "injection_type": "linear",
        "intermediate_size": spec.intermediate,
        "mean_backprop_depth": 2,
        "mean_recurrence": MEAN_RECURRENCE,
        "mlp_class_name": "GatedMLP",
        "n_embd": spec.n_embd,
        "n_heads": spec.n_heads,
        "n_layers": spec.prelude + spec.core + spec.coda,
        "n_layers_in_coda": spec.coda,
        "n_layers_in_prelude": spec.prelude,
        "n_layers_in_recurrent_block": spec.core,
        "nonlin_name": "SiLU",
        "norm_class_name": "RMSNorm_llama",
        "norm_eps": spec.norm_eps,
        "num_key_value_heads": spec.n_heads,
        "padded_vocab_size": spec.vocab,
        "padding_multiple": 1,
        "qk_bias": true,
        "rope_base": spec.rope_base,
        "sampling_scheme": "poisson-lognormal-filling",
        "state_init": "like-init",
        "test_time_noise": 0,
        "test_time_noise_type": "fixed",
        "tie_embeddings": !layout.untied_head,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.47.1",
        "vocab_size": spec.vocab,
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let oracle_config = OracleConfig::from_json(&config.to_string());
    let mut rng = Gaussian(ChaCha8Rng::seed_from_u64(spec.seed));
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (name, shape) in parameter_shapes(&oracle_config) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.contains("norm") {
            // Norm weights near 1 with some noise, so a missing or misplaced norm shows.
            (0..n).map(|_| (1.0 + 0.1 * rng.next()) as f32).collect()
        } else if name.ends_with("qk_bias") {
            (0..n).map(|_| (0.2 * rng.next()) as f32).collect()
        } else if name.ends_with("proj.weight") {
            (0..n)
                .map(|_| (spec.gain * out_std * rng.next()) as f32)
                .collect()
        } else {
            (0..n)
                .map(|_| (spec.gain * std * rng.next()) as f32)
                .collect()
        };
        tensors.push((name, shape, values));
    }
    if layout.duplicate_lm_head && !layout.untied_head {
        let wte = tensors
            .iter()
            .find(|t| t.0 == "transformer.wte.weight")
            .unwrap()
            .clone();
        tensors.push(("lm_head.weight".into(), wte.1, wte.2));
    }
    // The rotary table the reference registers as a buffer: [1, T, 1, hd/2, (cos, sin)].
    let hd = spec.n_embd / spec.n_heads;
    let mut freqs = Vec::new();
    for pos in 0..spec.block_size {
        for j in 0..hd / 2 {
            let angle = pos as f64 * spec.rope_base.powf(-((2 * j) as f64) / hd as f64);
            freqs.push(angle.cos() as f32);
            freqs.push(angle.sin() as f32);
        }
    }
    tensors.push((
        "freqs_cis".into(),
        vec![1, spec.block_size, 1, hd / 2, 2],
        freqs,
    ));

    // Shards: tensors in name order, split into contiguous groups; the duplicated head goes last.
    tensors.sort_by(|a, b| (a.0 == "lm_head.weight", &a.0).cmp(&(b.0 == "lm_head.weight", &b.0)));
    let shards = layout.shards.max(1);
    let count = tensors.len();
    let mut groups: Vec<Vec<&NamedTensor>> = vec![Vec::new(); shards];
    for (i, t) in tensors.iter().enumerate() {
        groups[(i * shards / count).min(shards - 1)].push(t);
    }
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0usize;
    for (g, group) in groups.iter().enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", g + 1, shards)
        };
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = group
            .iter()
            .map(|(name, shape, values)| {
                (name.clone(), shape.clone(), encode(values, layout.dtype))
            })
            .collect();
        let st_dtype = match layout.dtype {
            DType::F32 => safetensors::Dtype::F32,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::F16 => safetensors::Dtype::F16,
        };
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
            .iter()
            .map(|(name, shape, bytes)| {
                total_size += bytes.len();
                weight_map.insert(name.clone(), file.clone());
                (
                    name.clone(),
                    safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::serialize(views, Some(metadata)).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    if shards > 1 {
        let index = json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::to_string_pretty(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Name, shape, values.
type NamedTensor = (String, Vec<usize>, Vec<f32>);

fn encode(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
    }
}

/// Random initial states [positions, n_embd] of the paper's spread: Normal(0, std) clipped at
/// 3 sigma, times embed_scale, rounded to f32 (the engine takes f32 states).
pub fn random_states(spec: &Spec, positions: usize, seed: u64) -> Vec<f32> {
    let scale = spec.init_std() * spec.embed_scale.unwrap_or((spec.n_embd as f64).sqrt());
    let mut rng = Gaussian(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    (0..positions * spec.n_embd)
        .map(|_| (rng.next() * scale) as f32)
        .collect()
}

/// Random token ids below `vocab`.
pub fn random_tokens(vocab: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x70c3);
    (0..len)
        .map(|_| (rng.random::<f64>() * vocab as f64) as u32 % vocab as u32)
        .collect()
}
