//! Data parallelism over engines that share nothing (the page's pool of workers, each with its own
//! copy of the frozen model): a batch's rows split in parts, each part's loss and prompt gradient
//! computed by a helper while this engine computes the first part, the parts added. Prompt tuning
//! makes this cheap: the only gradient is the prompt's, a few thousand numbers. Held-out scoring
//! splits the same way, by example.

use std::future::Future;
use std::pin::Pin;

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backend::read_f32;
use crate::batch::{ScoredBatch, Sequence};
use crate::error::{Error, Result};
use crate::eval::{EvalReport, evaluate};
use crate::generate::Prompting;
use crate::loader::LoadedModel;
use crate::model::Model;
use crate::soft_prompt::{SoftPrompt, prompt_gradient};
use crate::tasks::{Example, TaskKind};

/// One part as a helper receives it: the rows' token ids and where each row's answer starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartRow {
    pub ids: Vec<u32>,
    pub n_context: usize,
}

/// A part's result: its summed target loss divided by the whole batch's target count, and its
/// prompt gradient `[n_virtual, d_model]` row-major (so parts add up to the batch's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartResult {
    pub loss: f32,
    pub grad: Vec<f32>,
}

/// The whole batch's shape a part is computed for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartShape {
    pub n_virtual: usize,
    pub pad_id: u32,
    /// Target tokens in the whole batch: every part divides its summed loss by this.
    pub total_targets: usize,
}

pub type PartsFuture<'a> = Pin<Box<dyn Future<Output = Vec<Option<PartResult>>> + 'a>>;
/// Each part's predicted answers, in its examples' order (None: the part failed).
pub type AnswersFuture<'a> = Pin<Box<dyn Future<Output = Vec<Option<Vec<String>>>> + 'a>>;

/// Engines elsewhere that compute batch parts. `compute` must start the work before it returns
/// (the caller computes its own part meanwhile); a part that failed (its helper died) comes back
/// as `None`, and the caller computes it itself.
pub trait Helpers {
    /// How many helpers take parts now (they join as they finish loading, leave when they die).
    fn count(&self) -> usize;
    fn compute<'a>(
        &'a self,
        prompt: Vec<f32>,
        shape: PartShape,
        parts: Vec<Vec<PartRow>>,
    ) -> PartsFuture<'a>;
    /// Starts scoring each part of some held-out examples with the soft prompt `prompt`
    /// (`[n_virtual, d_model]` row-major), one part per helper, as `compute` starts its parts.
    fn evaluate<'a>(
        &'a self,
        prompt: Vec<f32>,
        n_virtual: usize,
        kind: &TaskKind,
        parts: Vec<Vec<Example>>,
    ) -> AnswersFuture<'a>;
}

/// A part's rows as the batch held them.
fn rows_of(part: &ScoredBatch) -> Vec<PartRow> {
    part.sequences()
        .iter()
        .map(|s| PartRow {
            ids: s.ids.clone(),
            n_context: s.n_context,
        })
        .collect()
}

/// Computes a part a helper was sent: what `Helpers::compute` answers with, on the helper's side.
pub async fn compute_part(
    model: &Model,
    prompt: Vec<f32>,
    shape: PartShape,
    rows: Vec<PartRow>,
) -> Result<PartResult> {
    let d = model.config.d_model;
    let seqs: Vec<Sequence> = rows
        .into_iter()
        .map(|r| Sequence {
            ids: r.ids,
            n_context: r.n_context,
        })
        .collect();
    let part = ScoredBatch::new(&seqs, shape.n_virtual, shape.pad_id)?;
    if prompt.len() != shape.n_virtual * d {
        return Err(Error::setting(format!(
            "a batch part came with {} prompt values, and {} virtual tokens of this model's {d} dimensions need {}: the engines hold different models; reload the page",
            prompt.len(),
            shape.n_virtual,
            shape.n_virtual * d
        )));
    }
    let prompt = Tensor::from_data(
        TensorData::new(prompt, [shape.n_virtual, d]),
        &model.device(),
    );
    let (loss, grad) = prompt_gradient(model, prompt, &part, shape.total_targets)?;
    Ok(PartResult {
        loss: read_f32(loss).await?[0],
        grad: read_f32(grad).await?,
    })
}

/// The batch's mean loss and prompt gradient, its rows split between this engine and the helpers
/// (shortest rows together, as the native split), the parts added in a fixed order.
pub async fn pooled_loss_and_grad(
    model: &Model,
    prompt: Tensor<2>,
    batch: &ScoredBatch,
    helpers: &dyn Helpers,
) -> Result<(Tensor<1>, Tensor<2>)> {
    crate::soft_prompt::require_targets(batch)?;
    let [n_virtual, d] = prompt.dims();
    let shape = PartShape {
        n_virtual,
        pad_id: batch.pad_id(),
        total_targets: batch.targets.len(),
    };
    let parts = batch.split(helpers.count() + 1);
    let values = read_f32(prompt.clone()).await?;
    let sent: Vec<Vec<PartRow>> = parts[1..].iter().map(rows_of).collect();
    let remote = helpers.compute(values, shape, sent);
    let (mut loss, mut grad) =
        prompt_gradient(model, prompt.clone(), &parts[0], shape.total_targets)?;
    let device = model.device();
    let results = remote.await;
    for (i, part) in parts[1..].iter().enumerate() {
        // A missing or misshapen answer counts as a failed part: computed here instead.
        let answer = results.get(i).cloned().flatten();
        let (l, g) = match answer.filter(|r| r.grad.len() == n_virtual * d && r.loss.is_finite()) {
            Some(r) => (
                Tensor::from_data(TensorData::new(vec![r.loss], [1]), &device),
                Tensor::from_data(TensorData::new(r.grad, [n_virtual, d]), &device),
            ),
            None => prompt_gradient(model, prompt.clone(), part, shape.total_targets)?,
        };
        loss = loss + l;
        grad = grad + g;
    }
    Ok((loss, grad))
}

/// Scores examples a helper was sent: each one's predicted answer with the prompt `values`
/// (`[n_virtual, d_model]`), what `Helpers::evaluate` answers with on the helper's side.
pub async fn evaluate_part(
    lm: &LoadedModel,
    values: &[f32],
    n_virtual: usize,
    kind: &TaskKind,
    examples: &[Example],
) -> Result<Vec<String>> {
    let prompt = SoftPrompt::from_values(lm, values, n_virtual)?;
    let report = evaluate(lm, &Prompting::soft(prompt.values()), examples, kind).await?;
    Ok(report
        .predictions
        .into_iter()
        .map(|p| p.predicted)
        .collect())
}

/// Held-out predictions with the soft prompt `prompt`, the examples split evenly between the
/// helpers and this engine (an example's answer does not depend on the rows scored with it, so
/// the answers are one engine's); this engine takes the last part; a part whose helper failed
/// is scored here too. With no helpers (or none free) this engine scores them all.
pub async fn pooled_evaluate(
    lm: &LoadedModel,
    prompt: Tensor<2>,
    examples: &[Example],
    kind: &TaskKind,
    helpers: Option<&dyn Helpers>,
) -> Result<EvalReport> {
    let count = helpers.map_or(0, |h| h.count());
    let engines = (count + 1).clamp(1, examples.len().max(1));
    let parts: Vec<&[Example]> = examples
        .chunks(examples.len().div_ceil(engines).max(1))
        .collect();
    let split = parts.split_last().filter(|(_, sent)| !sent.is_empty());
    let (Some(helpers), Some((here, sent))) = (helpers, split) else {
        return evaluate(lm, &Prompting::soft(prompt), examples, kind).await;
    };
    let [n_virtual, _] = prompt.dims();
    let values = read_f32(prompt.clone()).await?;
    let remote = helpers.evaluate(
        values,
        n_virtual,
        kind,
        sent.iter().map(|p| p.to_vec()).collect(),
    );
    let prompting = Prompting::soft(prompt);
    let last = evaluate(lm, &prompting, here, kind).await?;
    let answers = remote.await;
    let mut report = EvalReport {
        predictions: Vec::new(),
    };
    for (i, part) in sent.iter().enumerate() {
        let answer = answers.get(i).cloned().flatten();
        let more = match answer.filter(|a| a.len() == part.len()) {
            Some(predicted) => EvalReport::scored(part, predicted),
            None => evaluate(lm, &prompting, part, kind).await?,
        };
        report.predictions.extend(more.predictions);
    }
    report.predictions.extend(last.predictions);
    Ok(report)
}
