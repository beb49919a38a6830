//! GPT-2 with module and field names that mirror the Hugging Face checkpoint keys
//! (`wte, wpe, h.{i}.ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f`).

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::weights::WeightReader;
use super::{Call, Family, Joined, Kv, ModelConfig, Positions, Table, attend_calls};
use crate::error::Result;

/// GPT-2's own fields of `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Config {
    /// Width of the MLP (`n_inner`, 4 × n_embd when absent).
    pub n_inner: usize,
    pub layer_norm_epsilon: f64,
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation GPT-2 was trained with.
    GeluTanh,
    /// `gelu`: the exact erf form.
    Gelu,
}

/// Hugging Face `Conv1D`: the weight is stored `[in, out]`, the layout burn's `linear` expects,
/// so it is loaded as it is (no transpose).
#[derive(Module, Debug)]
pub struct Conv1D {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Conv1D {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        super::frozen_matmul::linear(x, self.weight.val(), Some(self.bias.val()))
    }
}

#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        super::ops::layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    pub c_attn: Conv1D,
    pub c_proj: Conv1D,
    #[module(skip)]
    pub n_head: usize,
}

impl Attention {
    /// `x`: the calls' rows, joined (`joined`), normed; returns the attention's output, joined,
    /// and each call's own keys and values.
    fn forward(
        &self,
        x: Tensor<3>,
        joined: &Joined,
        calls: &[Call<'_, ()>],
    ) -> (Tensor<3>, Vec<Option<Kv>>) {
        let d = x.dims()[2];
        let (h, hd) = (self.n_head, d / self.n_head);
        let qkv = joined.split(self.c_attn.forward(x)); // [b, s, 3d] each
        let split = qkv.into_iter().map(|qkv| {
            let [b, s, _] = qkv.dims();
            let heads = |t: Tensor<3>| t.reshape([b, s, h, hd]).swap_dims(1, 2); // [b, s, d] -> [b, h, s, hd]
            let q = heads(qkv.clone().narrow(2, 0, d));
            let k = heads(qkv.clone().narrow(2, d, d));
            (q, (k, heads(qkv.narrow(2, 2 * d, d))), None)
        });
        let (ys, kvs) = attend_calls(calls, split);
        (self.c_proj.forward(joined.join(ys)), kvs)
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Conv1D,
    pub c_proj: Conv1D,
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.c_fc.forward(x);
        let x = match self.activation {
            Activation::GeluTanh => gelu_tanh(x),
            Activation::Gelu => gelu(x),
        };
        self.c_proj.forward(x)
    }
}

/// `gelu_new`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as
/// `x·σ(2√(2/π)·x·(1 + 0.044715·x²))`, the same function (`1 + tanh z = 2σ(2z)`) without `powf`
/// and `tanh`: through burn's `gelu_approximate` those scalar libm calls took ~30% of a training
/// step on the CPU (`../shared/speed-profile.md`).
fn gelu_tanh(x: Tensor<3>) -> Tensor<3> {
    const K: f64 = 2.0 * 0.797_884_560_802_865_4; // 2·√(2/π)
    let z = x.clone() * (x.clone() * x.clone() * (K * 0.044_715)).add_scalar(K);
    x * sigmoid(z)
}

#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    fn forward(&self, xs: Vec<Tensor<3>>, calls: &[Call<'_, ()>]) -> Vec<(Tensor<3>, Option<Kv>)> {
        let (x, joined) = Joined::new(xs, calls);
        let (a, kvs) = self
            .attn
            .forward(self.ln_1.forward(x.clone()), &joined, calls);
        let x = x + a;
        let x = x.clone() + self.mlp.forward(self.ln_2.forward(x));
        joined.split(x).into_iter().zip(kvs).collect()
    }
}

#[derive(Module, Debug)]
pub struct Gpt2 {
    pub wte: Table,
    pub wpe: Param<Tensor<2>>,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
}

impl Family for Gpt2 {
    type At = ();

    fn at(&self, _: &ModelConfig, _: &Positions, _: &Device) {}

    fn embedding(&self) -> &Table {
        &self.wte
    }

    fn input(&self, x: Tensor<3>, positions: &Positions) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let device = x.device();
        let pos: Vec<i64> = match positions {
            Positions::Run { from, len } => (*from as i64..(from + len) as i64).collect(),
            Positions::PerRow(rows) => rows.iter().map(|&p| p as i64).collect(),
        };
        let n = pos.len();
        let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [n]), &device);
        let wpe = self.wpe.val().select(0, pos);
        match positions {
            Positions::Run { .. } => x + wpe.unsqueeze::<3>(), // [s, d] -> [1, s, d]
            Positions::PerRow(_) => x + wpe.reshape([b, s, d]), // [b, d] -> [b, 1, d]
        }
    }

    fn layers(&self) -> usize {
        self.h.len()
    }

    fn layer(
        &self,
        i: usize,
        xs: Vec<Tensor<3>>,
        calls: &[Call<'_, ()>],
    ) -> Vec<(Tensor<3>, Option<Kv>)> {
        self.h[i].forward(xs, calls)
    }

    fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.ln_f.forward(x)
    }

    fn head(&self) -> &Table {
        &self.wte
    }
}

impl Gpt2 {
    /// The modules from `model.safetensors`, every tensor checked against `config`.
    pub(crate) fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        g: &Gpt2Config,
    ) -> Result<Self> {
        let d = config.d_model;
        let wte = r.table(
            r.key("wte.weight"),
            [config.vocab_size, d],
            "[vocab_size, n_embd]",
        )?;
        let wpe = r.tensor(
            "wpe.weight",
            [config.n_positions, d],
            "[n_positions, n_embd]",
        )?;
        let h = (0..config.n_layer)
            .map(|i| Block::load(r, config, g, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::load(r, "ln_f", d, g.layer_norm_epsilon)?;
        Ok(Self { wte, wpe, h, ln_f })
    }
}

impl Block {
    /// Transformer block `i` (`h.{i}`).
    fn load(
        r: &mut WeightReader<'_>,
        config: &ModelConfig,
        g: &Gpt2Config,
        i: usize,
    ) -> Result<Self> {
        let (d, f, eps) = (config.d_model, g.n_inner, g.layer_norm_epsilon);
        let conv =
            |r: &mut WeightReader<'_>, name: &str, d_in, d_out, why: &str| -> Result<Conv1D> {
                Ok(Conv1D {
                    weight: r.matrix(r.key(&format!("h.{i}.{name}.weight")), [d_in, d_out], why)?,
                    bias: r.tensor(&format!("h.{i}.{name}.bias"), [d_out], why)?,
                })
            };
        Ok(Block {
            ln_1: LayerNorm::load(r, &format!("h.{i}.ln_1"), d, eps)?,
            attn: Attention {
                c_attn: conv(r, "attn.c_attn", d, 3 * d, "[n_embd, 3 * n_embd]")?,
                c_proj: conv(r, "attn.c_proj", d, d, "[n_embd, n_embd]")?,
                n_head: config.n_head,
            },
            ln_2: LayerNorm::load(r, &format!("h.{i}.ln_2"), d, eps)?,
            mlp: Mlp {
                c_fc: conv(r, "mlp.c_fc", d, f, "[n_embd, n_inner]")?,
                c_proj: conv(r, "mlp.c_proj", f, d, "[n_inner, n_embd]")?,
                activation: g.activation,
            },
        })
    }
}

impl LayerNorm {
    fn load(r: &mut WeightReader<'_>, name: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: r.tensor(&format!("{name}.weight"), [d], "[n_embd]")?,
            bias: r.tensor(&format!("{name}.bias"), [d], "[n_embd]")?,
            eps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, SpecialIds};

    /// GPT-2 small: 124,439,808 parameters (the tied head counted once), as transformers counts.
    #[test]
    fn size_of_gpt2_small() {
        let c = ModelConfig {
            vocab_size: 50257,
            n_positions: 1024,
            d_model: 768,
            n_layer: 12,
            n_head: 12,
            n_kv_head: 12,
            head_dim: 64,
            special: SpecialIds {
                eos: vec![50256],
                ..SpecialIds::default()
            },
            arch: Arch::Gpt2(Gpt2Config {
                n_inner: 3072,
                layer_norm_epsilon: 1e-5,
                activation: Activation::GeluTanh,
            }),
        };
        assert_eq!(c.num_params(), 124_439_808);
        assert_eq!(c.embedding_bytes(), 50257 * 768 * 4);
    }
}
