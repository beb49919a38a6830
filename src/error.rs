//! Every failure a user can cause, each with a message that says what was expected, what was
//! found, and what to do. The page and the command line show these messages as they are.

use thiserror::Error;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    #[error(
        "config.json is not valid JSON or lacks a field: {detail}. Use the config.json that came with the model."
    )]
    ConfigInvalid { detail: String },

    #[error(
        "config.json: {field} = {found} is not supported ({expected}). Soft Prompt Lab runs GPT-2 and Llama-family (Llama, SmolLM2, Qwen2) models."
    )]
    ConfigUnsupported {
        field: &'static str,
        found: String,
        expected: &'static str,
    },

    #[error(
        "config.json: `{field}` = {id} lies outside the model's vocabulary ({vocab} tokens), and tokenizer.json has no end-of-text token to use instead. Set `{field}` to the id of the model's end-of-text token in tokenizer.json, or remove it."
    )]
    TokenIdOutOfRange {
        field: &'static str,
        id: u64,
        vocab: usize,
    },

    #[error("the model is too large for this page: {detail}")]
    ModelTooLarge { detail: String },

    #[error("model.safetensors is corrupt or truncated ({detail}). Download the file again.")]
    WeightsCorrupt { detail: String },

    #[error(
        "model.safetensors lacks tensor `{key}` ({expected}). The file is not a checkpoint of the model config.json describes."
    )]
    WeightMissing { key: String, expected: String },

    #[error(
        "model.safetensors has unexpected tensors: {keys}. config.json ({config}) does not describe this file; use the config.json that belongs to these weights."
    )]
    WeightUnexpected { keys: String, config: String },

    #[error(
        "model.safetensors: `{key}` has shape {found:?}, expected {expected:?} from config.json ({why}). config.json and the weights do not belong together."
    )]
    WeightShape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        why: String,
    },

    #[error(
        "model.safetensors: `{key}` holds {count} non-finite values (NaN or infinity) among {total}. The file is damaged or was saved from a diverged run; use a good copy of the model."
    )]
    WeightNotFinite {
        key: String,
        count: usize,
        total: usize,
    },

    #[error(
        "model.safetensors: `{key}` is stored as {found}; only F32, F16 and BF16 weights can be loaded. Convert the checkpoint to one of these."
    )]
    WeightDtype { key: String, found: String },

    #[error(
        "tokenizer.json could not be read: {detail}. Use the tokenizer.json that came with the model."
    )]
    TokenizerInvalid { detail: String },

    #[error(
        "tokenizer.json has {tokenizer_vocab} tokens but the model's vocabulary has {model_vocab} rows: token ids would fall outside the embedding. The tokenizer does not belong to this model."
    )]
    TokenizerMismatch {
        tokenizer_vocab: usize,
        model_vocab: usize,
    },

    #[error("could not tokenize {what}: {detail}")]
    Tokenize { what: String, detail: String },

    #[error(
        "{what} is {found} tokens long (soft prompt included) but the model reads at most {max} (n_positions). Use shorter examples or fewer virtual tokens."
    )]
    SequenceTooLong {
        what: String,
        found: usize,
        max: usize,
    },

    #[error(
        "a text of {bytes} bytes is longer than this model can read ({max} tokens at most, n_positions). Use shorter examples."
    )]
    TextTooLong { bytes: usize, max: usize },

    #[error("adapter: {detail}")]
    AdapterInvalid { detail: String },

    #[error(
        "adapter was trained for token_dim {adapter}, but this model's embeddings have {model} dimensions. Load it with the base model it was trained on."
    )]
    AdapterMismatch { adapter: usize, model: usize },

    #[error(
        "this adapter was trained on {adapter}, but the loaded model is {model}: a prompt only works on the model it was trained on. Load {adapter} first, then import the adapter."
    )]
    AdapterForAnotherModel { adapter: String, model: String },

    #[error("task file line {line}: {detail}")]
    TaskLine { line: usize, detail: String },

    #[error("task file: {detail}")]
    TaskInvalid { detail: String },

    #[error("invalid setting: {detail}")]
    Setting { detail: String },

    #[error(
        "the loss became {value} at step {step}: training diverged. Lower the learning rate (or enable gradient clipping) and reset the prompt."
    )]
    LossNotFinite { step: usize, value: f32 },

    #[error("cannot read {path}: {detail}")]
    FileRead { path: String, detail: String },

    #[error("cannot write {path}: {detail}")]
    FileWrite { path: String, detail: String },

    #[error("the compute device failed: {detail}")]
    Device { detail: String },

    #[error(
        "the GPU was lost ({reason}); the page restarts on the CPU backend, keeping your prompt"
    )]
    GpuLost { reason: String },

    #[error("{what} is not ready yet: {todo}")]
    NotReady {
        what: &'static str,
        todo: &'static str,
    },

    #[error("internal error (a bug in Soft Prompt Lab, please report it): {detail}")]
    Internal { detail: String },

    #[error(
        "the engine crashed on an internal error (a bug in Soft Prompt Lab, please report it: {detail}); it is restarted with your model, task, settings and prompt"
    )]
    Panic { detail: String },

    #[error(
        "the engine ran out of memory: it held {held_mb} MB and could not get {requested_mb} MB more (WebAssembly holds 4 GiB at most, and a browser may allow less); it is restarted with the model it had loaded, your task, settings and prompt. A smaller batch, one engine (workers=1 in the link) or a smaller model needs less"
    )]
    OutOfMemory { requested_mb: u64, held_mb: u64 },
}

/// What kind of failure an error is, for code that reacts to it (the worker, the page). The
/// message is for people; the kind is for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ErrorKind {
    Config,
    Weights,
    Tokenizer,
    Input,
    Adapter,
    Task,
    Setting,
    Diverged,
    File,
    Device,
    GpuLost,
    NotReady,
    Internal,
    /// The engine panicked: its instance cannot be called again.
    Panic,
    /// An allocation failed: the instance aborts (cannot be called again).
    OutOfMemory,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            ConfigInvalid { .. }
            | ConfigUnsupported { .. }
            | TokenIdOutOfRange { .. }
            | ModelTooLarge { .. } => ErrorKind::Config,
            WeightsCorrupt { .. }
            | WeightMissing { .. }
            | WeightUnexpected { .. }
            | WeightShape { .. }
            | WeightNotFinite { .. }
            | WeightDtype { .. } => ErrorKind::Weights,
            TokenizerInvalid { .. } | TokenizerMismatch { .. } => ErrorKind::Tokenizer,
            Tokenize { .. } | SequenceTooLong { .. } | TextTooLong { .. } => ErrorKind::Input,
            AdapterInvalid { .. } | AdapterMismatch { .. } | AdapterForAnotherModel { .. } => {
                ErrorKind::Adapter
            }
            TaskLine { .. } | TaskInvalid { .. } => ErrorKind::Task,
            Setting { .. } => ErrorKind::Setting,
            LossNotFinite { .. } => ErrorKind::Diverged,
            FileRead { .. } | FileWrite { .. } => ErrorKind::File,
            Device { .. } => ErrorKind::Device,
            GpuLost { .. } => ErrorKind::GpuLost,
            NotReady { .. } => ErrorKind::NotReady,
            Internal { .. } => ErrorKind::Internal,
            Panic { .. } => ErrorKind::Panic,
            OutOfMemory { .. } => ErrorKind::OutOfMemory,
        }
    }

    /// The engine cannot go on: the caller must start it again (on the CPU after a lost GPU).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::GpuLost | ErrorKind::Panic | ErrorKind::OutOfMemory
        )
    }

    /// The line of a task file the error is about, when it names one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::TaskLine { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            detail: detail.to_string(),
        }
    }

    pub fn setting(detail: impl Into<String>) -> Self {
        Error::Setting {
            detail: detail.into(),
        }
    }

    pub(crate) fn device(err: impl std::fmt::Debug) -> Self {
        Error::Device {
            detail: format!("{err:?}"),
        }
    }
}

/// Reads a whole file, naming it in the error (native only: the browser hands bytes).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::FileRead {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Writes a whole file, naming it in the error.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::FileWrite {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// An error as the page receives it: `{kind, message, line?, fatal}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorView {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub fatal: bool,
}

impl From<&Error> for ErrorView {
    fn from(e: &Error) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
            line: e.line(),
            fatal: e.is_fatal(),
        }
    }
}
