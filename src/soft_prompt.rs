//! The soft prompt: `n_virtual` learned vectors in the input-embedding space, prepended to the
//! embedded input (`inputs_embeds = cat(P, wte(ids))`). It is the only thing that is trained.
//!
//! The method, in the order a step runs it (at the end of this file):
//! - [`prompted_input`]: `cat(P, wte(ids))` as PEFT builds it, `[b, n_virtual + w, d_model]`;
//! - [`prompted_hidden`]: the model run on it; it computes the prompt's positions once for all
//!   rows (causal attention makes them equal), the same as [`prompted_hidden_plain`], which
//!   runs the plain `cat` (tests/training.rs shows them equal);
//! - [`target_logprobs`] and [`loss`]: cross-entropy at the scored (answer) positions only;
//! - [`prompt_gradient`]: the loss's gradient with respect to `P` alone, what a training step
//!   (train.rs, and each engine of the page's pool: pool.rs) feeds to the optimizer.

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::batch::{Padded, ScoredBatch};
use crate::error::{Error, Result};
use crate::loader::LoadedModel;
use crate::model::Model;

#[derive(Module, Debug)]
pub struct SoftPrompt {
    /// `[n_virtual, d_model]`, PEFT's `prompt_embeddings`.
    pub embeddings: Param<Tensor<2>>,
}

/// How the prompt starts. PEFT's inits keep PEFT's semantics; the others follow Lester et al. 2021.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInit {
    /// PEFT `RANDOM`: N(0, 1), like a fresh `nn.Embedding`.
    RandomNormal,
    /// Lester et al.: U[-0.5, 0.5].
    RandomUniform,
    /// PEFT `SAMPLE_VOCAB`: rows of `wte` at uniformly drawn token ids, optionally only among the
    /// first `first_k` ids (Lester drew from the 5,000 most common tokens).
    SampleVocab { first_k: Option<usize> },
    /// PEFT `TEXT`: the embeddings of the text's tokens, truncated or repeated to fill the length.
    Text(String),
    /// Lester et al.: virtual token i starts at the embedding of label i (the mean over its
    /// tokens when it has several); the remaining tokens are sampled from the vocabulary.
    ClassLabels {
        labels: Vec<String>,
        first_k: Option<usize>,
    },
}

impl PromptInit {
    /// The init text, for PEFT's `prompt_tuning_init_text` (only the text init has one).
    pub fn text(&self) -> Option<String> {
        match self {
            PromptInit::Text(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// The name PEFT's `prompt_tuning_init` uses for this init (PEFT has no class-label init:
    /// those prompts are saved as `RANDOM`, the field PEFT ignores when loading).
    pub fn peft_name(&self) -> &'static str {
        match self {
            PromptInit::SampleVocab { .. } => "SAMPLE_VOCAB",
            PromptInit::Text(_) => "TEXT",
            _ => "RANDOM",
        }
    }

    /// The inverse of [`PromptInit::peft_name`], for an adapter's recorded init (PEFT itself
    /// ignores it when loading; it is kept for a later export).
    pub fn from_peft(name: Option<&str>, text: Option<&str>) -> Self {
        match (name, text) {
            (Some("TEXT"), Some(text)) => PromptInit::Text(text.to_string()),
            (Some("SAMPLE_VOCAB"), _) => PromptInit::SampleVocab { first_k: None },
            _ => PromptInit::RandomNormal,
        }
    }
}

/// TEXT init: the embeddings of `text`'s tokens, repeated to `n_virtual` rows.
fn text_rows(lm: &LoadedModel, text: &str, n_virtual: usize) -> Result<Tensor<2>> {
    if lm.tokenizer.encode(text)?.is_empty() {
        return Err(Error::setting(
            "the init text is empty: type a few words that describe the task",
        ));
    }
    // With the start ids (BOS), as PEFT tokenizes the init text.
    let ids = lm.tokenizer.encode_start(text)?;
    let ids: Vec<u32> = ids.iter().copied().cycle().take(n_virtual).collect();
    Ok(lm.model.embedding_rows(&ids))
}

impl SoftPrompt {
    /// A trainable prompt from its values `[n_virtual, d_model]`.
    pub fn from_tensor(values: Tensor<2>) -> Self {
        Self {
            embeddings: Param::from_tensor(values.detach().require_grad()),
        }
    }

    /// A trainable prompt from values on the host, `[n_virtual, d_model]` row-major, on the
    /// model's device.
    pub fn from_values(lm: &LoadedModel, values: &[f32], n_virtual: usize) -> Result<Self> {
        let d = lm.model.config.d_model;
        if values.len() != n_virtual * d {
            return Err(Error::setting(format!(
                "a prompt of {n_virtual} virtual tokens needs {} values, got {}",
                n_virtual * d,
                values.len()
            )));
        }
        let data = TensorData::new(values.to_vec(), [n_virtual, d]);
        Ok(Self::from_tensor(Tensor::from_data(
            data,
            &lm.model.device(),
        )))
    }

    /// A new prompt, deterministic for a given seed.
    pub fn init(lm: &LoadedModel, n_virtual: usize, init: &PromptInit, seed: u64) -> Result<Self> {
        if n_virtual == 0 {
            return Err(Error::setting(
                "the soft prompt needs at least one virtual token",
            ));
        }
        let model = &lm.model;
        let (vocab, d) = (model.config.vocab_size, model.config.d_model);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sample_ids = |n: usize, first_k: Option<usize>| -> Result<Vec<u32>> {
            let k = first_k.unwrap_or(vocab);
            if k == 0 || k > vocab {
                return Err(Error::setting(format!(
                    "sample-vocab range must be 1..={vocab} tokens, got {k}"
                )));
            }
            Ok((0..n).map(|_| rng.random_range(0..k as u32)).collect())
        };
        let values = match init {
            PromptInit::RandomNormal => host_tensor(
                model,
                (0..n_virtual * d).map(|_| normal(&mut rng)).collect(),
                n_virtual,
                d,
            ),
            PromptInit::RandomUniform => host_tensor(
                model,
                (0..n_virtual * d)
                    .map(|_| rng.random::<f32>() - 0.5)
                    .collect(),
                n_virtual,
                d,
            ),
            PromptInit::SampleVocab { first_k } => {
                model.embedding_rows(&sample_ids(n_virtual, *first_k)?)
            }
            PromptInit::Text(text) => text_rows(lm, text, n_virtual)?,
            PromptInit::ClassLabels { labels, first_k } => {
                let mut rows = Vec::with_capacity(n_virtual);
                for label in labels.iter().take(n_virtual) {
                    let ids = lm.tokenizer.encode(label)?;
                    if ids.is_empty() {
                        return Err(Error::setting("a class label is empty"));
                    }
                    rows.push(model.embedding_rows(&ids).mean_dim(0)); // [k, d] -> [1, d]
                }
                let rest = n_virtual - rows.len();
                if rest > 0 {
                    rows.push(model.embedding_rows(&sample_ids(rest, *first_k)?));
                }
                Tensor::cat(rows, 0)
            }
        };
        Ok(Self::from_tensor(values))
    }

    pub fn n_virtual(&self) -> usize {
        self.embeddings.val().dims()[0]
    }

    /// The current values, outside the autodiff graph.
    pub fn values(&self) -> Tensor<2> {
        self.embeddings.val().detach()
    }
}

/// The right-padded token rows as ids `[b, w]`.
fn token_ids(model: &Model, padded: &Padded) -> Tensor<2, Int> {
    let data = TensorData::new(padded.ids.clone(), [padded.rows(), padded.width]);
    Tensor::from_data(data, &model.device())
}

/// The prompted input as PEFT builds it for a causal LM: `inputs_embeds = cat(P, wte(ids))`,
/// the prompt `[n_virtual, d_model]` repeated on each of the `b` rows before its tokens
/// `[b, w, d_model]`: `[b, n_virtual + w, d_model]`, and each row's length with the prompt.
pub fn prompted_input(
    model: &Model,
    prompt: Tensor<2>,
    padded: &Padded,
) -> (Tensor<3>, Vec<usize>) {
    let [n, d] = prompt.dims();
    let tokens = model.embed(token_ids(model, padded)); // [b, w, d]
    let repeated = prompt.unsqueeze::<3>().expand([padded.rows(), n, d]); // [b, n, d]
    let lengths = padded.lengths.iter().map(|l| n + l).collect();
    (Tensor::cat(vec![repeated, tokens], 1), lengths)
}

/// Final hidden states `[b, n_virtual + w, d_model]` of [`prompted_input`] by the plain forward
/// pass, every row running the prompt's positions itself: the reference [`prompted_hidden`]
/// is tested against.
pub fn prompted_hidden_plain(
    model: &Model,
    prompt: Tensor<2>,
    padded: &Padded,
) -> Result<Tensor<3>> {
    let (inputs, lengths) = prompted_input(model, prompt, padded);
    model.forward_prefixed(None, inputs, &lengths)
}

/// Final hidden states `[rows, n_virtual + width, d_model]` for right-padded token rows with an
/// optional prompt `[n_virtual, d_model]` prepended to every row, as PEFT does for causal LMs:
/// the prompt positions are always attended to, and positions run 0.. over prompt and tokens.
/// The prompt's states are computed once and shared by the rows (`Model::forward_prefixed`).
pub fn prompted_hidden(
    model: &Model,
    prompt: Option<Tensor<2>>,
    padded: &Padded,
) -> Result<Tensor<3>> {
    let tokens = model.embed(token_ids(model, padded)); // [b, w, d]
    model.forward_prefixed(prompt, tokens, &padded.lengths)
}

fn host_tensor(model: &Model, values: Vec<f32>, n: usize, d: usize) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [n, d]), &model.device())
}

/// A standard normal sample (Box-Muller), so the init needs no extra crate.
fn normal(rng: &mut StdRng) -> f32 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Log-probabilities `[n]` of the batch's target tokens, with an optional soft prompt.
pub fn target_logprobs(
    model: &Model,
    prompt: Option<Tensor<2>>,
    batch: &ScoredBatch,
) -> Result<Tensor<1>> {
    let hidden = prompted_hidden(model, prompt, &batch.padded)?;
    Ok(model.target_logprobs(hidden, &batch.positions, &batch.targets))
}

/// Mean cross-entropy over the target tokens (as transformers' causal-LM loss with -100 labels):
/// the loss the page shows, and the one model tuning trains on.
pub fn loss(model: &Model, prompt: Option<Tensor<2>>, batch: &ScoredBatch) -> Result<Tensor<1>> {
    require_targets(batch)?;
    Ok(target_logprobs(model, prompt, batch)?.mean().neg())
}

/// The gradient a prompt-tuning step uses: `batch`'s summed target loss divided by
/// `total_targets` and its gradient with respect to the prompt `[n_virtual, d_model]` alone,
/// from its own autodiff graph on its own copy of the prompt. With `total_targets` the batch's
/// own count this is [`loss`] and its gradient; a batch split in parts (threads, or the page's
/// engines) passes the whole batch's count, so the parts' values add up to the whole's.
pub fn prompt_gradient(
    model: &Model,
    prompt: Tensor<2>,
    batch: &ScoredBatch,
    total_targets: usize,
) -> Result<(Tensor<1>, Tensor<2>)> {
    let leaf = prompt.detach().require_grad();
    let loss = target_logprobs(model, Some(leaf.clone()), batch)?
        .sum()
        .div_scalar(-(total_targets as f64));
    let mut grads = loss.backward();
    let grad = leaf
        .grad_remove(&mut grads)
        .ok_or_else(|| Error::internal("the soft prompt received no gradient"))?;
    Ok((loss.detach(), grad))
}

/// A loss needs at least one scored token.
pub(crate) fn require_targets(batch: &ScoredBatch) -> Result<()> {
    if batch.targets.is_empty() {
        return Err(Error::TaskInvalid {
            detail: "the batch has no target tokens: every example needs an output".into(),
        });
    }
    Ok(())
}
