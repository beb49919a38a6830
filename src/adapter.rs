//! PEFT prompt-tuning adapter files: `adapter_config.json` and `adapter_model.safetensors`
//! (one tensor, `prompt_embeddings`, `[num_virtual_tokens, token_dim]`, f32; read in f16 and
//! bf16 too, and written in f16 for a link).

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::backend::read_f32;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::soft_prompt::{PromptInit, SoftPrompt};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const TENSOR_KEY: &str = "prompt_embeddings";

/// The fields of PEFT's `PromptTuningConfig` that a prompt-tuning adapter carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    pub task_type: String,
    pub num_virtual_tokens: usize,
    pub token_dim: usize,
    pub num_transformer_submodules: usize,
    // Informational (PEFT writes them); u64, so a value read natively also reads in 32-bit wasm.
    #[serde(default)]
    pub num_attention_heads: Option<u64>,
    #[serde(default)]
    pub num_layers: Option<u64>,
    #[serde(default)]
    pub prompt_tuning_init: Option<String>,
    #[serde(default)]
    pub prompt_tuning_init_text: Option<String>,
    #[serde(default)]
    pub tokenizer_name_or_path: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub inference_mode: bool,
}

impl AdapterConfig {
    pub fn new(
        model: &Model,
        n_virtual: usize,
        init: &PromptInit,
        base_model: Option<String>,
    ) -> Self {
        Self {
            peft_type: "PROMPT_TUNING".into(),
            task_type: "CAUSAL_LM".into(),
            num_virtual_tokens: n_virtual,
            token_dim: model.config.d_model,
            num_transformer_submodules: 1,
            num_attention_heads: Some(model.config.n_head as u64),
            num_layers: Some(model.config.n_layer as u64),
            prompt_tuning_init: Some(init.peft_name().into()),
            prompt_tuning_init_text: init.text(),
            tokenizer_name_or_path: base_model.clone(),
            base_model_name_or_path: base_model,
            inference_mode: true,
        }
    }
}

/// The two adapter files as bytes.
#[derive(Debug, Clone)]
pub struct AdapterFiles {
    pub config_json: Vec<u8>,
    pub safetensors: Vec<u8>,
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::AdapterInvalid {
        detail: detail.into(),
    }
}

/// How an adapter's values are stored: f32 (PEFT's own files) or f16 (half the bytes: a prompt
/// in a link; within 1e-3 relative of the f32 values, f16's 11-bit significand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
}

/// Serialises a prompt (read from the device asynchronously) with its config.
pub async fn save(
    prompt: &SoftPrompt,
    config: &AdapterConfig,
    precision: Precision,
) -> Result<AdapterFiles> {
    let values = prompt.values();
    let shape = values.dims();
    save_values(&read_f32(values).await?, shape, config, precision)
}

/// Serialises prompt values `[n_virtual, d_model]` already on the host (a lost GPU leaves only
/// those) with their config.
pub fn save_values(
    floats: &[f32],
    shape: [usize; 2],
    config: &AdapterConfig,
    precision: Precision,
) -> Result<AdapterFiles> {
    let (dtype, bytes): (Dtype, Vec<u8>) = match precision {
        Precision::F32 => (
            Dtype::F32,
            floats.iter().flat_map(|f| f.to_le_bytes()).collect(),
        ),
        Precision::F16 => (
            Dtype::F16,
            floats
                .iter()
                .flat_map(|f| half::f16::from_f32(*f).to_le_bytes())
                .collect(),
        ),
    };
    let view = safetensors::tensor::TensorView::new(dtype, shape.to_vec(), &bytes)
        .map_err(|e| invalid(e.to_string()))?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let safetensors = safetensors::serialize([(TENSOR_KEY, view)], metadata)
        .map_err(|e| invalid(e.to_string()))?;
    let config_json = serde_json::to_vec_pretty(config).map_err(|e| invalid(e.to_string()))?;
    Ok(AdapterFiles {
        config_json,
        safetensors,
    })
}

/// An adapter for another model is refused by name: the same width is not enough (SmolLM2-135M
/// and SmolLM2-135M-Instruct share theirs, yet a prompt learned on one means nothing to the
/// other). Names are compared only when both are names (a Hub id, the bundled model's), not
/// folder addresses or file paths, which change with where the same model is served from.
pub fn check_base(config: &AdapterConfig, model_name: &str) -> Result<()> {
    let is_name = |n: &str| !n.is_empty() && !n.contains("://") && !n.starts_with('/');
    match config.base_model_name_or_path.as_deref() {
        Some(base) if is_name(base) && is_name(model_name) && base != model_name => {
            Err(Error::AdapterForAnotherModel {
                adapter: base.into(),
                model: model_name.into(),
            })
        }
        _ => Ok(()),
    }
}

/// Reads an adapter and checks it against the model it will run on.
pub fn load(files: &AdapterFiles, model: &Model) -> Result<(SoftPrompt, AdapterConfig)> {
    let config: AdapterConfig = serde_json::from_slice(&files.config_json)
        .map_err(|e| invalid(format!("{CONFIG_FILE} is not a PEFT adapter config ({e})")))?;
    if config.peft_type != "PROMPT_TUNING" {
        return Err(invalid(format!(
            "peft_type is {:?}; only PROMPT_TUNING adapters are soft prompts",
            config.peft_type
        )));
    }
    if config.task_type != "CAUSAL_LM" {
        return Err(invalid(format!(
            "task_type is {:?}; expected CAUSAL_LM",
            config.task_type
        )));
    }
    if config.num_transformer_submodules != 1 {
        return Err(invalid(format!(
            "num_transformer_submodules is {}; a decoder-only model has 1",
            config.num_transformer_submodules
        )));
    }
    if config.token_dim != model.config.d_model {
        return Err(Error::AdapterMismatch {
            adapter: config.token_dim,
            model: model.config.d_model,
        });
    }
    let st = SafeTensors::deserialize(&files.safetensors)
        .map_err(|e| invalid(format!("{WEIGHTS_FILE} is corrupt or truncated ({e})")))?;
    let view = st.tensor(TENSOR_KEY).map_err(|_| {
        invalid(format!(
            "{WEIGHTS_FILE} has no `{TENSOR_KEY}` tensor (found {:?})",
            st.names()
        ))
    })?;
    let expected = [config.num_virtual_tokens, config.token_dim];
    if view.shape() != expected {
        return Err(invalid(format!(
            "`{TENSOR_KEY}` has shape {:?}, but {CONFIG_FILE} says {expected:?}",
            view.shape()
        )));
    }
    let values = crate::model::to_f32(TENSOR_KEY, &view).map_err(|_| {
        invalid(format!(
            "`{TENSOR_KEY}` is {:?}; expected F32, F16 or BF16",
            view.dtype()
        ))
    })?;
    let bad = crate::model::non_finite(&values);
    if bad > 0 {
        return Err(invalid(format!(
            "`{TENSOR_KEY}` holds {bad} non-finite values (NaN or infinity) among {}: the prompt was saved from a diverged run; train it again with a lower learning rate",
            values.len()
        )));
    }
    let tensor = Tensor::from_data(TensorData::new(values, expected), &model.device());
    Ok((SoftPrompt::from_tensor(tensor), config))
}
