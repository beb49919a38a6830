//! The Llama family (Llama, SmolLM2, Qwen2) as transformers computes it, with module and field
//! names that mirror the checkpoint keys (`model.embed_tokens`, `model.layers.{i}.input_layernorm`,
//! `self_attn.{q,k,v,o}_proj`, `post_attention_layernorm`, `mlp.{gate,up,down}_proj`,
//! `model.norm`, `lm_head`): RMSNorm, rotary position embedding in Hugging Face's `rotate_half`
//! layout, grouped-query attention, a SwiGLU MLP, q/k/v biases for Qwen2, a tied or separate head.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use super::ops::{self, Angles};
use super::weights::WeightReader;
use super::{Call, Family, Joined, Kv, ModelConfig, Positions, Table, attend_calls};
use crate::error::Result;

/// The Llama family's own fields of `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `llama` or `qwen2`.
    pub model_type: &'static str,
    pub intermediate_size: usize,
    pub rms_norm_eps: f64,
    pub rope: Rope,
    /// Qwen2's q, k and v projections have biases (o_proj has none).
    pub qkv_bias: bool,
    pub tie_word_embeddings: bool,
}

/// Rotary position embedding: the base and how its frequencies are scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub scaling: RopeScaling,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Every frequency divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3's: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: f64,
    },
}

impl Rope {
    /// The `head_dim / 2` rotation frequencies, in f32 as transformers computes them.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let base = self.theta as f32;
        let inv: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        match self.scaling {
            RopeScaling::None => inv,
            RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => {
                let [factor, low, high, old] = [
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_positions,
                ]
                .map(|x| x as f32);
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                let scale = |f: f32| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen > low_wavelen {
                        return f / factor;
                    }
                    if wavelen < high_wavelen {
                        return f;
                    }
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * f / factor + smooth * f
                };
                inv.into_iter().map(scale).collect()
            }
        }
    }
}

/// `nn.Linear`, its weight loaded transposed to `[in, out]` (the layout burn's `linear` takes).
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        super::frozen_matmul::linear(x, self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}

#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl RmsNorm {
    /// `w · x / sqrt(mean(x²) + eps)`, in f32.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        ops::rms_norm(x, self.weight.val(), self.eps)
    }
}

#[derive(Module, Debug)]
pub struct LlamaAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    #[module(skip)]
    pub n_head: usize,
    #[module(skip)]
    pub n_kv_head: usize,
    #[module(skip)]
    pub head_dim: usize,
}

impl LlamaAttention {
    /// `x`: the calls' rows, joined (`joined`), normed; returns the attention's output, joined,
    /// and each call's own keys and values.
    fn forward(
        &self,
        x: Tensor<3>,
        joined: &Joined,
        calls: &[Call<'_, Angles>],
    ) -> (Tensor<3>, Vec<Option<Kv>>) {
        let hd = self.head_dim;
        // [b, s, heads * hd] -> [b, s, heads, hd]; attention takes [b, heads, s, hd]
        let heads = |t: Tensor<3>, n: usize| {
            let [b, s, _] = t.dims();
            t.reshape([b, s, n, hd])
        };
        let q = joined.split(self.q_proj.forward(x.clone()));
        let k = joined.split(self.k_proj.forward(x.clone()));
        let v = joined.split(self.v_proj.forward(x));
        let qkv = calls
            .iter()
            .zip(q.into_iter().zip(k).zip(v))
            .map(|(call, ((q, k), v))| {
                let (q, k) = (heads(q, self.n_head), heads(k, self.n_kv_head));
                let v = heads(v, self.n_kv_head).swap_dims(1, 2);
                if call.rotates_in_attention() {
                    return (q.swap_dims(1, 2), (k.swap_dims(1, 2), v), Some(call.at));
                }
                (ops::rope(q, call.at), (ops::rope(k, call.at), v), None)
            });
        let (ys, kvs) = attend_calls(calls, qkv);
        (self.o_proj.forward(joined.join(ys)), kvs)
    }
}

#[derive(Module, Debug)]
pub struct LlamaMlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl LlamaMlp {
    /// SwiGLU: `down(silu(gate(x)) · up(x))`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gated = ops::swiglu(self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        self.down_proj.forward(gated)
    }
}

#[derive(Module, Debug)]
pub struct LlamaLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: LlamaAttention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: LlamaMlp,
}

impl LlamaLayer {
    fn forward(
        &self,
        xs: Vec<Tensor<3>>,
        calls: &[Call<'_, Angles>],
    ) -> Vec<(Tensor<3>, Option<Kv>)> {
        let (x, joined) = Joined::new(xs, calls);
        let normed = self.input_layernorm.forward(x.clone());
        let (a, kvs) = self.self_attn.forward(normed, &joined, calls);
        let x = x + a;
        let x = x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x));
        joined.split(x).into_iter().zip(kvs).collect()
    }
}

/// `model.*` and `lm_head` (none when tied to `embed_tokens`).
#[derive(Module, Debug)]
pub struct Llama {
    pub embed_tokens: Table,
    pub layers: Vec<LlamaLayer>,
    pub norm: RmsNorm,
    pub lm_head: Option<Table>,
    /// RoPE's frequencies `[head_dim / 2]`.
    #[module(skip)]
    pub inv_freq: Vec<f32>,
}

impl Family for Llama {
    type At = Angles;

    fn at(&self, config: &ModelConfig, positions: &Positions, device: &Device) -> Angles {
        let hd = config.head_dim;
        let (pos, shape): (Vec<usize>, [usize; 4]) = match positions {
            Positions::Run { from, len } => ((*from..from + len).collect(), [1, *len, 1, hd]),
            Positions::PerRow(rows) => (rows.clone(), [rows.len(), 1, 1, hd]),
        };
        // `cos` then `sin`, one upload (`Angles::both`).
        let (mut cos, mut sin) = (
            Vec::with_capacity(2 * pos.len() * hd),
            Vec::with_capacity(pos.len() * hd),
        );
        for p in pos {
            // The angles, then the same angles again: cat(freqs, freqs), as transformers lays
            // them out; `rotate`'s minus in the first half of sin.
            let angles: Vec<f32> = self.inv_freq.iter().map(|f| p as f32 * f).collect();
            for sign in [-1.0, 1.0] {
                cos.extend(angles.iter().map(|a| a.cos()));
                sin.extend(angles.iter().map(|a| sign * a.sin()));
            }
        }
        cos.extend(sin);
        let [rows, s, one, hd] = shape;
        Angles::new(Tensor::from_data(
            TensorData::new(cos, [2 * rows, s, one, hd]),
            device,
        ))
    }

    fn embedding(&self) -> &Table {
        &self.embed_tokens
    }

    fn input(&self, x: Tensor<3>, _: &Positions) -> Tensor<3> {
        x
    }

    fn layers(&self) -> usize {
        self.layers.len()
    }

    fn layer(
        &self,
        i: usize,
        xs: Vec<Tensor<3>>,
        calls: &[Call<'_, Angles>],
    ) -> Vec<(Tensor<3>, Option<Kv>)> {
        self.layers[i].forward(xs, calls)
    }

    fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.norm.forward(x)
    }

    fn head(&self) -> &Table {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }
}

impl Llama {
    /// The modules from `model.safetensors`, every tensor checked against `config`.
    pub(crate) fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        l: &LlamaConfig,
    ) -> Result<Self> {
        let (v, d) = (config.vocab_size, config.d_model);
        let key = r.key("embed_tokens.weight");
        let embed_tokens = r.table(key, [v, d], "[vocab_size, hidden_size]")?;
        let layers = (0..config.n_layer)
            .map(|i| LlamaLayer::load(r, config, l, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(r, "norm", d, l.rms_norm_eps)?;
        let lm_head = match l.tie_word_embeddings {
            true => None,
            false => Some(r.table(
                "lm_head.weight".into(),
                [v, d],
                "[vocab_size, hidden_size]: tie_word_embeddings is false",
            )?),
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq: l.rope.inv_freq(config.head_dim),
        })
    }
}

impl Linear {
    /// `{key}.weight` (and `{key}.bias` when `bias`), `[d_out, d_in]` in the file.
    fn load(
        r: &mut WeightReader<'_>,
        key: &str,
        dims: (usize, usize),
        bias: bool,
        why: &str,
    ) -> Result<Self> {
        let (d_in, d_out) = dims;
        Ok(Linear {
            weight: r.linear_weight(format!("{key}.weight"), d_in, d_out, why)?,
            bias: match bias {
                true => Some(r.tensor_at(format!("{key}.bias"), [d_out], why)?),
                false => None,
            },
        })
    }
}

impl LlamaAttention {
    /// `layers.{i}.self_attn`.
    fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        l: &LlamaConfig,
        i: usize,
    ) -> Result<Self> {
        let d = config.d_model;
        let (q, kv) = (
            config.n_head * config.head_dim,
            config.n_kv_head * config.head_dim,
        );
        let key = |name: &str| r.key(&format!("layers.{i}.self_attn.{name}"));
        let (kq, kk, kv_key, ko) = (key("q_proj"), key("k_proj"), key("v_proj"), key("o_proj"));
        let bias = l.qkv_bias;
        Ok(Self {
            q_proj: Linear::load(r, &kq, (d, q), bias, "[heads · head_dim, hidden_size]")?,
            k_proj: Linear::load(r, &kk, (d, kv), bias, "[kv_heads · head_dim, hidden_size]")?,
            v_proj: Linear::load(
                r,
                &kv_key,
                (d, kv),
                bias,
                "[kv_heads · head_dim, hidden_size]",
            )?,
            o_proj: Linear::load(r, &ko, (q, d), false, "[hidden_size, heads · head_dim]")?,
            n_head: config.n_head,
            n_kv_head: config.n_kv_head,
            head_dim: config.head_dim,
        })
    }
}

impl LlamaMlp {
    /// `layers.{i}.mlp`.
    fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        l: &LlamaConfig,
        i: usize,
    ) -> Result<Self> {
        let (d, f) = (config.d_model, l.intermediate_size);
        let key = |name: &str| r.key(&format!("layers.{i}.mlp.{name}"));
        let (kg, ku, kd) = (key("gate_proj"), key("up_proj"), key("down_proj"));
        let why = "[intermediate_size, hidden_size]";
        Ok(Self {
            gate_proj: Linear::load(r, &kg, (d, f), false, why)?,
            up_proj: Linear::load(r, &ku, (d, f), false, why)?,
            down_proj: Linear::load(r, &kd, (f, d), false, "[hidden_size, intermediate_size]")?,
        })
    }
}

impl LlamaLayer {
    /// Layer `i` (`layers.{i}`).
    fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        l: &LlamaConfig,
        i: usize,
    ) -> Result<Self> {
        let (d, eps) = (config.d_model, l.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(r, &format!("layers.{i}.input_layernorm"), d, eps)?,
            self_attn: LlamaAttention::load(r, config, l, i)?,
            post_attention_layernorm: RmsNorm::load(
                r,
                &format!("layers.{i}.post_attention_layernorm"),
                d,
                eps,
            )?,
            mlp: LlamaMlp::load(r, config, l, i)?,
        })
    }
}

impl RmsNorm {
    fn load(r: &mut WeightReader<'_>, name: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: r.tensor(&format!("{name}.weight"), [d], "[hidden_size]")?,
            eps,
        })
    }
}
