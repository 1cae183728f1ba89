//! Conformance with the paper authors' reference code: reproduce every array of a golden folder
//! (`config.json`, `model.safetensors`, `golden.safetensors`, `manifest.json`).

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::cache::NoMemory;
use crate::error::{EngineError, Result};
use crate::exit::{entropy, ExitCriterion};
use crate::kernels::Kernels;
use crate::model::RecurrentModel;
use crate::readback::read;
use crate::session::Session;
use crate::settings::ThinkingSettings;
use crate::trace::Record;

/// Largest absolute error accepted on any array, in f32 compute (latents reach ~8, logits ~3).
pub const TOLERANCE: f32 = 1e-4;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub num_steps: usize,
    pub seq_len: usize,
    pub prefill_len: usize,
}

/// The inputs and expected outputs of one golden folder.
pub struct GoldenCase {
    pub manifest: Manifest,
    pub input_ids: Vec<u32>,
    /// s_0 for every position, [seq, embd].
    pub init_state: Vec<f32>,
    /// Every array of golden.safetensors other than the inputs, flattened.
    pub expected: BTreeMap<String, Vec<f32>>,
}

/// One line of the comparison.
#[derive(Debug, Clone)]
pub struct ArrayCheck {
    pub name: String,
    pub max_abs_error: f32,
    pub tolerance: f32,
}

impl ArrayCheck {
    pub fn passed(&self) -> bool {
        self.max_abs_error <= self.tolerance
    }
}

impl GoldenCase {
    pub fn from_bytes(golden: &[u8], manifest: &[u8]) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(manifest)
            .map_err(|e| EngineError::Golden(format!("manifest.json: {e}")))?;
        let file =
            SafeTensors::deserialize(golden).map_err(|e| EngineError::Golden(e.to_string()))?;
        let mut input_ids = Vec::new();
        let mut init_state = Vec::new();
        let mut expected = BTreeMap::new();
        for (name, view) in file.tensors() {
            match (name.as_str(), view.dtype()) {
                ("input_ids", Dtype::I64) => {
                    input_ids = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as u32)
                        .collect()
                }
                (_, dtype) => {
                    let values = crate::weights::to_f32(dtype, view.data())
                        .map_err(|m| EngineError::Golden(format!("{name}: {m}")))?;
                    if name == "init_state" {
                        init_state = values;
                    } else {
                        expected.insert(name, values);
                    }
                }
            }
        }
        if input_ids.len() != manifest.seq_len || input_ids.is_empty() {
            return Err(EngineError::Golden(format!(
                "input_ids holds {} tokens, the manifest says {}",
                input_ids.len(),
                manifest.seq_len
            )));
        }
        Ok(Self {
            manifest,
            input_ids,
            init_state,
            expected,
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| EngineError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_bytes(&read("golden.safetensors")?, &read("manifest.json")?)
    }

    /// Computes every expected array with the engine and compares.
    pub async fn check<B: Kernels>(&self, model: &RecurrentModel<B>) -> Result<Vec<ArrayCheck>> {
        let computed = self.reproduce(model).await?;
        let mut checks = Vec::new();
        for (name, expected) in &self.expected {
            let got = computed.get(name).ok_or_else(|| {
                EngineError::Golden(format!("array `{name}` is not one the engine knows"))
            })?;
            if got.len() != expected.len() {
                return Err(EngineError::Golden(format!(
                    "array `{name}` has {} values, the engine computed {}",
                    expected.len(),
                    got.len()
                )));
            }
            let max_abs_error = got
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            checks.push(ArrayCheck {
                name: name.clone(),
                max_abs_error,
                tolerance: TOLERANCE,
            });
        }
        Ok(checks)
    }

    /// The engine's version of every array the reference writes.
    pub async fn reproduce<B: Kernels>(
        &self,
        model: &RecurrentModel<B>,
    ) -> Result<BTreeMap<String, Vec<f32>>> {
        let config = &model.config;
        let (s, e, r) = (
            self.manifest.seq_len,
            config.n_embd,
            self.manifest.num_steps,
        );
        if self.init_state.len() != s * e {
            return Err(EngineError::Golden(format!(
                "init_state holds {} values, [{s}, {e}] expected",
                self.init_state.len()
            )));
        }
        let device = model.device();
        let mut out = BTreeMap::new();

        // A plain forward pass over the whole sequence, keeping every iteration.
        let embedded = model.prelude_forward(&self.input_ids, [1, s], 0, &mut NoMemory);
        out.insert("prelude_out".into(), read(embedded.clone()).await?);
        let mut state =
            Tensor::<B, 3>::from_data(TensorData::new(self.init_state.clone(), [1, s, e]), &device);
        let (mut latents, mut normed, mut lens) = (Vec::new(), Vec::new(), Vec::new());
        latents.extend(self.init_state.iter().copied());
        normed.extend(read(model.ln_f.forward(state.clone())).await?);
        for iteration in 0..r {
            state = model.core_forward(state, embedded.clone(), iteration, 0, &mut NoMemory);
            latents.extend(read(state.clone()).await?);
            normed.extend(read(model.ln_f.forward(state.clone())).await?);
            lens.extend(read(model.coda_forward(state.clone(), 0, &mut NoMemory)).await?);
        }
        let vocab = config.padded_vocab_size;
        let per_iteration = s * vocab;
        out.insert("logits".into(), lens[lens.len() - per_iteration..].to_vec());
        let last_rows = lens.chunks(per_iteration).map(|it| &it[(s - 1) * vocab..]);
        out.insert(
            "exit_entropy".into(),
            last_rows.map(|row| entropy(row) as f32).collect(),
        );
        out.insert("latents".into(), latents);
        out.insert("latents_normed".into(), normed);
        out.insert("lens_logits".into(), lens);

        // Cached decoding: prefill, then one token at a time, through the generation session.
        let settings = ThinkingSettings {
            steps: r,
            ..ThinkingSettings::default()
        };
        let mut session = Session::new(model, settings, Record::default())?
            .with_initial_states(self.init_state.clone());
        let p = self.manifest.prefill_len;
        let mut decode = session.feed(&self.input_ids[..p]).await?.logits;
        for &token in &self.input_ids[p..] {
            decode.extend(session.feed(&[token]).await?.logits);
        }
        out.insert("decode_logits".into(), decode);

        // Exit-criterion values of the last position, as the session records them.
        for (name, exit) in [
            ("exit_kl", ExitCriterion::Kl { threshold: 0.0 }),
            (
                "exit_latent_diff",
                ExitCriterion::LatentDiff { threshold: 0.0 },
            ),
            ("exit_cosine", ExitCriterion::Cosine { threshold: 0.0 }),
        ] {
            let trace = self.exit_trace(model, exit).await?;
            let last = trace
                .positions
                .last()
                .expect("the session traced the sequence");
            out.insert(
                name.into(),
                last.steps
                    .iter()
                    .map(|step| step.exit_value.unwrap_or(f32::NAN))
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Runs the whole sequence as one prompt for `steps` iterations under `exit`, never exiting
    /// early, recording the criterion's value after each iteration.
    pub async fn exit_trace<B: Kernels>(
        &self,
        model: &RecurrentModel<B>,
        exit: ExitCriterion,
    ) -> Result<crate::trace::Trace> {
        let r = self.manifest.num_steps;
        let settings = ThinkingSettings {
            steps: r,
            min_steps: r + 1,
            exit,
            ..ThinkingSettings::default()
        };
        let record = Record {
            exit_values: true,
            ..Record::default()
        };
        let mut session =
            Session::new(model, settings, record)?.with_initial_states(self.init_state.clone());
        session.feed(&self.input_ids).await?;
        Ok(session.into_trace())
    }
}
