//! Loads a GPT-2-family model in Hugging Face layout from bytes (the browser hands bytes, not
//! paths): `config.json`, `model.safetensors` (F32, F16 or BF16; computed in f32) and
//! `tokenizer.json`. Every key, shape and dtype is checked before anything is built.

use std::collections::BTreeSet;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{
    Activation, Attention, Block, Conv1D, Gpt, GptConfig, LayerNorm, Mlp, SpecialIds,
};
use crate::text::TextTokenizer;

/// A frozen model with the tokenizer that belongs to it.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Gpt,
    pub tokenizer: TextTokenizer,
}

/// The three files of a model directory, as bytes.
pub struct ModelFiles<'a> {
    pub config_json: &'a [u8],
    pub safetensors: &'a [u8],
    pub tokenizer_json: &'a [u8],
}

impl LoadedModel {
    pub fn from_bytes(files: ModelFiles<'_>, device: &Device) -> Result<Self> {
        let config = parse_config(files.config_json)?;
        let model = load_weights(&config, files.safetensors, device)?;
        let tokenizer = TextTokenizer::from_bytes(files.tokenizer_json, &config)?;
        Ok(Self { model, tokenizer })
    }

    /// Reads `config.json`, `model.safetensors` and `tokenizer.json` from a directory (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let read = |name: &str| crate::error::read_file(&dir.join(name));
        let (config_json, safetensors, tokenizer_json) = (
            read("config.json")?,
            read("model.safetensors")?,
            read("tokenizer.json")?,
        );
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

fn config_error(detail: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        detail: detail.into(),
    }
}

/// What a `config.json` promises before the weights are fetched: size and a memory estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    pub params: u64,
    pub n_layer: usize,
    pub n_embd: usize,
    pub vocab_size: usize,
    pub estimated_bytes: u64,
}

/// Reads `config.json` and estimates the memory the model needs, without loading it
/// (`weights_file_bytes`: the size of `model.safetensors`, 0 when unknown).
pub fn inspect_config(bytes: &[u8], weights_file_bytes: u64) -> Result<ConfigSummary> {
    let c = parse_config(bytes)?;
    Ok(ConfigSummary {
        params: c.num_params(),
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        vocab_size: c.vocab_size,
        estimated_bytes: c.memory_estimate(weights_file_bytes),
    })
}

/// Upper bounds for the sizes in `config.json`, far above any GPT-2-family checkpoint (GPT-2 XL:
/// 48 layers, d 1600, vocabulary 50,257, 1,024 positions) yet small enough that no size computed
/// from them overflows, even in the browser's 32-bit `usize`. The weights file is checked against
/// the config before anything is allocated; these only keep that arithmetic sound.
fn field_limit(name: &str) -> u64 {
    match name {
        "n_layer" | "n_head" => 1 << 10,
        "n_embd" => 1 << 14,
        "n_inner" => 1 << 16,
        "n_positions" => 1 << 16,
        "vocab_size" => 1 << 20,
        _ => u64::from(u32::MAX),
    }
}

/// A size field of `config.json`: an integer from 1 to its limit.
fn usize_field(v: &Value, name: &'static str) -> Result<usize> {
    let max = field_limit(name);
    let x = v
        .get(name)
        .ok_or_else(|| config_error(format!("missing field `{name}`")))?;
    x.as_u64()
        .filter(|&n| n > 0 && n <= max)
        .map(|n| n as usize)
        .ok_or_else(|| {
            config_error(format!(
                "`{name}` must be an integer from 1 to {max}, found {x}"
            ))
        })
}

/// Refuses, by name, the GPT-2 variants this engine does not compute.
fn check_architecture(v: &Value) -> Result<()> {
    if let Some(t) = v.get("model_type").and_then(Value::as_str)
        && t != "gpt2"
    {
        return Err(Error::ConfigUnsupported {
            field: "model_type",
            found: t.into(),
            expected: "gpt2",
        });
    }
    // (field, the value refused, what is supported)
    let refused = [
        ("scale_attn_by_inverse_layer_idx", true, "false"),
        ("reorder_and_upcast_attn", true, "false"),
        ("scale_attn_weights", false, "true"),
        ("add_cross_attention", true, "false"),
        (
            "tie_word_embeddings",
            false,
            "true: GPT-2's output head is wte",
        ),
    ];
    for (field, found, expected) in refused {
        if v.get(field).and_then(Value::as_bool) == Some(found) {
            return Err(Error::ConfigUnsupported {
                field,
                found: found.to_string(),
                expected,
            });
        }
    }
    Ok(())
}

fn activation(v: &Value) -> Result<Activation> {
    let name = v.get("activation_function").and_then(Value::as_str);
    match name.unwrap_or("gelu_new") {
        "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
        "gelu" => Ok(Activation::Gelu),
        other => Err(Error::ConfigUnsupported {
            field: "activation_function",
            found: other.into(),
            expected: "gelu_new, gelu_pytorch_tanh or gelu",
        }),
    }
}

/// Parses and checks the GPT-2 fields of `config.json`.
pub fn parse_config(bytes: &[u8]) -> Result<GptConfig> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| config_error(e.to_string()))?;
    check_architecture(&v)?;
    let activation = activation(&v)?;
    let n_embd = usize_field(&v, "n_embd")?;
    let n_head = usize_field(&v, "n_head")?;
    if n_embd % n_head != 0 {
        return Err(config_error(format!(
            "n_embd ({n_embd}) is not divisible by n_head ({n_head})"
        )));
    }
    let n_inner = match v.get("n_inner") {
        None | Some(Value::Null) => 4 * n_embd,
        Some(_) => usize_field(&v, "n_inner")?,
    };
    let layer_norm_epsilon = v
        .get("layer_norm_epsilon")
        .map_or(Some(1e-5), Value::as_f64)
        .filter(|e| *e > 0.0)
        .ok_or_else(|| config_error("`layer_norm_epsilon` must be a positive number"))?;
    let special = SpecialIds {
        bos: token_ids(&v, "bos_token_id")?,
        eos: token_ids(&v, "eos_token_id")?,
        pad: token_ids(&v, "pad_token_id")?,
    };
    Ok(GptConfig {
        vocab_size: usize_field(&v, "vocab_size")?,
        n_positions: usize_field(&v, "n_positions")?,
        n_embd,
        n_layer: usize_field(&v, "n_layer")?,
        n_head,
        n_inner,
        layer_norm_epsilon,
        activation,
        special,
    })
}

/// A special-token field: absent or null (none), one id, or a list of ids. Whether they fit the
/// vocabulary is decided with the tokenizer (`text.rs`), which knows what to use instead.
fn token_ids(v: &Value, field: &str) -> Result<Vec<u64>> {
    let bad = |found: &Value| {
        config_error(format!(
            "`{field}` must be a token id (an integer from 0), a list of them, or null; found {found}. \
             Set it to the id of that token in tokenizer.json, or remove it"
        ))
    };
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| x.as_u64().ok_or_else(|| bad(x)))
            .collect(),
        Some(x) => x.as_u64().map(|id| vec![id]).ok_or_else(|| bad(x)),
    }
}

/// How many values are NaN or infinite.
pub(crate) fn non_finite(values: &[f32]) -> usize {
    values.iter().filter(|v| !v.is_finite()).count()
}

/// Decodes a checked tensor to f32, whatever its stored float type.
pub(crate) fn to_f32(key: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    let out: Vec<f32> = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::WeightDtype {
                key: key.into(),
                found: format!("{other:?}"),
            });
        }
    };
    Ok(out)
}

struct WeightReader<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
    seen: BTreeSet<String>,
    device: Device,
}

impl WeightReader<'_> {
    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        why: &str,
    ) -> Result<Param<Tensor<D>>> {
        let key = format!("{}{name}", self.prefix);
        let view = self.st.tensor(&key).map_err(|_| Error::WeightMissing {
            key: key.clone(),
            expected: format!("shape {shape:?}: {why}"),
        })?;
        if view.shape() != shape {
            return Err(Error::WeightShape {
                key,
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
                why: why.into(),
            });
        }
        let values = to_f32(&key, &view)?;
        let bad = non_finite(&values);
        if bad > 0 {
            return Err(Error::WeightNotFinite {
                key,
                count: bad,
                total: values.len(),
            });
        }
        self.seen.insert(key);
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        )))
    }

    fn conv1d(&mut self, name: &str, d_in: usize, d_out: usize, why: &str) -> Result<Conv1D> {
        Ok(Conv1D {
            weight: self.tensor(&format!("{name}.weight"), [d_in, d_out], why)?,
            bias: self.tensor(&format!("{name}.bias"), [d_out], why)?,
        })
    }

    fn layer_norm(&mut self, name: &str, d: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.tensor(&format!("{name}.weight"), [d], "[n_embd]")?,
            bias: self.tensor(&format!("{name}.bias"), [d], "[n_embd]")?,
            eps,
        })
    }
}

/// Builds the frozen model from `model.safetensors`. Keys may carry the `transformer.` prefix
/// (as `save_pretrained` writes them) or not (as the original GPT-2 checkpoints).
pub fn load_weights(config: &GptConfig, bytes: &[u8], device: &Device) -> Result<Gpt> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::WeightsCorrupt {
        detail: e.to_string(),
    })?;
    let prefix = if st.names().iter().any(|n| n.starts_with("transformer.")) {
        "transformer."
    } else {
        ""
    };
    let mut r = WeightReader {
        st,
        prefix,
        seen: BTreeSet::new(),
        device: device.clone(),
    };
    r.require_layers(config.n_layer)?;
    let d = config.n_embd;
    let wte = r.tensor("wte.weight", [config.vocab_size, d], "[vocab_size, n_embd]")?;
    let wpe = r.tensor(
        "wpe.weight",
        [config.n_positions, d],
        "[n_positions, n_embd]",
    )?;
    let h = (0..config.n_layer)
        .map(|i| r.block(config, i))
        .collect::<Result<Vec<_>>>()?;
    let ln_f = r.layer_norm("ln_f", d, config.layer_norm_epsilon)?;
    r.tied_head(config)?;
    r.no_others(config)?;
    Ok(Gpt {
        wte,
        wpe,
        h,
        ln_f,
        config: config.clone(),
    }
    .no_grad())
}

impl WeightReader<'_> {
    /// The last layer `config.json` promises must be in the file's header before any layer is
    /// built: a huge `n_layer` is a named error, not an allocation that aborts.
    fn require_layers(&self, n_layer: usize) -> Result<()> {
        let last = format!("{}h.{}.ln_1.weight", self.prefix, n_layer - 1);
        if self.st.tensor(&last).is_err() {
            return Err(Error::WeightMissing {
                key: last,
                expected: format!("config.json has n_layer = {n_layer}"),
            });
        }
        Ok(())
    }

    /// Transformer block `i` (`h.{i}`).
    fn block(&mut self, config: &GptConfig, i: usize) -> Result<Block> {
        let (d, f, eps) = (config.n_embd, config.n_inner, config.layer_norm_epsilon);
        Ok(Block {
            ln_1: self.layer_norm(&format!("h.{i}.ln_1"), d, eps)?,
            attn: Attention {
                c_attn: self.conv1d(
                    &format!("h.{i}.attn.c_attn"),
                    d,
                    3 * d,
                    "[n_embd, 3 * n_embd]",
                )?,
                c_proj: self.conv1d(&format!("h.{i}.attn.c_proj"), d, d, "[n_embd, n_embd]")?,
                n_head: config.n_head,
            },
            ln_2: self.layer_norm(&format!("h.{i}.ln_2"), d, eps)?,
            mlp: Mlp {
                c_fc: self.conv1d(&format!("h.{i}.mlp.c_fc"), d, f, "[n_embd, n_inner]")?,
                c_proj: self.conv1d(&format!("h.{i}.mlp.c_proj"), f, d, "[n_inner, n_embd]")?,
                activation: config.activation,
            },
        })
    }

    /// A tied head may still be stored; it must at least have the embedding's shape.
    fn tied_head(&mut self, config: &GptConfig) -> Result<()> {
        let key = "lm_head.weight";
        if !self.st.names().contains(&key) {
            return Ok(());
        }
        let view = self.st.tensor(key).map_err(|e| Error::WeightsCorrupt {
            detail: e.to_string(),
        })?;
        let expected = vec![config.vocab_size, config.n_embd];
        if view.shape() != expected {
            return Err(Error::WeightShape {
                key: key.into(),
                expected,
                found: view.shape().to_vec(),
                why: "[vocab_size, n_embd], tied to wte".into(),
            });
        }
        self.seen.insert(key.into());
        Ok(())
    }

    /// Every tensor of the file was read (or is a known buffer): anything else means the config
    /// describes another model.
    fn no_others(&self, config: &GptConfig) -> Result<()> {
        let unexpected: BTreeSet<&str> = self
            .st
            .names()
            .into_iter()
            .filter(|n| !self.seen.contains(*n) && !is_attention_buffer(n))
            .collect();
        if unexpected.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = unexpected.iter().take(5).copied().collect();
        let more = match unexpected.len() {
            n if n > 5 => format!(" and {} more", n - 5),
            _ => String::new(),
        };
        Err(Error::WeightUnexpected {
            keys: format!("{}{more}", shown.join(", ")),
            config: format!("n_layer={}, n_embd={}", config.n_layer, config.n_embd),
        })
    }
}

/// The causal-mask buffers old GPT-2 checkpoints carry (`h.{i}.attn.bias`, `attn.masked_bias`):
/// constants, not weights, so they are skipped.
fn is_attention_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}
