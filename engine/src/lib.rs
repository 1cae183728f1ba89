//! loopscope's engine: a recurrent-depth language model (the Huginn-0125 architecture of
//! "Scaling up Test-Time Compute with Latent Reasoning", Geiping et al. 2025) written once with
//! burn, and a generation session that records how every token thinks.
//!
//! Data flows one way: token ids -> [`Session`] -> [`Trace`], plain serde data for the page.

pub mod cache;
pub mod config;
pub mod dynamics;
pub mod error;
pub mod eval;
pub mod exit;
pub mod folder;
pub mod golden;
pub mod kernels;
pub mod model;
pub mod pca;
pub mod quant;
#[cfg(not(target_arch = "wasm32"))]
pub mod quantize;
pub mod readback;
pub mod sampling;
pub mod session;
pub mod settings;
pub mod state;
pub mod tokenizer;
pub mod trace;
pub mod weights;

pub use config::ModelConfig;
pub use error::{EngineError, Result};
pub use exit::ExitCriterion;
pub use model::RecurrentModel;
pub use sampling::Sampling;
pub use session::{Finish, Session, Step};
pub use settings::ThinkingSettings;
pub use tokenizer::Tokenizer;
pub use trace::{Record, Trace};

/// Runs a future to completion on the calling thread (native callers of the async session).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    burn::tensor::try_read_sync(future)
        .expect("a native backend's futures complete without an executor")
}
