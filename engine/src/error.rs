//! Every way the engine can refuse its input, with enough context to act on.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config.json: {0}")]
    Config(String),
    #[error("weights file {file}: {message}")]
    Weights { file: String, message: String },
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
    #[error("tensor `{name}` is missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("prompt has {tokens} tokens but the model's context holds {context}")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("token id {id} at position {position} is outside the vocabulary of {vocab} tokens")]
    UnknownToken {
        id: u32,
        position: usize,
        vocab: usize,
    },
    #[error("the context of {context} tokens is full")]
    ContextFull { context: usize },
    #[error("invalid setting: {0}")]
    Setting(String),
    #[error("reading a tensor back from the device failed: {0}")]
    Readback(String),
    #[error("golden file: {0}")]
    Golden(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
