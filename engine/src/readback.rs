//! Reading device values back to the host. Every readback waits for the GPU to finish all the
//! work queued before it, so the session reads per iteration only what decides whether to go on
//! (the exit criterion) and gathers what the trace records into one transfer per token.

use std::cell::Cell;

use burn::tensor::Tensor;

use crate::error::{EngineError, Result};
use crate::kernels::Kernels;

thread_local! {
    static READS: Cell<usize> = const { Cell::new(0) };
}

/// Readbacks started on this thread so far: how tests see that a token costs one.
pub fn reads_on_this_thread() -> usize {
    READS.with(Cell::get)
}

/// Reads a tensor back to the host; asynchronous because WebGPU cannot block.
pub async fn read<B: Kernels, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>> {
    READS.with(|reads| reads.set(reads.get() + 1));
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| EngineError::Readback(format!("{e:?}")))?;
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| EngineError::Readback(format!("{e:?}")))
}

/// Queued values beyond this many bytes are read early, so that a long prompt's lens logits
/// (positions x vocabulary per iteration) never pile up on the device.
const FLUSH_BYTES: usize = 64 << 20;

/// Device tensors queued to come back together: one transfer when `finish` is awaited (more only
/// past `FLUSH_BYTES`).
pub struct Batch<B: Kernels> {
    queued: Vec<Tensor<B, 1>>,
    queued_len: usize,
    host: Vec<f32>,
    /// Length of every part, in queueing order.
    sizes: Vec<usize>,
}

impl<B: Kernels> Default for Batch<B> {
    fn default() -> Self {
        Self {
            queued: Vec::new(),
            queued_len: 0,
            host: Vec::new(),
            sizes: Vec::new(),
        }
    }
}

impl<B: Kernels> Batch<B> {
    /// Queues `tensor` and returns its part number for [`Parts::get`].
    pub async fn queue<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Result<usize> {
        let len = tensor.shape().num_elements();
        self.queued.push(tensor.reshape([len]));
        self.sizes.push(len);
        self.queued_len += len;
        if self.queued_len * size_of::<f32>() >= FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(self.sizes.len() - 1)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let all = Tensor::cat(std::mem::take(&mut self.queued), 0);
        self.host.extend(read(all).await?);
        self.queued_len = 0;
        Ok(())
    }

    /// Reads what is still queued; every part is then on the host.
    pub async fn finish(mut self) -> Result<Parts> {
        self.flush().await?;
        let mut offsets = Vec::with_capacity(self.sizes.len() + 1);
        offsets.push(0);
        for size in &self.sizes {
            offsets.push(offsets.last().copied().unwrap_or(0) + size);
        }
        Ok(Parts {
            values: self.host,
            offsets,
        })
    }
}

/// The parts of a finished batch, on the host.
pub struct Parts {
    values: Vec<f32>,
    offsets: Vec<usize>,
}

impl Parts {
    pub fn get(&self, part: usize) -> &[f32] {
        &self.values[self.offsets[part]..self.offsets[part + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    #[test]
    fn parts_come_back_in_order_across_flushes() {
        let device = Default::default();
        let mut batch = Batch::<NdArray>::default();
        // Two parts big enough to flush on their own, small ones around them.
        let big = FLUSH_BYTES / size_of::<f32>();
        let tensors: Vec<Vec<f32>> = vec![
            vec![1.0, 2.0, 3.0],
            (0..big).map(|i| i as f32).collect(),
            vec![4.0],
            (0..big + 1).map(|i| -(i as f32)).collect(),
            vec![5.0, 6.0],
        ];
        let parts: Vec<usize> = tensors
            .iter()
            .map(|v| {
                let t = Tensor::<NdArray, 2>::from_data(
                    TensorData::new(v.clone(), [1, v.len()]),
                    &device,
                );
                crate::block_on(batch.queue(t)).unwrap()
            })
            .collect();
        let read = crate::block_on(batch.finish()).unwrap();
        for (part, want) in parts.iter().zip(&tensors) {
            assert_eq!(read.get(*part), want.as_slice());
        }
    }
}
