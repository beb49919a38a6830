//! GPT-2 with module and field names that mirror the Hugging Face checkpoint keys
//! (`wte, wpe, h.{i}.ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, ln_f`).
//!
//! The model is frozen: the loader builds it with `no_grad()`, so a backward pass through it
//! computes gradients only for what is prepended to its input (the soft prompt).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::activation::{gelu, log_softmax, sigmoid, softmax};
use burn::tensor::module::{embedding, linear};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// The architecture fields of a GPT-2 `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Width of the MLP (`n_inner`, 4 × n_embd when absent).
    pub n_inner: usize,
    pub layer_norm_epsilon: f64,
    pub activation: Activation,
    /// The token ids `config.json` names, as written (checked against the vocabulary with the
    /// tokenizer: `text::TextTokenizer`).
    pub special: SpecialIds,
}

/// `bos_token_id`, `eos_token_id` and `pad_token_id` of a `config.json`: each absent, one id, or a
/// list (newer configs list several end tokens).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialIds {
    pub bos: Vec<u64>,
    pub eos: Vec<u64>,
    pub pad: Vec<u64>,
}

impl GptConfig {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Parameter count of the model as it computes (the tied head counted once).
    /// In u64: a large model's count does not fit the browser's 32-bit `usize`.
    pub fn num_params(&self) -> u64 {
        let [d, f, v, p, l] = [
            self.n_embd,
            self.n_inner,
            self.vocab_size,
            self.n_positions,
            self.n_layer,
        ]
        .map(|n| n as u64);
        let block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
        v * d + p * d + l * block + 2 * d
    }

    /// The token embedding in f32: the largest tensor of a GPT-2 model.
    pub fn embedding_bytes(&self) -> u64 {
        self.vocab_size as u64 * self.n_embd as u64 * 4
    }

    /// Memory a loaded model needs, before it is fetched: the weights on the device in f32, the
    /// host copy of the embedding for the vocabulary map, and the file itself while it is parsed.
    pub fn memory_estimate(&self, weights_file_bytes: u64) -> u64 {
        self.num_params() * 4 + self.embedding_bytes() + weights_file_bytes
    }
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
        linear(x, self.weight.val(), Some(self.bias.val()))
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
        // Biased variance, as torch.nn.LayerNorm.
        let (var, mean) = x.clone().var_mean_bias(2);
        let x = (x - mean) / var.add_scalar(self.eps).sqrt();
        x * self.weight.val().unsqueeze::<3>() + self.bias.val().unsqueeze::<3>()
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    pub c_attn: Conv1D,
    pub c_proj: Conv1D,
    #[module(skip)]
    pub n_head: usize,
}

/// Keys and values `[rows, n_head, seq, head_dim]` of earlier positions that later queries also
/// attend to (the soft prompt's `[1, ...]`, shared by every row of a batch).
pub type Kv = (Tensor<4>, Tensor<4>);

/// `[rows, 1, queries, keys]`, true where a query must not see a key.
pub type Mask = Tensor<4, Bool>;

/// What decoding needs of the positions read so far: per layer their keys and values
/// `[rows, n_head, keys, head_dim]`, which keys each row may see (not its padding), and each
/// row's next position.
pub struct KvCache {
    layers: Vec<Kv>,
    visible: Vec<Vec<bool>>,
    next_position: Vec<usize>,
}

impl Attention {
    /// `x`: `[b, s, d]` at the positions after `past`'s (which every query sees). `masked`:
    /// `[b, 1, s, past + s]`, true where a query must not see a key. Returns the output and this
    /// call's own keys and values.
    fn forward(&self, x: Tensor<3>, past: Option<&Kv>, masked: Mask) -> (Tensor<3>, Kv) {
        let [b, s, d] = x.dims();
        let (h, hd) = (self.n_head, d / self.n_head);
        let qkv = self.c_attn.forward(x); // [b, s, 3d]
        let heads = |t: Tensor<3>| t.reshape([b, s, h, hd]).swap_dims(1, 2); // [b, s, d] -> [b, h, s, hd]
        let q = heads(qkv.clone().narrow(2, 0, d));
        let k = heads(qkv.clone().narrow(2, d, d));
        let v = heads(qkv.narrow(2, 2 * d, d));
        let (k_all, v_all) = match past {
            Some((pk, pv)) => {
                let n = pk.dims()[2];
                // A shared past ([1, ...]: the prompt, computed once) is read by every row.
                let shared = |t: &Tensor<4>| t.clone().expand([b, h, n, hd]); // [1|b, h, n, hd] -> [b, h, n, hd]
                (
                    Tensor::cat(vec![shared(pk), k.clone()], 2),
                    Tensor::cat(vec![shared(pv), v.clone()], 2),
                )
            }
            None => (k.clone(), v.clone()),
        };
        let keys = k_all.dims()[2];
        let att = q.matmul(k_all.swap_dims(2, 3)) / (hd as f64).sqrt(); // [b, h, s, keys]
        // The most negative finite value, as transformers does: a fully masked row stays finite.
        let att = softmax(att.mask_fill(masked.expand([b, h, s, keys]), f32::MIN), 3);
        let y = att.matmul(v_all).swap_dims(1, 2).reshape([b, s, d]); // [b, h, s, hd] -> [b, s, d]
        (self.c_proj.forward(y), (k, v))
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
    fn forward(&self, x: Tensor<3>, past: Option<&Kv>, masked: Mask) -> (Tensor<3>, Kv) {
        let (a, kv) = self
            .attn
            .forward(self.ln_1.forward(x.clone()), past, masked);
        let x = x + a;
        (x.clone() + self.mlp.forward(self.ln_2.forward(x)), kv)
    }
}

#[derive(Module, Debug)]
pub struct Gpt {
    pub wte: Param<Tensor<2>>,
    pub wpe: Param<Tensor<2>>,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    #[module(skip)]
    pub config: GptConfig,
}

impl Gpt {
    pub fn device(&self) -> Device {
        self.wte.val().device()
    }

    /// Token embeddings: ids `[batch, seq]` -> `[batch, seq, d_model]`.
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.wte.val(), ids)
    }

    /// Rows of `wte` for the given ids: `[n, d_model]`.
    pub fn embedding_rows(&self, ids: &[u32]) -> Tensor<2> {
        let idx =
            Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [ids.len()]), &self.device());
        self.wte.val().select(0, idx)
    }

    /// The transformer on a shared prefix and token embeddings. `prefix`: `[n, d_model]` input
    /// embeddings at positions `0..n` that every row starts with (the soft prompt; PEFT's all-ones
    /// mask over it); `tokens`: `[batch, seq, d_model]` at positions `n..`, right-padded, with
    /// `lengths` their real lengths. Returns the final hidden states `[batch, n + seq, d_model]`
    /// (after `ln_f`), the prefix's repeated on every row.
    ///
    /// Causal attention makes the prefix's states the same on every row, so they are computed
    /// once (`[1, n, d]`), not per row: equal to running `cat(prefix, tokens)` row by row, with
    /// the prefix's gradient summed over the rows by the expand's backward.
    pub fn forward_prefixed(
        &self,
        prefix: Option<Tensor<2>>,
        tokens: Tensor<3>,
        lengths: &[usize],
    ) -> Result<Tensor<3>> {
        Ok(self.run(prefix, tokens, lengths, false)?.0)
    }

    /// [`Gpt::forward_prefixed`], also keeping every position's keys and values so that
    /// [`Gpt::decode`] can go on one token per row without reading the sequence again.
    pub fn prefill(
        &self,
        prefix: Option<Tensor<2>>,
        tokens: Tensor<3>,
        lengths: &[usize],
    ) -> Result<(Tensor<3>, KvCache)> {
        let n = prefix.as_ref().map_or(0, |p| p.dims()[0]);
        let w = tokens.dims()[1];
        let (hidden, layers) = self.run(prefix, tokens, lengths, true)?;
        let cache = KvCache {
            layers: layers.expect("kept when asked"),
            visible: lengths
                .iter()
                .map(|&len| (0..n + w).map(|j| j < n || j - n < len).collect())
                .collect(),
            next_position: lengths.iter().map(|len| n + len).collect(),
        };
        Ok((hidden, cache))
    }

    fn run(
        &self,
        prefix: Option<Tensor<2>>,
        tokens: Tensor<3>,
        lengths: &[usize],
        keep: bool,
    ) -> Result<(Tensor<3>, Option<Vec<Kv>>)> {
        let [b, s, d] = tokens.dims();
        let n = prefix.as_ref().map_or(0, |p| p.dims()[0]);
        if n + s > self.config.n_positions {
            return Err(Error::SequenceTooLong {
                what: "a batch row".into(),
                found: n + s,
                max: self.config.n_positions,
            });
        }
        let device = tokens.device();
        let wpe = |from: usize, len: usize| {
            let pos = Tensor::<1, Int>::arange(from as i64..(from + len) as i64, &device);
            self.wpe.val().select(0, pos).unsqueeze::<3>() // [len, d] -> [1, len, d]
        };
        let mut x = tokens + wpe(n, s);
        let masked = attention_mask(n, lengths, s, &device);
        let mut kept = Vec::new();
        let Some(prefix) = prefix else {
            for block in &self.h {
                let (out, kv) = block.forward(x, None, masked.clone());
                x = out;
                kept.push(kv);
            }
            return Ok((self.ln_f.forward(x), keep.then_some(kept)));
        };
        let mut p = prefix.unsqueeze::<3>() + wpe(0, n); // [n, d] -> [1, n, d]
        let prefix_masked = attention_mask(0, &[n], n, &device);
        let rows = |t: Tensor<4>| {
            let [_, h, n, hd] = t.dims();
            t.expand([b, h, n, hd]) // [1, h, n, hd] -> [b, h, n, hd]
        };
        for block in &self.h {
            let (p_next, kv) = block.forward(p, None, prefix_masked.clone());
            // No tokens (an empty input after the prompt): the prefix alone.
            let kv = if s > 0 {
                let (out, (k, v)) = block.forward(x, Some(&kv), masked.clone());
                x = out;
                if keep {
                    (
                        Tensor::cat(vec![rows(kv.0), k], 2),
                        Tensor::cat(vec![rows(kv.1), v], 2),
                    )
                } else {
                    kv
                }
            } else {
                (rows(kv.0), rows(kv.1))
            };
            if keep {
                kept.push(kv);
            }
            p = p_next;
        }
        let p = self.ln_f.forward(p).expand([b, n, d]); // [1, n, d] -> [b, n, d]
        let hidden = if s > 0 {
            Tensor::cat(vec![p, self.ln_f.forward(x)], 1) // [b, n + s, d]
        } else {
            p
        };
        Ok((hidden, keep.then_some(kept)))
    }

    /// One new token per row after [`Gpt::prefill`] (or an earlier `decode`): `next` holds their
    /// embeddings `[rows, 1, d_model]`; returns their final hidden states `[rows, d_model]`.
    pub fn decode(&self, cache: &mut KvCache, next: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = next.dims();
        let device = next.device();
        // A row at the end of the context is finished by the caller; it is fed at the last
        // position and its output is not used.
        let last = self.config.n_positions - 1;
        let pos: Vec<i64> = cache
            .next_position
            .iter()
            .map(|&p| p.min(last) as i64)
            .collect();
        let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [b]), &device);
        let mut x = next + self.wpe.val().select(0, pos).reshape([b, 1, d]); // [b, d] -> [b, 1, d]
        for v in &mut cache.visible {
            v.push(true);
        }
        let keys = cache.visible[0].len();
        let masked: Vec<bool> = cache.visible.iter().flatten().map(|v| !v).collect();
        let masked =
            Tensor::<4, Bool>::from_data(TensorData::new(masked, [b, 1, 1, keys]), &device);
        for (block, kv) in self.h.iter().zip(&mut cache.layers) {
            let (out, (k, v)) = block.forward(x, Some(kv), masked.clone());
            *kv = (
                Tensor::cat(vec![kv.0.clone(), k], 2),
                Tensor::cat(vec![kv.1.clone(), v], 2),
            );
            x = out;
        }
        cache.next_position.iter_mut().for_each(|p| *p += 1);
        self.ln_f.forward(x).reshape([b, d]) // [b, 1, d] -> [b, d]
    }

    /// The output head (tied to `wte`) on selected hidden states `[n, d_model]` -> logits
    /// `[n, vocab]`. Only the positions that are scored pay for the vocabulary-sized matmul.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        hidden.matmul(self.wte.val().transpose())
    }

    /// Log-probabilities `[n]` of `targets` at flat hidden positions `positions` (indices into
    /// `hidden` seen as `[batch * seq, d_model]`).
    pub fn target_logprobs(
        &self,
        hidden: Tensor<3>,
        positions: &[usize],
        targets: &[u32],
    ) -> Tensor<1> {
        let n = positions.len();
        let logp = log_softmax(self.logits(gather_rows(hidden, positions)), 1); // [n, vocab]
        let device = logp.device();
        let t = Tensor::<2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &device);
        logp.gather(1, t).reshape([n]) // [n, 1] -> [n]
    }

    /// Logits `[n, vocab]` at flat hidden positions.
    pub fn logits_at(&self, hidden: Tensor<3>, positions: &[usize]) -> Tensor<2> {
        self.logits(gather_rows(hidden, positions))
    }

    /// A 64-bit FNV-1a hash of every parameter's bytes, in module order: equal before and after
    /// training proves the base weights were not touched. Reads asynchronously (WebGPU-safe).
    pub async fn fingerprint(&self) -> Result<u64> {
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for tensor in self.parameters() {
            for value in crate::backend::read_f32(tensor).await? {
                for byte in value.to_bits().to_le_bytes() {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        Ok(hash)
    }

    /// True when no weight requires a gradient (the loader's `no_grad()`): then a backward pass
    /// through the model computes gradients only for what is prepended to its input.
    pub fn is_frozen(&self) -> bool {
        struct AnyTracked(bool);
        impl ModuleVisitor for AnyTracked {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0 |= param.val().is_require_grad();
            }
        }
        let mut v = AnyTracked(false);
        self.visit(&mut v);
        !v.0
    }

    /// Every parameter tensor, flattened, in module order.
    pub fn parameters(&self) -> Vec<Tensor<1>> {
        struct Collect(Vec<Tensor<1>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let t = param.val();
                let n = t.shape().num_elements();
                self.0.push(t.reshape([n]));
            }
        }
        let mut c = Collect(Vec::new());
        self.visit(&mut c);
        c.0
    }
}

/// `[batch, seq, d]` -> rows `[n, d]` at flat indices `b * seq + s`.
fn gather_rows(hidden: Tensor<3>, positions: &[usize]) -> Tensor<2> {
    let [b, s, d] = hidden.dims();
    let device = hidden.device();
    let idx: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [positions.len()]), &device);
    hidden.reshape([b * s, d]).select(0, idx) // [b, s, d] -> [b*s, d]
}

/// Causal mask plus key padding for `seq` queries after `past` shared positions:
/// `[batch, 1, seq, past + seq]`, true where query `i` (position `past + i`) must not see key `j`.
/// Every query sees the shared positions; padding (`i >= len`) is never seen.
fn attention_mask(past: usize, lengths: &[usize], seq: usize, device: &Device) -> Mask {
    let keys = past + seq;
    let mut m = Vec::with_capacity(lengths.len() * seq * keys);
    for &len in lengths {
        for i in 0..seq {
            m.extend((0..keys).map(|j| j >= past && (j - past > i || j - past >= len)));
        }
    }
    Tensor::from_data(TensorData::new(m, [lengths.len(), 1, seq, keys]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2 small: 124,439,808 parameters (the tied head counted once), as transformers counts.
    #[test]
    fn size_and_memory_estimate_of_gpt2_small() {
        let c = GptConfig {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: 3072,
            layer_norm_epsilon: 1e-5,
            activation: Activation::GeluTanh,
            special: SpecialIds {
                eos: vec![50256],
                ..SpecialIds::default()
            },
        };
        assert_eq!(c.num_params(), 124_439_808);
        assert_eq!(c.embedding_bytes(), 50257 * 768 * 4);
        let file = 548_105_171;
        assert_eq!(
            c.memory_estimate(file),
            124_439_808 * 4 + 50257 * 768 * 4 + file
        );
    }

    /// The mask of the shared-prefix forward: every token query sees the prefix, itself and the
    /// real tokens before it; never padding.
    #[test]
    fn attention_mask_after_a_shared_prefix() {
        let device = crate::backend::cpu();
        let m = attention_mask(2, &[3, 1], 3, &device);
        let v: Vec<bool> = m.into_data().try_to_vec().unwrap();
        // Row 0 (3 real tokens), keys [p0 p1 t0 t1 t2]; true = hidden.
        let row0 = [
            [false, false, false, true, true],
            [false, false, false, false, true],
            [false, false, false, false, false],
        ];
        // Row 1 (1 real token): t1 and t2 are padding for every query.
        let row1 = [
            [false, false, false, true, true],
            [false, false, false, true, true],
            [false, false, false, true, true],
        ];
        let want: Vec<bool> = row0.iter().chain(&row1).flatten().copied().collect();
        assert_eq!(v, want);
    }
}
