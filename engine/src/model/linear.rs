//! A bias-free linear layer. A float checkpoint's matrix is kept dense as [in, out], so the
//! forward pass is one matmul; a quantized one stays as codes where the backend has kernels for
//! them (see `kernels`), and is dequantized once elsewhere.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

use crate::error::Result;
use crate::kernels::{transposed, Kernels, Packed, QWeight, MAX_BINDING_BYTES};
use crate::weights::Checkpoint;

#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// [d_in, d_out]: the transpose of the checkpoint's [out, in] layout. `None` when `packed`
    /// holds the matrix.
    pub weight: Option<Param<Tensor<B, 2>>>,
    pub packed: Packed<B>,
}

impl<B: Backend> Linear<B> {
    /// A dense layer of `weight` [d_in, d_out] (fresh or trained weights).
    pub fn dense(weight: Tensor<B, 2>) -> Self {
        Self {
            weight: Some(Param::from_tensor(weight)),
            packed: Packed(None),
        }
    }
}

impl<B: Kernels> Linear<B> {
    /// Loads `name` stored as [d_out, d_in] (PyTorch's layout), in floats or quantized.
    pub fn load(
        ckpt: &Checkpoint,
        name: &str,
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> Result<Self> {
        if let Some(quantized) = ckpt.quantized_matrix(name, [d_out, d_in])? {
            return Ok(match B::upload(&quantized, device, MAX_BINDING_BYTES) {
                QWeight::Dense(weight) => Self::dense(weight),
                packed => Self {
                    weight: None,
                    packed: Packed(Some(packed)),
                },
            });
        }
        let t = ckpt.tensor(name, &[d_out, d_in])?;
        Ok(Self::dense(transposed(&t.values, d_out, d_in, device)))
    }

    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = x.shape().num_elements() / d_in;
        let x = x.reshape([rows, d_in]);
        let y = match (&self.weight, &self.packed.0) {
            (Some(weight), _) => x.matmul(weight.val()),
            (None, Some(packed)) => B::qlinear(x, packed),
            (None, None) => unreachable!("a linear layer holds its matrix one way or the other"),
        };
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }
}
