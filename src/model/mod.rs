//! The frozen language model: one type over two families, GPT-2 (`gpt2.rs`) and the Llama family
//! (`llama.rs`: Llama, SmolLM2, Qwen2), each with module names that mirror its checkpoint keys.
//! What the rest of the crate needs is here, written once for both: the dimensions
//! (`ModelConfig`), the prefix-sharing forward pass, the KV cache, logits at scored positions
//! only, the fingerprint and the frozen check.
//!
//! The model is frozen: the loader builds it with `no_grad()`, so a backward pass through it
//! computes gradients only for what is prepended to its input (the soft prompt).

mod config;
mod frozen_matmul;
pub mod gpt2;
#[cfg(any(feature = "gpu", target_arch = "wasm32"))]
mod kernels;
pub mod llama;
mod load;
mod ops;
mod table;
mod weights;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Bool, DType, Device, FloatDType, Int, Tensor, TensorData};

pub use config::{Arch, ModelConfig, SpecialIds, parse_config};
pub use load::load_weights;
pub use table::Table;
pub use weights::{WeightBytes, non_finite, to_f32};

use crate::error::{Error, Result};

/// Parameters from which the CPU backend keeps a 2-byte file's weight matrices as stored. Below,
/// the weights are small (the bundled model's 10 MB in f32) and widening them in every product
/// is a large share of a short step (the bundled model's step took 54 ms kept against 34 ms
/// widened at load, natively); from a 135M model up, the weights are most of the engine's memory
/// (a 135M model's page with its pool: 0.83 GB kept against 1.34 GB), for a step that cost about
/// the same (alternated in the page: 1.09× on one engine, 0.83× on two; BENCHMARKS.md).
pub const KEEP_HALF_FROM_PARAMS: u64 = 50_000_000;

/// The two families, as burn modules (an enum module: one variant per family).
#[derive(Module, Debug)]
pub enum Net {
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
}

#[derive(Module, Debug)]
pub struct Model {
    pub net: Net,
    #[module(skip)]
    pub config: ModelConfig,
}

/// Keys and values `[rows, kv_heads, seq, head_dim]` of earlier positions that later queries also
/// attend to (the soft prompt's `[1, ...]`, shared by every row of a batch).
pub type Kv = (Tensor<4>, Tensor<4>);

/// `[rows, 1, queries, keys]`, true where a query must not see a key.
pub type Mask = Tensor<4, Bool>;

/// Where one call's queries sit: a run of positions every row shares (the prompt, or the tokens
/// after it), or one position per row (decoding).
#[derive(Debug, Clone)]
pub enum Positions {
    Run { from: usize, len: usize },
    PerRow(Vec<usize>),
}

/// What differs between the families inside the shared forward pass.
pub(crate) trait Family {
    /// What every layer needs to know of the positions (RoPE's angles), made once per call.
    type At;
    fn at(&self, config: &ModelConfig, positions: &Positions, device: &Device) -> Self::At;
    /// The token embedding `[vocab, d_model]`.
    fn embedding(&self) -> &Table;
    /// The first layer's input: GPT-2 adds its learned position embeddings; RoPE models rotate
    /// inside attention instead.
    fn input(&self, x: Tensor<3>, positions: &Positions) -> Tensor<3>;
    fn layers(&self) -> usize;
    /// Layer `i` on the inputs `xs` (`[b, s, d]` each) of one or more calls: the row-wise work
    /// (norms, projections, the MLP) on all their rows at once ([`Joined`]), attention per call.
    /// Returns each call's output and its own keys and values (none for a call that does not
    /// keep them, [`Call::keep`], when the family did not compute them as such).
    fn layer(
        &self,
        i: usize,
        xs: Vec<Tensor<3>>,
        calls: &[Call<'_, Self::At>],
    ) -> Vec<(Tensor<3>, Option<Kv>)>;
    fn final_norm(&self, x: Tensor<3>) -> Tensor<3>;
    /// The output head `[vocab, d_model]` (the embedding when tied).
    fn head(&self) -> &Table;
}

/// One call's rows inside a layer: what its positions need, the keys and values before its own
/// that every query sees, and `[b, 1, group · s, keys]`, true where a query must not see a key
/// ([`attention_mask`]).
pub(crate) struct Call<'a, A> {
    pub at: &'a A,
    pub past: Past<'a>,
    pub masked: Mask,
    /// Where the real positions are when some rows are right-padded ([`Padding::of`]; none:
    /// every position is real).
    pub padding: Option<Padding>,
    /// Whether its keys and values are read after it (kept for decoding, or a later call's
    /// past).
    pub keep: bool,
}

impl<A> Call<'_, A> {
    /// Whether its keys may stay unrotated outside attention, RoPE applied inside it
    /// ([`ops::attention`]'s angles): nothing reads them after it and no past joins them.
    pub(crate) fn rotates_in_attention(&self) -> bool {
        !self.keep && matches!(self.past, Past::None)
    }
}

/// A call's right-padded rows in a [`Joined`] tensor: computed once per forward pass, used by
/// every layer.
#[derive(Clone)]
pub(crate) struct Padding {
    /// The flat indices (`row · s + position`) of the real positions, in order.
    real: Tensor<1, Int>,
    /// For every flat position, the joined tensor's row it is read back from: its own when
    /// real, its row's last real position's when padding. Any finite row would do (attention
    /// masks padding, no loss scores it); a zero-filled copy took two kernels more each way.
    source: Tensor<1, Int>,
    /// The joined rows of the calls before this one (the prompt's, for the tokens).
    offset: usize,
}

impl Padding {
    /// `[b, s]` rows `lengths` long, after `offset` rows of earlier calls in the joined tensor:
    /// none when no row is padded (or no position is real: then every one is computed).
    pub(crate) fn of(
        lengths: &[usize],
        s: usize,
        offset: usize,
        device: &Device,
    ) -> Option<Padding> {
        let (mut real, mut source) = (Vec::new(), Vec::with_capacity(lengths.len() * s));
        for (r, &len) in lengths.iter().enumerate() {
            let len = len.min(s);
            let first = real.len(); // the row's first real position among the call's
            real.extend((0..len).map(|t| (r * s + t) as i64));
            source.extend((first..first + len).map(|i| (offset + i) as i64));
            // Padding reads its row's last real position; an empty row's, the one before it
            // (the call's first, if none).
            let last = offset + real.len().max(1) - 1;
            source.extend(std::iter::repeat_n(last as i64, s - len));
        }
        if real.len() == lengths.len() * s || real.is_empty() {
            return None;
        }
        let ints = |v: Vec<i64>| {
            let n = v.len();
            Tensor::from_data(TensorData::new(v, [n]), device)
        };
        Some(Padding {
            real: ints(real),
            source: ints(source),
            offset,
        })
    }
}

pub(crate) enum Past<'a> {
    None,
    Given(&'a Kv),
    /// An earlier call's own keys and values in the same layer (the prompt's, for the tokens).
    Call(usize),
}

/// Attention for each call on its queries `q` `[b, h, s, hd]` and its keys and values `kv`
/// (`[b, kv_heads, s, hd]`), in order, a call's past taken from an earlier call where it says so;
/// `q` and `k` rotated inside attention by the angles given with them (only where
/// [`Call::rotates_in_attention`]). Returns each call's `[b, s, h * hd]` and its keys and values
/// (none where they were rotated inside: nothing reads those).
pub(crate) fn attend_calls<'a, A>(
    calls: &[Call<'_, A>],
    qkv: impl IntoIterator<Item = (Tensor<4>, Kv, Option<&'a ops::Angles>)>,
) -> (Vec<Tensor<3>>, Vec<Option<Kv>>) {
    let (mut ys, mut kvs): (Vec<Tensor<3>>, Vec<Option<Kv>>) = (Vec::new(), Vec::new());
    for (call, (q, (k, v), angles)) in calls.iter().zip(qkv) {
        let past = match call.past {
            Past::None => None,
            Past::Given(kv) => Some(kv),
            Past::Call(j) => Some(kvs[j].as_ref().expect("a past call keeps its keys")),
        };
        ys.push(attend(q, &k, &v, past, call.masked.clone(), angles));
        kvs.push(angles.is_none().then_some((k, v)));
    }
    (ys, kvs)
}

/// Several calls' rows as one tensor, so that a layer's row-wise work is one product per weight
/// for all of them: the prompt's rows and the tokens' go through each projection together (a
/// 2-byte weight is widened once, not once per call; one kernel, not two). A call's padding
/// (positions past a row's length, [`Call::padding`]) is left out: nothing reads it (attention
/// masks it, no loss scores it), and it was 12-24% of the built-in tasks' batches. One call's
/// rows with no padding stay as they are.
pub(crate) struct Joined(Vec<Part>);

/// One call's rows in a [`Joined`]: `[b, s]`, and its [`Call::padding`].
struct Part {
    dims: [usize; 2],
    padding: Option<Padding>,
}

impl Joined {
    /// `xs` (`[b, s, d]` each, one per call) as `[1, rows, d]`, and how to take them apart again.
    pub(crate) fn new<A>(xs: Vec<Tensor<3>>, calls: &[Call<'_, A>]) -> (Tensor<3>, Joined) {
        let parts = xs
            .iter()
            .zip(calls)
            .map(|(x, call)| {
                let [b, s, _] = x.dims();
                Part {
                    dims: [b, s],
                    padding: call.padding.clone(),
                }
            })
            .collect();
        let joined = Joined(parts);
        (joined.join(xs), joined)
    }

    /// Rows shaped as the calls' (`[b, s, any]` each) in one tensor, their padding left out.
    pub(crate) fn join(&self, mut xs: Vec<Tensor<3>>) -> Tensor<3> {
        if let [Part { padding: None, .. }] = self.0.as_slice() {
            return xs.pop().expect("one call");
        }
        let rows = xs
            .into_iter()
            .zip(&self.0)
            .map(|(x, part)| {
                let [b, s, d] = x.dims();
                let flat = x.reshape([b * s, d]);
                match &part.padding {
                    Some(p) => flat.select(0, p.real.clone()), // [b·s, d] -> [real, d]
                    None => flat,
                }
            })
            .collect();
        Tensor::cat(rows, 0).unsqueeze() // [rows, d] -> [1, rows, d]
    }

    /// The calls' rows of `t` (as [`Joined::join`] made it), `[b, s, width]` each; a padding
    /// position holds a copy of its row's last real one ([`Padding::source`]).
    pub(crate) fn split(&self, t: Tensor<3>) -> Vec<Tensor<3>> {
        if let [Part { padding: None, .. }] = self.0.as_slice() {
            return vec![t];
        }
        let [_, rows, width] = t.dims();
        let t = t.reshape([rows, width]);
        let mut at = 0;
        self.0
            .iter()
            .map(|part| {
                let [b, s] = part.dims;
                let flat = match &part.padding {
                    Some(p) => {
                        debug_assert_eq!(p.offset, at, "a call's padding made for its place");
                        at += p.real.dims()[0];
                        t.clone().select(0, p.source.clone()) // [rows, w] -> [b·s, w]
                    }
                    None => {
                        let start = at;
                        at += b * s;
                        t.clone().narrow(0, start, b * s)
                    }
                };
                flat.reshape([b, s, width])
            })
            .collect()
    }
}

/// What decoding needs of the positions read so far: per layer their keys and values, which keys
/// each row may see (not its padding), and each row's next position.
pub struct KvCache {
    layers: Vec<Kv>,
    visible: Vec<Vec<bool>>,
    next_position: Vec<usize>,
}

impl KvCache {
    /// Keeps only the rows `rows` (indices into the current rows, in the order given): rows
    /// that finished stop costing a decode step. An evaluation's answers are mostly one token
    /// and its newline, so most rows finish after the first decode step while a few long
    /// answers go on.
    pub fn retain(&mut self, rows: &[usize]) {
        if rows.len() == self.next_position.len() {
            return;
        }
        if let Some((k, _)) = self.layers.first() {
            let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &k.device());
            for (k, v) in &mut self.layers {
                // [b, kv_heads, keys, hd] -> [rows, kv_heads, keys, hd]
                *k = k.clone().select(0, ids.clone());
                *v = v.clone().select(0, ids.clone());
            }
        }
        self.visible = rows.iter().map(|&r| self.visible[r].clone()).collect();
        self.next_position = rows.iter().map(|&r| self.next_position[r]).collect();
    }
}

/// Runs `$body` with `$f` bound to the family's network.
macro_rules! family {
    ($self:expr, $f:ident => $body:expr) => {
        match &$self.net {
            Net::Gpt2($f) => $body,
            Net::Llama($f) => $body,
        }
    };
}

impl Model {
    /// The same weights off the autodiff graph (shared, not copied), for passes that need no
    /// gradient (generation, evaluation). burn's autodiff kept what such a pass computed over its
    /// tensors even with nothing tracked: each held-out evaluation of a 135M model left ~0.9 GB
    /// that was never freed, and ran 4× slower (`cargo bench --bench memory`, `tests/memory.rs`).
    pub fn inference(&self) -> Model {
        self.valid()
    }

    /// The same model with every weight in f32, for training the weights themselves
    /// (`model_tuning.rs`): the CPU backend keeps a 2-byte checkpoint's matrices as stored, and
    /// their products (`frozen_matmul`) pass no gradient to them.
    pub fn widened(self) -> Model {
        struct Widen;
        impl ModuleMapper for Widen {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                param.map(widened)
            }
        }
        self.map(&mut Widen)
    }

    /// This model, widened to f32 when it has fewer than [`KEEP_HALF_FROM_PARAMS`] parameters.
    pub fn widened_if_small(self) -> Model {
        match self.config.num_params() < KEEP_HALF_FROM_PARAMS {
            true => self.widened(),
            false => self,
        }
    }

    pub fn device(&self) -> Device {
        self.embedding().device()
    }

    /// The token embedding `[vocab, d_model]` (`wte` / `embed_tokens`).
    pub fn embedding(&self) -> &Table {
        family!(self, f => f.embedding())
    }

    /// Token embeddings: ids `[batch, seq]` -> `[batch, seq, d_model]`.
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        widened(self.embedding().embed(ids))
    }

    /// Rows of the token embedding for the given ids: `[n, d_model]`.
    pub fn embedding_rows(&self, ids: &[u32]) -> Tensor<2> {
        widened(self.embedding().rows(ids))
    }

    /// The transformer on a shared prefix and token embeddings. `prefix`: `[n, d_model]` input
    /// embeddings at positions `0..n` that every row starts with (the soft prompt; PEFT's all-ones
    /// mask over it, and its positions: the text starts at `n`); `tokens`: `[batch, seq, d_model]`
    /// at positions `n..`, right-padded, with `lengths` their real lengths. Returns the final
    /// hidden states `[batch, n + seq, d_model]`, the prefix's repeated on every row.
    ///
    /// Causal attention makes the prefix's states the same on every row, so on the CPU they are
    /// computed once (`[1, n, d]`), not per row: equal to running `cat(prefix, tokens)` row by
    /// row, with the prefix's gradient summed over the rows by the expand's backward. On a GPU,
    /// where launches cost more than arithmetic, each row runs `cat(prefix, tokens)`.
    pub fn forward_prefixed(
        &self,
        prefix: Option<Tensor<2>>,
        tokens: Tensor<3>,
        lengths: &[usize],
    ) -> Result<Tensor<3>> {
        Ok(self.run(prefix, tokens, lengths, false)?.0)
    }

    /// [`Model::forward_prefixed`], also keeping every position's keys and values so that
    /// [`Model::decode`] can go on one token per row without reading the sequence again.
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
        let s = tokens.dims()[1];
        let n = prefix.as_ref().map_or(0, |p| p.dims()[0]);
        if n + s > self.config.n_positions {
            return Err(Error::SequenceTooLong {
                what: "a batch row".into(),
                found: n + s,
                max: self.config.n_positions,
            });
        }
        Ok(family!(self, f => run(f, &self.config, prefix, tokens, lengths, keep)))
    }

    /// One new token per row after [`Model::prefill`] (or an earlier `decode`): `next` holds
    /// their embeddings `[rows, 1, d_model]`; returns their final hidden states `[rows, d_model]`.
    pub fn decode(&self, cache: &mut KvCache, next: Tensor<3>) -> Tensor<2> {
        family!(self, f => decode(f, &self.config, cache, next))
    }

    /// The output head on selected hidden states `[n, d_model]` -> logits `[n, vocab]`. Only the
    /// positions that are scored pay for the vocabulary-sized matmul.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        family!(self, f => f.head()).logits(hidden)
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
        let logits = self.logits_at(hidden, positions); // [n, vocab]
        let t =
            Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [n]), &logits.device());
        ops::target_logprobs(logits, t)
    }

    /// Logits `[n, vocab]` at flat hidden positions.
    pub fn logits_at(&self, hidden: Tensor<3>, positions: &[usize]) -> Tensor<2> {
        self.logits(gather_rows(hidden, positions))
    }

    /// A 64-bit fingerprint of every parameter's bytes as stored, in module order: equal before
    /// and after training proves the base weights were not touched. FNV-1a over 8-byte words in
    /// four lanes (word i in lane i mod 4), the lanes hashed together at the end: a byte-wise
    /// chain over f32 copies of a 135M model took ~1 s natively at every load and every run's
    /// end, in conversions and multiplies that waited on each other. Reads asynchronously
    /// (WebGPU-safe).
    pub async fn fingerprint(&self) -> Result<u64> {
        const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        let fnv = |hash: u64, word: u64| (hash ^ word).wrapping_mul(0x0100_0000_01b3);
        let (mut lanes, mut seen) = ([BASIS; 4], 0usize);
        for tensor in self.parameters() {
            crate::backend::read_sliced(tensor, |data| {
                // A slice's bytes are whole values; a last word under 8 bytes is zero-padded.
                for word in data.as_bytes().chunks(8) {
                    let mut bytes = [0u8; 8];
                    bytes[..word.len()].copy_from_slice(word);
                    let lane = &mut lanes[seen % 4];
                    *lane = fnv(*lane, u64::from_le_bytes(bytes));
                    seen += 1;
                }
                Ok(())
            })
            .await?;
        }
        Ok(lanes.into_iter().fold(BASIS, fnv))
    }

    /// How many weights differ between this model and `other` (the same architecture): what a
    /// training run changed in its copy.
    pub async fn weights_differing(&self, other: &Model) -> Result<u64> {
        let mut count = 0;
        for (a, b) in self.parameters().into_iter().zip(other.parameters()) {
            // A sum of ones is exact in f32 below 2^24 elements per tensor.
            let differing = a.not_equal(b).float().sum(); // [1]
            count += crate::backend::read_f32(differing).await?[0] as u64;
        }
        Ok(count)
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

/// Rows of a frozen weight in f32 (the CPU backend keeps a 2-byte checkpoint's matrices as
/// they are stored: `weights.rs`).
fn widened<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    match t.dtype() {
        DType::F32 => t,
        _ => t.cast(FloatDType::F32),
    }
}

/// The forward pass with no prefix (no prompt, a text prompt inside the tokens, or the prompt
/// prepended to every row).
fn run_unprefixed<F: Family>(
    f: &F,
    mut x: Tensor<3>,
    (at, masked, padding): (&F::At, Mask, Option<Padding>),
    keep: bool,
) -> (Tensor<3>, Option<Vec<Kv>>) {
    let mut kept = Vec::new();
    for i in 0..f.layers() {
        let call = Call {
            at,
            past: Past::None,
            masked: masked.clone(),
            padding: padding.clone(),
            keep,
        };
        let (out, kv) = f.layer(i, vec![x], &[call]).pop().expect("one call");
        x = out;
        kept.extend(kv);
    }
    (f.final_norm(x), keep.then_some(kept))
}

/// The forward pass of [`Model::forward_prefixed`] for one family: the prefix shared by the
/// rows on the CPU, prepended to each row on a GPU ([`crate::backend::launch_bound`]).
fn run<F: Family>(
    f: &F,
    config: &ModelConfig,
    prefix: Option<Tensor<2>>,
    tokens: Tensor<3>,
    lengths: &[usize],
    keep: bool,
) -> (Tensor<3>, Option<Vec<Kv>>) {
    if crate::backend::launch_bound(&tokens.device()) {
        return run_per_row(f, config, prefix, tokens, lengths, keep);
    }
    let [b, s, d] = tokens.dims();
    let n = prefix.as_ref().map_or(0, |p| p.dims()[0]);
    let device = tokens.device();
    let text_at = Positions::Run { from: n, len: s };
    let mut x = f.input(tokens, &text_at);
    let at = f.at(config, &text_at, &device);
    let masked = attention_mask(n, lengths, s, config.group(), &device);
    let Some(prefix) = prefix else {
        let padding = Padding::of(lengths, s, 0, &device);
        return run_unprefixed(f, x, (&at, masked, padding), keep);
    };
    // The tokens' rows come after the prompt's in each layer's joined tensor.
    let padding = Padding::of(lengths, s, n, &device);
    let mut kept = Vec::new();
    let prefix_at = Positions::Run { from: 0, len: n };
    let mut p = f.input(prefix.unsqueeze::<3>(), &prefix_at); // [n, d] -> [1, n, d]
    let p_at = f.at(config, &prefix_at, &device);
    let prefix_masked = attention_mask(0, &[n], n, config.group(), &device);
    let rows = |t: Tensor<4>| {
        let [_, h, n, hd] = t.dims();
        t.expand([b, h, n, hd]) // [1, h, n, hd] -> [b, h, n, hd]
    };
    for i in 0..f.layers() {
        let prompt = Call {
            at: &p_at,
            past: Past::None,
            masked: prefix_masked.clone(),
            padding: None,
            keep: true, // the tokens' past
        };
        // No tokens (an empty input after the prompt): the prefix alone.
        if s == 0 {
            let (p_next, kv) = f.layer(i, vec![p], &[prompt]).pop().expect("one call");
            if keep {
                let (k, v) = kv.expect("kept");
                kept.push((rows(k), rows(v)));
            }
            p = p_next;
            continue;
        }
        let text = Call {
            at: &at,
            past: Past::Call(0),
            masked: masked.clone(),
            padding: padding.clone(),
            keep,
        };
        let mut out = f.layer(i, vec![p, x], &[prompt, text]).into_iter();
        let (p_next, kv) = out.next().expect("the prompt's call");
        let (x_next, text_kv) = out.next().expect("the tokens' call");
        if keep {
            let ((pk, pv), (k, v)) = (kv.expect("kept"), text_kv.expect("kept"));
            kept.push((
                Tensor::cat(vec![rows(pk), k], 2),
                Tensor::cat(vec![rows(pv), v], 2),
            ));
        }
        (p, x) = (p_next, x_next);
    }
    let p = f.final_norm(p).expand([b, n, d]); // [1, n, d] -> [b, n, d]
    let hidden = if s > 0 {
        Tensor::cat(vec![p, f.final_norm(x)], 1) // [b, n + s, d]
    } else {
        p
    };
    (hidden, keep.then_some(kept))
}

/// The forward pass with the prefix prepended to every row (`cat(P, tokens)`, as PEFT runs it)
/// and padding computed: one call a layer, with no joined rows to gather or scatter. The
/// prefix's gradient is summed over the rows by the expand's backward.
fn run_per_row<F: Family>(
    f: &F,
    config: &ModelConfig,
    prefix: Option<Tensor<2>>,
    tokens: Tensor<3>,
    lengths: &[usize],
    keep: bool,
) -> (Tensor<3>, Option<Vec<Kv>>) {
    let [b, s, d] = tokens.dims();
    let device = tokens.device();
    let (x, n) = match prefix {
        Some(p) => {
            let n = p.dims()[0];
            let p = p.unsqueeze::<3>().expand([b, n, d]); // [n, d] -> [b, n, d]
            (Tensor::cat(vec![p, tokens], 1), n) // [b, n + s, d]
        }
        None => (tokens, 0),
    };
    let all = Positions::Run {
        from: 0,
        len: n + s,
    };
    let lengths: Vec<usize> = lengths.iter().map(|len| n + len).collect();
    let masked = attention_mask(0, &lengths, n + s, config.group(), &device);
    let at = f.at(config, &all, &device);
    run_unprefixed(f, f.input(x, &all), (&at, masked, None), keep)
}

/// One decoding step of [`Model::decode`] for one family.
fn decode<F: Family>(
    f: &F,
    config: &ModelConfig,
    cache: &mut KvCache,
    next: Tensor<3>,
) -> Tensor<2> {
    let [b, _, d] = next.dims();
    let device = next.device();
    // A row at the end of the context is finished by the caller; it is fed at the last
    // position and its output is not used.
    let last = config.n_positions - 1;
    let pos = cache.next_position.iter().map(|&p| p.min(last)).collect();
    let at_rows = Positions::PerRow(pos);
    let mut x = f.input(next, &at_rows);
    let at = f.at(config, &at_rows, &device);
    for v in &mut cache.visible {
        v.push(true);
    }
    let keys = cache.visible[0].len();
    let masked: Vec<bool> = cache.visible.iter().flatten().map(|v| !v).collect();
    let masked = grouped_mask(&masked, [b, 1, keys], config.group(), &device);
    for (i, kv) in cache.layers.iter_mut().enumerate() {
        let call = Call {
            at: &at,
            past: Past::Given(kv),
            masked: masked.clone(),
            padding: None,
            keep: true,
        };
        let (out, new) = f.layer(i, vec![x], &[call]).pop().expect("one call");
        let (k, v) = new.expect("kept");
        *kv = (
            Tensor::cat(vec![kv.0.clone(), k], 2),
            Tensor::cat(vec![kv.1.clone(), v], 2),
        );
        x = out;
    }
    cache.next_position.iter_mut().for_each(|p| *p += 1);
    f.final_norm(x).reshape([b, d]) // [b, 1, d] -> [b, d]
}

/// Scaled dot-product attention of queries `q` `[b, h, s, hd]` over `past` and this call's keys
/// and values `k`, `v` `[b, kv_heads, s, hd]`: each key/value head serves `h / kv_heads`
/// consecutive query heads (grouped-query attention; GPT-2 has as many as queries), `q` and `k`
/// rotated first by `angles` when given. Returns `[b, s, h * hd]`.
fn attend(
    q: Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    past: Option<&Kv>,
    masked: Mask,
    angles: Option<&ops::Angles>,
) -> Tensor<3> {
    let [b, h, s, hd] = q.dims();
    let g = k.dims()[1];
    let with_past = |t: &Tensor<4>, p: Option<&Tensor<4>>| match p {
        Some(p) => {
            let n = p.dims()[2];
            // A shared past ([1, ...]: the prompt, computed once) is read by every row.
            let p = p.clone().expand([b, g, n, hd]); // [1|b, g, n, hd] -> [b, g, n, hd]
            Tensor::cat(vec![p, t.clone()], 2)
        }
        None => t.clone(),
    };
    let k_all = with_past(k, past.map(|p| &p.0)); // [b, g, keys, hd]
    let v_all = with_past(v, past.map(|p| &p.1));
    // The mask, `[b, 1, (h / g)·s, keys]`, serves every key/value head.
    let y = ops::attention(q, k_all, v_all, masked, (hd as f64).sqrt(), angles); // [b, s, h, hd]
    y.reshape([b, s, h * hd])
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
/// `[batch, 1, group · seq, past + seq]` ([`grouped_mask`]), true where query `i` (position
/// `past + i`) must not see key `j`. Every query sees the shared positions; padding (`i >= len`)
/// is never seen.
fn attention_mask(
    past: usize,
    lengths: &[usize],
    seq: usize,
    group: usize,
    device: &Device,
) -> Mask {
    let keys = past + seq;
    let mut m = Vec::with_capacity(lengths.len() * seq * keys);
    for &len in lengths {
        for i in 0..seq {
            m.extend((0..keys).map(|j| j >= past && (j - past > i || j - past >= len)));
        }
    }
    grouped_mask(&m, [lengths.len(), seq, keys], group, device)
}

/// `[b, 1, group · q, keys]` from `b · q` rows of `keys` flags, each batch row's `q` rows
/// repeated `group` times: the layout of [`attend`]'s grouped queries, made on the host once per
/// pass (a mask expanded there per layer kept its fill out of the fused kernel).
fn grouped_mask(flags: &[bool], [b, q, keys]: [usize; 3], group: usize, device: &Device) -> Mask {
    let per_row = q * keys;
    let m: Vec<bool> = (flags.chunks(per_row.max(1)))
        .flat_map(|row| std::iter::repeat_n(row, group).flatten().copied())
        .collect();
    Tensor::from_data(TensorData::new(m, [b, 1, group * q, keys]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `got` is within `rel` of `want`'s largest magnitude everywhere, and prints
    /// the worst difference (the tests that compare two computations of the same values).
    pub(super) fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = (got.iter().zip(want)).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{what}: off by {worst:e} of {largest}");
        assert!(
            worst <= rel * largest,
            "{what}: off by {worst:e} of {largest}"
        );
    }

    /// The mask of the shared-prefix forward: every token query sees the prefix, itself and the
    /// real tokens before it; never padding.
    #[test]
    fn attention_mask_after_a_shared_prefix() {
        let device = crate::backend::cpu();
        let m = attention_mask(2, &[3, 1], 3, 1, &device);
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
        // Two query heads per key/value head: each batch row's queries twice, in attend's order.
        let m = attention_mask(2, &[3, 1], 3, 2, &device);
        assert_eq!(m.dims(), [2, 1, 6, 5]);
        let v: Vec<bool> = m.into_data().try_to_vec().unwrap();
        let want: Vec<bool> = [&row0, &row0, &row1, &row1]
            .into_iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        assert_eq!(v, want);
    }

    /// A GPU's layout (the prompt prepended to every row, padding computed) against the CPU's
    /// (the prompt computed once, padding left out), both on the CPU: the same hidden states at
    /// every real position and the same prompt gradient, for GPT-2 and grouped-query Llama
    /// fixtures, one row padded. The same f32 arithmetic, the prompt's gradient summed over the
    /// rows in another order: hidden states observed equal, the gradient within 4e-7 relative;
    /// 1e-5 of the largest value is ~100 ulps, where a wrong position or mask moves it by O(1).
    #[test]
    fn the_prompt_per_row_equals_the_shared_prompt() {
        use burn::tensor::Distribution;
        let device = crate::backend::cpu();
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixtures");
        for name in ["tiny-a", "tiny-llama"] {
            let read = |file: &str| std::fs::read(fixtures.join(name).join(file)).unwrap();
            let config = parse_config(&read("config.json")).unwrap();
            let model = load_weights(&config, &read("model.safetensors"), &device).unwrap();
            let (n, lengths) = (3, [4, 2]);
            let prompt: Tensor<2> =
                Tensor::random([n, config.d_model], Distribution::Normal(0.0, 1.0), &device);
            let ids = Tensor::<2, Int>::from_data([[5, 9, 2, 7], [3, 8, 0, 0]], &device);
            let tokens = model.embed(ids);
            let real: Vec<usize> = (lengths.iter().enumerate())
                .flat_map(|(r, len)| (0..n + len).map(move |t| r * (n + 4) + t))
                .collect();
            let mix: Tensor<2> =
                Tensor::random([real.len(), config.d_model], Distribution::Default, &device);
            let pass = |per_row: bool| {
                let p = prompt.clone().require_grad();
                let (hidden, _) = family!(model, f => match per_row {
                    true => run_per_row(f, &config, Some(p.clone()), tokens.clone(), &lengths, false),
                    false => run(f, &config, Some(p.clone()), tokens.clone(), &lengths, false),
                });
                let hidden = gather_rows(hidden, &real); // [real, d]
                let grads = (hidden.clone() * mix.clone()).sum().backward();
                let grad = p.grad(&grads).expect("the prompt's gradient");
                [hidden.into_data(), grad.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
            };
            let [h_row, g_row] = pass(true);
            let [h_shared, g_shared] = pass(false);
            assert_close(&format!("{name}: hidden"), &h_row, &h_shared, 1e-5);
            assert_close(&format!("{name}: gradient"), &g_row, &g_shared, 1e-5);
        }
    }

    /// SmolLM2-135M's config: 134,515,008 parameters (tied head), as its model card counts.
    #[test]
    fn size_of_smollm2_135m() {
        let config = br#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
            "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
            "num_key_value_heads": 3, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0, "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 0}"#;
        let c = parse_config(config).unwrap();
        assert_eq!((c.head_dim, c.n_kv_head, c.family()), (64, 3, "llama"));
        assert_eq!(c.num_params(), 134_515_008);
    }
}
