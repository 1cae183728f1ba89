//! The token embedding `wte` [vocab, embd], which is also the output head when the two are tied.
//!
//! Floats (trained, loaded from a float checkpoint, or dequantized where the backend has no
//! kernels) stay one tensor serving both. A quantized embedding on a backend with kernels stays
//! codes twice over: on the host, where the few rows a call needs are dequantized (the ids come
//! from the host anyway), and packed on the device, where the tied head multiplies by it. For
//! Huginn-0125 (65536 x 5280) that is 2 x 190 MB in q4 instead of 1.4 GB of f32.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::error::Result;
use crate::kernels::{Kernels, Packed, MAX_BINDING_BYTES};
use crate::quant::Quantized;
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// [vocab, embd]; `None` when the rows are quantized codes.
    pub weight: Option<Param<Tensor<B, 2>>>,
    /// The codes as the tied head reads them (vocab outputs of embd inputs).
    pub packed: Packed<B>,
    /// The same codes on the host, for looking up rows.
    #[module(skip)]
    pub rows: Option<Arc<Quantized>>,
}

impl<B: Backend> Embedding<B> {
    pub fn dense(weight: Tensor<B, 2>) -> Self {
        Self {
            weight: Some(Param::from_tensor(weight)),
            packed: Packed(None),
            rows: None,
        }
    }
}

impl<B: Kernels> Embedding<B> {
    pub fn load(
        ckpt: &Checkpoint,
        name: &str,
        vocab: usize,
        embd: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let Some(quantized) = ckpt.quantized_matrix(name, [vocab, embd])? else {
            let t = ckpt.tensor(name, &[vocab, embd])?;
            return Ok(Self::dense(rows_tensor(t.values, [vocab, embd], device)));
        };
        if !B::packs(&quantized) {
            let values = quantized.dequantize();
            return Ok(Self::dense(rows_tensor(values, [vocab, embd], device)));
        }
        Ok(Self {
            weight: None,
            packed: Packed(Some(B::upload(&quantized, device, MAX_BINDING_BYTES))),
            rows: Some(Arc::new(quantized)),
        })
    }

    /// wte[ids] for `ids` (row-major [batch, seq]): [batch, seq, embd].
    pub fn lookup(
        &self,
        ids: &[u32],
        [batch, seq]: [usize; 2],
        device: &B::Device,
    ) -> Tensor<B, 3> {
        match (&self.weight, &self.rows) {
            (Some(weight), _) => {
                let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
                let ids = Tensor::from_data(TensorData::new(ids, [batch * seq]), device);
                let weight = weight.val();
                let embd = weight.dims()[1];
                weight.select(0, ids).reshape([batch, seq, embd])
            }
            (None, Some(rows)) => Tensor::from_data(
                TensorData::new(rows.dequantize_rows(ids), [batch, seq, rows.cols]),
                device,
            ),
            (None, None) => unreachable!("an embedding holds its rows one way or the other"),
        }
    }

    /// x [rows, embd] times wteᵀ: the tied head's logits [rows, vocab].
    pub fn head(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match (&self.weight, &self.packed.0) {
            (Some(weight), _) => x.matmul(weight.val().transpose()),
            (None, Some(packed)) => B::qlinear(x, packed),
            (None, None) => unreachable!("an embedding holds its rows one way or the other"),
        }
    }
}

fn rows_tensor<B: Backend>(
    values: Vec<f32>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
