//! One prompt-tuning run of an experiment as a job any engine can do: the engine that plans the
//! experiment runs it step by step, or hands it to a helper engine of the page's pool, which has
//! its own copy of the frozen model (so an experiment's independent trainings run side by side).
//! A job carries everything its run needs but the model and the task; its result carries
//! everything the experiment keeps. The same seed on the same model gives the same result on
//! any engine.

use serde::{Deserialize, Serialize};

use crate::backend::read_f32;
use crate::error::Result;
use crate::eval::evaluate;
use crate::generate::Prompting;
use crate::loader::LoadedModel;
use crate::run::Run;
use crate::settings::Settings;
use crate::soft_prompt::SoftPrompt;
use crate::tasks::Task;

/// A training run to do: its place in the experiment's plan, its settings (seed and steps
/// included), and the prompt it starts from when not a fresh one (transfer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub index: usize,
    pub settings: Settings,
    pub given: Option<Vec<f32>>,
    /// Held-out accuracy every this many steps as well as at the end (transfer's curve).
    pub curve_every: Option<usize>,
    /// The trained prompt's values come back (transfer's source runs: later runs start from it).
    pub keep_prompt: bool,
}

/// What a finished job hands back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub index: usize,
    pub accuracy: f32,
    pub loss: f32,
    pub curve: Vec<(usize, f32)>,
    /// Each held-out example's answer (the ensemble's vote counts them).
    pub predictions: Vec<String>,
    pub prompt: Option<Vec<f32>>,
    pub steps: usize,
}

/// A job in progress on one engine.
pub struct JobRun {
    job: Job,
    run: Run,
    curve: Vec<(usize, f32)>,
}

impl JobRun {
    pub fn start(lm: &LoadedModel, task: &Task, job: Job) -> Result<Self> {
        let settings = &job.settings;
        let given = match &job.given {
            Some(values) => Some((
                SoftPrompt::from_values(lm, values, settings.virtual_tokens)?,
                settings.prompt_init(&task.kind)?,
            )),
            None => None,
        };
        let run = Run::start(lm, task, settings.clone(), given)?;
        Ok(Self {
            job,
            run,
            curve: Vec::new(),
        })
    }

    /// One training step; the last one ends in the held-out evaluation and the job's result.
    pub async fn step(&mut self, lm: &LoadedModel, task: &Task) -> Result<Option<JobResult>> {
        let stats = self.run.step(lm, None).await?;
        let steps = self.job.settings.steps;
        let curve_due = self
            .job
            .curve_every
            .is_some_and(|every| stats.step % every == 0 || stats.step == steps);
        if !curve_due && stats.step < steps {
            return Ok(None);
        }
        let prompting = Prompting::soft(self.run.trainer.prompt.values());
        let report = evaluate(lm, &prompting, &task.test, &task.kind).await?;
        let accuracy = report.accuracy();
        if curve_due {
            self.curve.push((stats.step, accuracy));
        }
        if stats.step < steps {
            return Ok(None);
        }
        let prompt = match self.job.keep_prompt {
            true => Some(read_f32(self.run.trainer.prompt.values()).await?),
            false => None,
        };
        Ok(Some(JobResult {
            index: self.job.index,
            accuracy,
            loss: stats.loss,
            curve: std::mem::take(&mut self.curve),
            predictions: report
                .predictions
                .into_iter()
                .map(|p| p.predicted)
                .collect(),
            prompt,
            steps,
        }))
    }
}
