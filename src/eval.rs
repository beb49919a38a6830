//! Held-out accuracy: exact match of the greedy continuation for generation tasks, verbalizer
//! scoring (the most probable label) for classification tasks.

use crate::backend::{map_threads, read_f32};
use crate::batch::{ScoredBatch, Sequence};
use crate::error::Result;
use crate::generate::{GenerateOptions, Prompting, generate};
use crate::loader::LoadedModel;
use crate::soft_prompt::target_logprobs;
use crate::tasks::{Example, TaskKind, check_labels};

/// Rows per forward pass during evaluation: bounds memory (each row's answer is its own, whatever
/// rows share its pass, so a pool may split evaluations anywhere: src/pool.rs). Each pass reads
/// every weight, whatever its rows: 64 rows score a 135M model's 45 held-out examples (its share
/// of antonyms' 89 on two engines) in one pass, 1.2 s natively against 1.5-1.9 s in passes of 32;
/// a pass of 64 rows holds their logits at one position, 12.6 MB for a 49,152-token vocabulary.
pub const EVAL_ROWS: usize = 64;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub input: String,
    pub expected: String,
    pub predicted: String,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub predictions: Vec<Prediction>,
}

impl EvalReport {
    /// Each example against the answer predicted for it (in the same order).
    pub fn scored(examples: &[Example], predicted: Vec<String>) -> Self {
        let predictions = examples
            .iter()
            .zip(predicted)
            .map(|(ex, predicted)| Prediction {
                correct: predicted.trim() == ex.output.trim(),
                input: ex.input.clone(),
                expected: ex.output.clone(),
                predicted,
            })
            .collect();
        Self { predictions }
    }

    pub fn accuracy(&self) -> f32 {
        let n = self.predictions.len().max(1);
        self.predictions.iter().filter(|p| p.correct).count() as f32 / n as f32
    }
}

pub async fn evaluate(
    lm: &LoadedModel,
    prompting: &Prompting,
    examples: &[Example],
    kind: &TaskKind,
) -> Result<EvalReport> {
    let predicted = match kind {
        TaskKind::Generate => generated_answers(lm, prompting, examples).await?,
        TaskKind::Classify { labels } => {
            classified_answers(lm, prompting, examples, labels).await?
        }
    };
    Ok(EvalReport::scored(examples, predicted))
}

async fn generated_answers(
    lm: &LoadedModel,
    prompting: &Prompting,
    examples: &[Example],
) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(EVAL_ROWS) {
        // One token more than each answer: room for the newline that ends it.
        let budgets = chunk
            .iter()
            .map(|ex| Ok(lm.tokenizer.encode(&ex.output)?.len() + 1))
            .collect::<Result<Vec<usize>>>()?;
        let opts = GenerateOptions {
            max_new_tokens: budgets.iter().copied().max().unwrap_or(1),
            budgets,
            ..GenerateOptions::default()
        };
        let inputs: Vec<&str> = chunk.iter().map(|e| e.input.as_str()).collect();
        out.extend(
            generate(lm, prompting, &inputs, &opts)
                .await?
                .into_iter()
                .map(|g| g.text),
        );
    }
    Ok(out)
}

/// Scores `log P(label + answer end | input)` for every label and picks the best.
async fn classified_answers(
    lm: &LoadedModel,
    prompting: &Prompting,
    examples: &[Example],
    labels: &[String],
) -> Result<Vec<String>> {
    check_labels(labels)?;
    let pad = lm.tokenizer.pad_id();
    let mut seqs = Vec::with_capacity(examples.len() * labels.len());
    for ex in examples {
        for label in labels {
            seqs.push(Sequence::for_example(
                &lm.tokenizer,
                &prompting.prefix,
                &Example {
                    input: ex.input.clone(),
                    output: label.clone(),
                },
            )?);
        }
    }
    let mut scores = vec![0.0f32; seqs.len()];
    let rows_per_chunk = (EVAL_ROWS / labels.len()).max(1) * labels.len();
    let batches = seqs
        .chunks(rows_per_chunk)
        .map(|chunk| ScoredBatch::new(chunk, prompting.n_virtual(), pad))
        .collect::<Result<Vec<_>>>()?;
    // The chunks' forward passes spread over the CPU's threads; their values are read after.
    let (model, soft) = (lm.model.inference(), prompting.inference().soft);
    let logprobs = map_threads(&lm.model.device(), &batches, |batch| {
        target_logprobs(&model, soft.clone(), batch)
    });
    for (c, (batch, logprobs)) in batches.iter().zip(logprobs).enumerate() {
        for (k, v) in read_f32(logprobs?).await?.into_iter().enumerate() {
            scores[c * rows_per_chunk + batch.row_of[k]] += v;
        }
    }
    Ok(scores
        .chunks(labels.len())
        .map(|s| {
            let best = (0..labels.len())
                .max_by(|&a, &b| s[a].total_cmp(&s[b]))
                .unwrap_or(0);
            labels[best].clone()
        })
        .collect())
}
