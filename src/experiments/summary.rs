//! An experiment's results: each run's, each arm's across its seeds, and the summary the
//! command line and the page draw their tables from (`report.rs`).

use serde::Serialize;

use super::ExperimentName;
use super::plan::RunSpec;
use crate::eval::EvalReport;
pub use crate::footprint::Footprint;
use crate::tasks::Task;

/// One finished run: its arm, seed, held-out accuracy and final loss; for transfer, accuracy by
/// step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub arm: usize,
    pub seed: u64,
    pub accuracy: f32,
    pub loss: Option<f32>,
    pub curve: Vec<(usize, f32)>,
    /// What the run changed (scale's trainings).
    pub footprint: Option<Footprint>,
    #[serde(skip)]
    pub(super) predictions: Vec<String>,
}

/// An arm across its seeds (mean, min and max are NaN until a run of it finishes).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmSummary {
    pub label: String,
    /// The model its runs ran on (an index into the summary's `models`).
    pub model: usize,
    pub mean: f32,
    pub min: f32,
    pub max: f32,
    pub runs: usize,
    /// Mean held-out accuracy by step over the arm's runs, for transfer (empty otherwise).
    pub curve: Vec<(usize, f32)>,
}

impl ArmSummary {
    pub(super) fn of(label: &str, model: usize, runs: &[&RunResult]) -> Self {
        let acc: Vec<f32> = runs.iter().map(|r| r.accuracy).collect();
        let n = acc.len() as f32;
        let mut curve: Vec<(usize, f32)> = Vec::new();
        if let Some(first) = runs.first() {
            for (k, &(step, _)) in first.curve.iter().enumerate() {
                let sum: f32 = runs
                    .iter()
                    .map(|r| r.curve.get(k).map_or(0.0, |c| c.1))
                    .sum();
                curve.push((step, sum / n));
            }
        }
        let fold = |f: fn(f32, f32) -> f32| acc.iter().copied().reduce(f).unwrap_or(f32::NAN);
        Self {
            label: label.to_string(),
            model,
            mean: if acc.is_empty() {
                f32::NAN
            } else {
                acc.iter().sum::<f32>() / n
            },
            min: fold(f32::min),
            max: fold(f32::max),
            runs: acc.len(),
            curve,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSummary {
    pub name: ExperimentName,
    pub title: &'static str,
    pub finding: &'static str,
    pub task: String,
    pub steps: usize,
    pub seeds: usize,
    pub arms: Vec<ArmSummary>,
    pub runs: Vec<RunResult>,
    /// The models the arms ran on (scale; empty: the loaded model).
    pub models: Vec<ModelSize>,
}

impl ExperimentSummary {
    /// `arm`'s label with its model's name when there is a family (scale).
    pub fn label(&self, arm: &ArmSummary) -> String {
        model_label(&self.models, &arm.label, arm.model)
    }
}

pub(super) fn model_label(models: &[ModelSize], label: &str, model: usize) -> String {
    match models.get(model) {
        Some(size) => format!("{}: {label}", size.name),
        None => label.to_string(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSize {
    pub name: String,
    /// Counted when its first run starts (0 before).
    pub parameters: u64,
}

/// A text prompt's run: its held-out evaluation.
pub(super) fn text_result(spec: &RunSpec, report: EvalReport) -> RunResult {
    RunResult {
        arm: spec.arm,
        seed: spec.seed,
        accuracy: report.accuracy(),
        loss: None,
        curve: Vec::new(),
        footprint: None,
        predictions: report
            .predictions
            .into_iter()
            .map(|p| p.predicted)
            .collect(),
    }
}

/// The ensemble's majority vote over its `members`' answers (ties: the earliest prompt's answer).
pub(super) fn vote(members: &[&RunResult], task: &Task, spec: &RunSpec) -> RunResult {
    let expected: Vec<&str> = task.test.iter().map(|e| e.output.trim()).collect();
    let mut predictions = Vec::with_capacity(expected.len());
    let mut correct = 0;
    for (i, want) in expected.iter().enumerate() {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for m in members {
            let p = m.predictions.get(i).map_or("", |p| p.trim());
            match counts.iter_mut().find(|(q, _)| *q == p) {
                Some((_, c)) => *c += 1,
                None => counts.push((p, 1)),
            }
        }
        // max_by_key keeps the last of equals: reversed, the earliest prompt wins a tie.
        let winner = counts
            .iter()
            .rev()
            .max_by_key(|(_, c)| *c)
            .map_or("", |(p, _)| *p);
        correct += usize::from(winner == *want);
        predictions.push(winner.to_string());
    }
    RunResult {
        arm: spec.arm,
        seed: spec.seed,
        accuracy: correct as f32 / expected.len().max(1) as f32,
        loss: None,
        curve: Vec::new(),
        footprint: None,
        predictions,
    }
}
