//! One training of an experiment as a job any engine can do: the engine that plans the
//! experiment runs it step by step, or hands it to a helper engine of the page's pool, which has
//! its own copy of the frozen model (so an experiment's independent trainings run side by side).
//! A job carries everything its run needs but the model and the task; its result carries
//! everything the experiment keeps. The same seed on the same model gives the same result on
//! any engine.

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::backend::read_f32;
use crate::error::Result;
use crate::eval::evaluate;
use crate::footprint::{Base, Footprint};
use crate::generate::Prompting;
use crate::loader::LoadedModel;
use crate::model_tuning::{ModelTuningConfig, ModelTuningRun};
use crate::pool::{Helpers, pooled_evaluate};
use crate::run::Run;
use crate::settings::Settings;
use crate::soft_prompt::SoftPrompt;
use crate::tasks::Task;

/// What a job trains: a soft prompt on the frozen model, or (scale's comparison) every weight
/// of a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tuning {
    Prompt,
    Model,
}

/// A training run to do: its place in the experiment's plan, the model it runs on, its settings
/// (seed, steps and batch included), and the prompt it starts from when not a fresh one (transfer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub index: usize,
    /// The family member it runs on (scale: an index into the experiment's models; the engine
    /// loads it first), and then it measures what it changed (`Footprint`). None: the model
    /// the engine holds.
    pub model: Option<usize>,
    pub tuning: Tuning,
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
    /// What the run changed (a job on a family member: scale).
    pub footprint: Option<Footprint>,
}

enum Training {
    Prompt(Box<Run>),
    Model(Box<ModelTuningRun>),
}

/// A job in progress on one engine.
pub struct JobRun {
    job: Job,
    training: Training,
    /// The base as the run found it (jobs that measure their footprint), taken at the first step.
    base: Option<Base>,
    curve: Vec<(usize, f32)>,
}

impl JobRun {
    pub fn start(lm: &LoadedModel, task: &Task, job: Job) -> Result<Self> {
        let settings = &job.settings;
        let training = match job.tuning {
            Tuning::Prompt => {
                let given = match &job.given {
                    Some(values) => Some((
                        SoftPrompt::from_values(lm, values, settings.virtual_tokens)?,
                        settings.prompt_init(&task.kind)?,
                    )),
                    None => None,
                };
                let run = Run::start(lm, task, settings.clone(), given)?;
                Training::Prompt(Box::new(run))
            }
            Tuning::Model => {
                let config = ModelTuningConfig::default();
                let run = ModelTuningRun::start(lm, task, settings.batch, settings.seed, config)?;
                Training::Model(Box::new(run))
            }
        };
        Ok(Self {
            job,
            training,
            base: None,
            curve: Vec::new(),
        })
    }

    /// One training step on `lm` (the model the job names); the last one ends in the held-out
    /// evaluation and the job's result. A prompt tuning's steps and evaluations are shared with
    /// `helpers` (engines holding the same model: idle ones of the page's pool) when given.
    pub async fn step(
        &mut self,
        lm: &LoadedModel,
        task: &Task,
        helpers: Option<&dyn Helpers>,
    ) -> Result<Option<JobResult>> {
        if self.job.model.is_some() && self.base.is_none() {
            self.base = Some(Base::of(&lm.model).await?);
        }
        let stats = match &mut self.training {
            Training::Prompt(run) => run.step(lm, helpers).await?,
            Training::Model(run) => run.step(lm).await?,
        };
        let steps = self.job.settings.steps;
        let curve_due = self
            .job
            .curve_every
            .is_some_and(|every| stats.step % every == 0 || stats.step == steps);
        if !curve_due && stats.step < steps {
            return Ok(None);
        }
        // Model tuning is evaluated on its tuned copy with no prompt, as it was trained.
        let tuned = match &self.training {
            Training::Prompt(_) => None,
            Training::Model(run) => Some(run.tuned(lm)),
        };
        let evaluated = tuned.as_ref().unwrap_or(lm);
        let report = match &self.training {
            Training::Prompt(run) => {
                let prompt = run.trainer.prompt.values();
                pooled_evaluate(lm, prompt, &task.test, &task.kind, helpers).await?
            }
            Training::Model(_) => {
                evaluate(evaluated, &Prompting::text(""), &task.test, &task.kind).await?
            }
        };
        let accuracy = report.accuracy();
        if curve_due {
            self.curve.push((stats.step, accuracy));
        }
        if stats.step < steps {
            return Ok(None);
        }
        let footprint = match &self.base {
            Some(base) => {
                let learnt = self.learnt(lm);
                Some(base.footprint(&lm.model, &evaluated.model, learnt).await?)
            }
            None => None,
        };
        let prompt = match &self.training {
            Training::Prompt(run) if self.job.keep_prompt => {
                Some(read_f32(run.trainer.prompt.values()).await?)
            }
            _ => None,
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
            footprint,
        }))
    }

    /// Training steps still to take.
    pub fn steps_left(&self) -> usize {
        let done = match &self.training {
            Training::Prompt(run) => run.trainer.step,
            Training::Model(run) => run.tuner.step,
        };
        self.job.settings.steps.saturating_sub(done)
    }

    /// Numbers the run trains: the prompt's, or every weight of the model's copy.
    fn learnt(&self, lm: &LoadedModel) -> u64 {
        match self.job.tuning {
            Tuning::Prompt => (self.job.settings.virtual_tokens * lm.model.config.d_model) as u64,
            Tuning::Model => lm.model.num_params() as u64,
        }
    }
}
