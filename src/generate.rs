//! Generation with an optional text prefix and soft prompt. The soft prompt and the inputs are
//! read once (prefill), then each new token with the earlier keys and values from a cache; its
//! position counts the virtual tokens (PEFT 0.21's cached generate does not; see
//! tests/reference/make_fixtures.py).

use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::backend::{read_f32, read_ints};
use crate::batch::{ANSWER_END, Padded, Sequence};
use crate::error::{Error, Result};
use crate::loader::LoadedModel;

/// What conditions the model: a text prefix (a hand-written prompt, may be empty) and/or a soft
/// prompt `[n_virtual, d_model]`.
#[derive(Debug, Clone, Default)]
pub struct Prompting {
    pub prefix: String,
    pub soft: Option<Tensor<2>>,
}

impl Prompting {
    pub fn text(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            soft: None,
        }
    }

    pub fn soft(prompt: Tensor<2>) -> Self {
        Self {
            prefix: String::new(),
            soft: Some(prompt),
        }
    }

    /// The same prompting off the autodiff graph (see [`crate::model::Model::inference`]).
    pub fn inference(&self) -> Self {
        Self {
            prefix: self.prefix.clone(),
            soft: self.soft.clone().map(Tensor::without_autodiff),
        }
    }

    pub fn n_virtual(&self) -> usize {
        self.soft.as_ref().map_or(0, |p| p.dims()[0])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    Greedy,
    Sample {
        temperature: f32,
        top_k: Option<usize>,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// New tokens at most, for every row.
    pub max_new_tokens: usize,
    /// Each row's own budget under that (empty: `max_new_tokens` for every row): an evaluation
    /// gives each example its answer's length, so no answer depends on the rows batched with it.
    pub budgets: Vec<usize>,
    pub sampling: Sampling,
    /// Stop after a token that contains a newline (the answer end the prompt is trained for).
    pub stop_at_newline: bool,
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 16,
            budgets: Vec::new(),
            sampling: Sampling::Greedy,
            stop_at_newline: true,
            stop_at_eos: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new token ids (the stop token included when one was met).
    pub ids: Vec<u32>,
    /// The continuation's text, cut before the first newline when stopping at newlines.
    pub text: String,
}

/// Continues each input; rows are batched (right-padded) and finish independently.
pub async fn generate(
    lm: &LoadedModel,
    prompting: &Prompting,
    inputs: &[&str],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>> {
    check_sampling(&opts.sampling)?;
    let (model, prompting) = (&lm.model.inference(), &prompting.inference());
    let n_virtual = prompting.n_virtual();
    let max_len = model.config.n_positions;
    let mut rows = context_rows(lm, prompting, inputs)?;
    let mut new_ids: Vec<Vec<u32>> = vec![Vec::new(); rows.len()];
    let mut rng = match &opts.sampling {
        Sampling::Sample { seed, .. } => Some(StdRng::seed_from_u64(*seed)),
        Sampling::Greedy => None,
    };
    let device = model.device();
    // The prompt and the inputs are read once; then each new token reads only itself, with the
    // earlier positions' keys and values from the cache.
    let row_refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let padded = Padded::new(&row_refs, lm.tokenizer.pad_id());
    let (b, w) = (padded.rows(), padded.width);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(padded.ids.clone(), [b, w]), &device);
    let (hidden, mut cache) =
        model.prefill(prompting.soft.clone(), model.embed(ids), &padded.lengths)?;
    let stride = n_virtual + w;
    let last: Vec<usize> = (0..b)
        .map(|r| r * stride + n_virtual + padded.lengths[r] - 1)
        .collect();
    let mut logits = model.logits_at(hidden, &last); // [rows, vocab]
    // The rows still generating, as indices into `rows`: the cache holds only these.
    let mut active: Vec<usize> = (0..b).collect();
    for step in 0..opts.max_new_tokens {
        let next = choose(logits, &opts.sampling, rng.as_mut()).await?;
        // The positions in `active` of the rows that go on after this token.
        let mut going = Vec::with_capacity(active.len());
        for (i, (&r, &token)) in active.iter().zip(&next).enumerate() {
            rows[r].push(token);
            new_ids[r].push(token);
            let eos = opts.stop_at_eos && lm.tokenizer.is_eos(token);
            let newline =
                opts.stop_at_newline && lm.tokenizer.token_text(token).contains(ANSWER_END);
            let spent = opts.budgets.get(r).is_some_and(|&b| new_ids[r].len() >= b);
            if !(eos || newline || spent || rows[r].len() + n_virtual >= max_len) {
                going.push(i);
            }
        }
        if going.is_empty() || step + 1 == opts.max_new_tokens {
            break;
        }
        cache.retain(&going);
        let next: Vec<u32> = going.iter().map(|&i| next[i]).collect();
        active = going.iter().map(|&i| active[i]).collect();
        let next = Tensor::<2, Int>::from_data(TensorData::new(next, [active.len(), 1]), &device);
        logits = model.logits(model.decode(&mut cache, model.embed(next)));
    }
    let finish = |ids| finish(lm, opts, ids);
    new_ids.into_iter().map(finish).collect()
}

fn check_sampling(sampling: &Sampling) -> Result<()> {
    if let Sampling::Sample {
        temperature, top_k, ..
    } = sampling
        && (!(temperature.is_finite() && *temperature > 0.0) || *top_k == Some(0))
    {
        return Err(Error::setting(
            "sampling needs a positive temperature and top-k of at least 1",
        ));
    }
    Ok(())
}

/// Each input's ids after the text prompt, checked to leave room for one new token.
fn context_rows(lm: &LoadedModel, prompting: &Prompting, inputs: &[&str]) -> Result<Vec<Vec<u32>>> {
    let n_virtual = prompting.n_virtual();
    let max_len = lm.model.config.n_positions;
    let row = |input: &&str| {
        let seq = Sequence::context(&lm.tokenizer, &prompting.prefix, input)?;
        if seq.ids.is_empty() && n_virtual == 0 {
            return Err(Error::setting(
                "nothing to continue: the input is empty and there is no prompt",
            ));
        }
        if seq.ids.len() + n_virtual >= max_len {
            return Err(Error::SequenceTooLong {
                what: format!("input {input:?}"),
                found: seq.ids.len() + n_virtual + 1,
                max: max_len,
            });
        }
        Ok(seq.ids)
    };
    inputs.iter().map(row).collect()
}

/// The next token of every row: greedy, or sampled with `rng`.
async fn choose(
    logits: Tensor<2>,
    sampling: &Sampling,
    rng: Option<&mut StdRng>,
) -> Result<Vec<u32>> {
    match (sampling, rng) {
        (
            Sampling::Sample {
                temperature, top_k, ..
            },
            Some(rng),
        ) => sample(logits, *temperature, *top_k, rng).await,
        _ => argmax(logits).await,
    }
}

/// A row's new tokens as text: the end token left out, cut at the answer's end.
fn finish(lm: &LoadedModel, opts: &GenerateOptions, ids: Vec<u32>) -> Result<Generation> {
    let visible: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|&t| !(opts.stop_at_eos && lm.tokenizer.is_eos(t)))
        .collect();
    let mut text = lm.tokenizer.decode(&visible)?;
    if opts.stop_at_newline
        && let Some(cut) = text.find(ANSWER_END)
    {
        text.truncate(cut);
    }
    Ok(Generation { ids, text })
}

async fn argmax(logits: Tensor<2>) -> Result<Vec<u32>> {
    let [n, _] = logits.dims();
    let idx: Tensor<2, Int> = logits.argmax(1); // [n, 1]
    Ok(read_ints(idx.reshape([n]))
        .await?
        .into_iter()
        .map(|x| x as u32)
        .collect())
}

/// Temperature and top-k sampling on the host (one row of logits per sequence is small).
async fn sample(
    logits: Tensor<2>,
    temperature: f32,
    top_k: Option<usize>,
    rng: &mut StdRng,
) -> Result<Vec<u32>> {
    let [n, vocab] = logits.dims();
    let all = read_f32(logits).await?;
    let mut out = Vec::with_capacity(n);
    for row in all.chunks(vocab) {
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        order.truncate(top_k.unwrap_or(vocab).min(vocab));
        let max = row[order[0]];
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| f64::from((row[i] - max) / temperature).exp())
            .collect();
        let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut pick = order[order.len() - 1];
        for (&i, w) in order.iter().zip(&weights) {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        out.push(pick as u32);
    }
    Ok(out)
}
