//! `config.json`: the dimensions every family shares (`ModelConfig`) and each family's own fields
//! (`Arch`), checked before any weight is read. `model_type` picks the family: `gpt2` (or none,
//! as old GPT-2 configs), `llama`, `qwen2`; anything else is refused by name.

use serde_json::Value;

use super::gpt2::{Activation, Gpt2Config};
use super::llama::{LlamaConfig, Rope, RopeScaling};
use crate::error::{Error, Result};

/// What the rest of the crate knows of a model, whatever its family.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    /// The longest sequence the model reads (`n_positions`, `max_position_embeddings`).
    pub n_positions: usize,
    /// Width of the residual stream and of the token embedding (`n_embd`, `hidden_size`).
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads: `n_head` unless the model groups its queries.
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// The token ids `config.json` names, as written (checked against the vocabulary with the
    /// tokenizer: `text::TextTokenizer`).
    pub special: SpecialIds,
    pub arch: Arch,
}

/// Each family's own fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
}

/// `bos_token_id`, `eos_token_id` and `pad_token_id` of a `config.json`: each absent, one id, or a
/// list (newer configs list several end tokens).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialIds {
    pub bos: Vec<u64>,
    pub eos: Vec<u64>,
    pub pad: Vec<u64>,
}

impl ModelConfig {
    /// The family's name, as `model_type` spells it.
    pub fn family(&self) -> &'static str {
        match &self.arch {
            Arch::Gpt2(_) => "gpt2",
            Arch::Llama(l) => l.model_type,
        }
    }

    /// Parameter count of the model as it computes (a tied head counted once).
    /// In u64: a large model's count does not fit the browser's 32-bit `usize`.
    pub fn num_params(&self) -> u64 {
        let [d, v, p, l] = [
            self.d_model,
            self.vocab_size,
            self.n_positions,
            self.n_layer,
        ]
        .map(|n| n as u64);
        match &self.arch {
            Arch::Gpt2(g) => {
                let f = g.n_inner as u64;
                let block =
                    2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
                v * d + p * d + l * block + 2 * d
            }
            Arch::Llama(c) => {
                let (q, kv, f) = (
                    (self.n_head * self.head_dim) as u64,
                    (self.n_kv_head * self.head_dim) as u64,
                    c.intermediate_size as u64,
                );
                let bias = if c.qkv_bias { q + 2 * kv } else { 0 };
                let block = 2 * d + d * q + 2 * d * kv + bias + q * d + 3 * d * f;
                let head = if c.tie_word_embeddings { 0 } else { v * d };
                v * d + head + l * block + d
            }
        }
    }

    /// Query heads per key/value head (grouped-query attention; 1 for GPT-2).
    pub fn group(&self) -> usize {
        self.n_head / self.n_kv_head
    }

    /// The token embedding in f32: the largest tensor of these models.
    pub fn embedding_bytes(&self) -> u64 {
        self.vocab_size as u64 * self.d_model as u64 * 4
    }

    /// The largest tensor in f32 that a GPU must bind whole: a layer's largest weight matrix or
    /// GPT-2's position table (the vocabulary tables load in row parts, `model::Table`).
    pub fn largest_matrix_bytes(&self) -> u64 {
        let d = self.d_model as u64;
        let elements = match &self.arch {
            Arch::Gpt2(g) => (3 * d).max(g.n_inner as u64).max(self.n_positions as u64) * d,
            Arch::Llama(l) => {
                let q = (self.n_head * self.head_dim) as u64;
                q.max(l.intermediate_size as u64) * d
            }
        };
        elements * 4
    }
}

pub(crate) fn config_error(detail: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        detail: detail.into(),
    }
}

/// Upper bounds for the sizes in `config.json`, far above any model of these families (GPT-2 XL:
/// 48 layers, d 1600; Qwen2.5: vocabulary 151,936; Llama 3.1: 131,072 positions) yet small
/// enough that no size computed from them overflows, even in the browser's 32-bit `usize`. The
/// weights file is checked against the config before anything is allocated; these only keep that
/// arithmetic sound.
fn field_limit(name: &str) -> u64 {
    match name {
        "n_layer"
        | "n_head"
        | "num_hidden_layers"
        | "num_attention_heads"
        | "num_key_value_heads"
        | "head_dim" => 1 << 10,
        "n_embd" | "hidden_size" => 1 << 14,
        "n_inner" | "intermediate_size" => 1 << 16,
        "n_positions" => 1 << 16,
        "max_position_embeddings" => 1 << 20,
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

/// A size field that may be absent or null (then `default`).
fn usize_or(v: &Value, name: &'static str, default: usize) -> Result<usize> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(_) => usize_field(v, name),
    }
}

/// A positive number field that may be absent (then `default`).
fn positive_or(v: &Value, name: &str, default: f64) -> Result<f64> {
    v.get(name)
        .map_or(Some(default), Value::as_f64)
        .filter(|e| *e > 0.0 && e.is_finite())
        .ok_or_else(|| config_error(format!("`{name}` must be a positive number")))
}

fn unsupported(field: &'static str, found: impl ToString, expected: &'static str) -> Error {
    Error::ConfigUnsupported {
        field,
        found: found.to_string(),
        expected,
    }
}

/// Parses and checks `config.json`.
pub fn parse_config(bytes: &[u8]) -> Result<ModelConfig> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| config_error(e.to_string()))?;
    if !v.is_object() {
        return Err(config_error("not a JSON object"));
    }
    let special = SpecialIds {
        bos: token_ids(&v, "bos_token_id")?,
        eos: token_ids(&v, "eos_token_id")?,
        pad: token_ids(&v, "pad_token_id")?,
    };
    match v.get("model_type").and_then(Value::as_str) {
        None | Some("gpt2") => parse_gpt2(&v, special),
        Some(t @ ("llama" | "qwen2")) => {
            parse_llama(&v, special, if t == "llama" { "llama" } else { "qwen2" })
        }
        Some(other) => Err(unsupported("model_type", other, "gpt2, llama or qwen2")),
    }
}

/// Refuses, by name, the GPT-2 variants this engine does not compute.
fn check_gpt2_variant(v: &Value) -> Result<()> {
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
            return Err(unsupported(field, found, expected));
        }
    }
    Ok(())
}

fn parse_gpt2(v: &Value, special: SpecialIds) -> Result<ModelConfig> {
    check_gpt2_variant(v)?;
    let activation = match v
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("gelu_new")
    {
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "gelu" => Activation::Gelu,
        other => {
            return Err(unsupported(
                "activation_function",
                other,
                "gelu_new, gelu_pytorch_tanh or gelu",
            ));
        }
    };
    let n_embd = usize_field(v, "n_embd")?;
    let n_head = usize_field(v, "n_head")?;
    if n_embd % n_head != 0 {
        return Err(config_error(format!(
            "n_embd ({n_embd}) is not divisible by n_head ({n_head})"
        )));
    }
    let arch = Gpt2Config {
        n_inner: usize_or(v, "n_inner", 4 * n_embd)?,
        layer_norm_epsilon: positive_or(v, "layer_norm_epsilon", 1e-5)?,
        activation,
    };
    Ok(ModelConfig {
        vocab_size: usize_field(v, "vocab_size")?,
        n_positions: usize_field(v, "n_positions")?,
        d_model: n_embd,
        n_layer: usize_field(v, "n_layer")?,
        n_head,
        n_kv_head: n_head,
        head_dim: n_embd / n_head,
        special,
        arch: Arch::Gpt2(arch),
    })
}

/// Refuses, by name, the Llama-family variants this engine does not compute.
fn check_llama_variant(v: &Value, model_type: &'static str) -> Result<()> {
    let act = v
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("silu");
    if act != "silu" {
        return Err(unsupported("hidden_act", act, "silu (SwiGLU)"));
    }
    let flag = |name: &str| v.get(name).and_then(Value::as_bool) == Some(true);
    if flag("mlp_bias") {
        return Err(unsupported("mlp_bias", true, "false"));
    }
    if model_type == "llama" && flag("attention_bias") {
        return Err(unsupported(
            "attention_bias",
            true,
            "false (Qwen2's q/k/v biases are supported)",
        ));
    }
    let sliding = flag("use_sliding_window")
        || v.get("layer_types")
            .and_then(Value::as_array)
            .is_some_and(|layers| layers.iter().any(|l| l.as_str() != Some("full_attention")));
    if sliding {
        return Err(unsupported(
            "use_sliding_window",
            true,
            "full attention in every layer; sliding-window attention is not supported",
        ));
    }
    Ok(())
}

/// `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (earlier).
fn parse_rope(v: &Value) -> Result<Rope> {
    let params = v.get("rope_parameters").filter(|p| p.is_object());
    let scaling = params.or_else(|| v.get("rope_scaling").filter(|p| p.is_object()));
    let theta = match params.and_then(|p| p.get("rope_theta")) {
        Some(t) => t.as_f64().filter(|t| *t > 0.0 && t.is_finite()),
        None => Some(positive_or(v, "rope_theta", 10_000.0)?),
    }
    .ok_or_else(|| config_error("`rope_theta` must be a positive number"))?;
    let Some(s) = scaling else {
        return Ok(Rope {
            theta,
            scaling: RopeScaling::None,
        });
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |name: &str| {
        s.get(name)
            .and_then(Value::as_f64)
            .filter(|x| *x > 0.0 && x.is_finite())
            .ok_or_else(|| config_error(format!("rope {kind}: `{name}` must be a positive number")))
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_positions: num("original_max_position_embeddings")?,
        },
        other => return Err(unsupported("rope_type", other, "default, linear or llama3")),
    };
    Ok(Rope { theta, scaling })
}

fn parse_llama(v: &Value, special: SpecialIds, model_type: &'static str) -> Result<ModelConfig> {
    check_llama_variant(v, model_type)?;
    let d_model = usize_field(v, "hidden_size")?;
    let n_head = usize_field(v, "num_attention_heads")?;
    let n_kv_head = usize_or(v, "num_key_value_heads", n_head)?;
    if n_head % n_kv_head != 0 {
        return Err(config_error(format!(
            "num_attention_heads ({n_head}) is not a multiple of num_key_value_heads ({n_kv_head})"
        )));
    }
    if v.get("head_dim").is_none_or(Value::is_null) && d_model % n_head != 0 {
        return Err(config_error(format!(
            "hidden_size ({d_model}) is not divisible by num_attention_heads ({n_head}), and there is no head_dim"
        )));
    }
    let head_dim = usize_or(v, "head_dim", d_model / n_head)?;
    if head_dim % 2 != 0 {
        return Err(config_error(format!(
            "head_dim ({head_dim}) must be even for rotary position embedding"
        )));
    }
    let arch = LlamaConfig {
        model_type,
        intermediate_size: usize_field(v, "intermediate_size")?,
        rms_norm_eps: positive_or(v, "rms_norm_eps", 1e-6)?,
        rope: parse_rope(v)?,
        qkv_bias: model_type == "qwen2",
        tie_word_embeddings: v
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(ModelConfig {
        vocab_size: usize_field(v, "vocab_size")?,
        n_positions: usize_field(v, "max_position_embeddings")?,
        d_model,
        n_layer: usize_field(v, "num_hidden_layers")?,
        n_head,
        n_kv_head,
        head_dim,
        special,
        arch: Arch::Llama(arch),
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
