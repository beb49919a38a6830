//! Loads a model in Hugging Face layout from bytes (the browser hands bytes, not paths):
//! `config.json`, `model.safetensors` (F32, F16 or BF16; computed in f32, a large model's 2-byte weights kept
//! as stored: `model::KEEP_HALF_FROM_PARAMS`) and `tokenizer.json`,
//! checked against each other before anything is built (`model::parse_config`,
//! `model::load_weights`, `text::TextTokenizer`).

use burn::tensor::Device;

use crate::error::Result;
use crate::model::{Model, WeightBytes, load_weights, parse_config};
use crate::text::TextTokenizer;

/// A frozen model with the tokenizer that belongs to it.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: TextTokenizer,
}

/// The three files of a model directory, as bytes (the weights read by range: in the page they
/// stay outside the engine's memory).
pub struct ModelFiles<'a> {
    pub config_json: &'a [u8],
    pub safetensors: &'a dyn WeightBytes,
    pub tokenizer_json: &'a [u8],
}

/// A model folder's files, in Hugging Face layout (the page fetches the same names).
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

impl LoadedModel {
    pub fn from_bytes(files: ModelFiles<'_>, device: &Device) -> Result<Self> {
        let config = parse_config(files.config_json)?;
        let model = load_weights(&config, files.safetensors, device)?.widened_if_small();
        let tokenizer = TextTokenizer::from_bytes(files.tokenizer_json, &config)?;
        Ok(Self { model, tokenizer })
    }

    /// Reads `config.json`, `model.safetensors` and `tokenizer.json` from a directory (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let read = |name: &str| crate::error::read_file(&dir.join(name));
        let [config, weights, tokenizer] = MODEL_FILES;
        let (config_json, safetensors, tokenizer_json) =
            (read(config)?, read(weights)?, read(tokenizer)?);
        Self::from_bytes(
            ModelFiles {
                config_json: &config_json,
                safetensors: &safetensors,
                tokenizer_json: &tokenizer_json,
            },
            device,
        )
    }
}
