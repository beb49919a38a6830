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
use crate::eval::{EvalReport, evaluate};
use crate::footprint::{Base, Footprint};
use crate::generate::Prompting;
use crate::loader::LoadedModel;
use crate::model_tuning::{ModelTuningConfig, ModelTuningRun};
use crate::pool::{Helpers, pooled_evaluate};
use crate::run::Run;
use crate::settings::Settings;
use crate::soft_prompt::SoftPrompt;
use crate::tasks::Task;
use crate::train::StepStats;

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

/// The training a job runs: each question about it answered here, once per kind.
enum Training {
    Prompt(Box<Run>),
    Model(Box<ModelTuningRun>),
}

impl Training {
    fn start(lm: &LoadedModel, task: &Task, job: &Job) -> Result<Self> {
        let settings = &job.settings;
        Ok(match job.tuning {
            Tuning::Prompt => {
                let given = match &job.given {
                    Some(values) => Some((
                        SoftPrompt::from_values(lm, values, settings.virtual_tokens)?,
                        settings.prompt_init(&task.kind)?,
                    )),
                    None => None,
                };
                Self::Prompt(Box::new(Run::start(lm, task, settings.clone(), given)?))
            }
            Tuning::Model => {
                let config = ModelTuningConfig::default();
                let run = ModelTuningRun::start(lm, task, settings.batch, settings.seed, config)?;
                Self::Model(Box::new(run))
            }
        })
    }

    /// One step; a prompt tuning's shared with `helpers`.
    async fn step(&mut self, lm: &LoadedModel, helpers: Option<&dyn Helpers>) -> Result<StepStats> {
        match self {
            Self::Prompt(run) => run.step(lm, helpers).await,
            Self::Model(run) => run.step(lm).await,
        }
    }

    fn steps_done(&self) -> usize {
        match self {
            Self::Prompt(run) => run.trainer.step,
            Self::Model(run) => run.tuner.step,
        }
    }

    /// The model as trained: model tuning's tuned copy (none for a prompt: the base itself).
    fn tuned(&self, lm: &LoadedModel) -> Option<LoadedModel> {
        match self {
            Self::Prompt(_) => None,
            Self::Model(run) => Some(run.tuned(lm)),
        }
    }

    /// Held-out accuracy on `evaluated` (`tuned`, else the base): a prompt tuning with its
    /// prompt (scored with `helpers`); model tuning with no prompt, as it was trained.
    async fn evaluate(
        &self,
        evaluated: &LoadedModel,
        task: &Task,
        helpers: Option<&dyn Helpers>,
    ) -> Result<EvalReport> {
        match self {
            Self::Prompt(run) => {
                let prompt = run.trainer.prompt.values();
                pooled_evaluate(evaluated, prompt, &task.test, &task.kind, helpers).await
            }
            Self::Model(_) => {
                evaluate(evaluated, &Prompting::text(""), &task.test, &task.kind).await
            }
        }
    }

    /// Numbers the run trains: the prompt's, or every weight of the model's copy.
    fn learnt(&self, lm: &LoadedModel) -> u64 {
        match self {
            Self::Prompt(run) => (run.trainer.prompt.n_virtual() * lm.model.config.d_model) as u64,
            Self::Model(_) => lm.model.num_params() as u64,
        }
    }

    /// The trained prompt's values (none for model tuning).
    async fn prompt(&self) -> Result<Option<Vec<f32>>> {
        match self {
            Self::Prompt(run) => Ok(Some(read_f32(run.trainer.prompt.values()).await?)),
            Self::Model(_) => Ok(None),
        }
    }
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
        Ok(Self {
            training: Training::start(lm, task, &job)?,
            job,
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
        let stats = self.training.step(lm, helpers).await?;
        let steps = self.job.settings.steps;
        let curve_due = self
            .job
            .curve_every
            .is_some_and(|every| stats.step % every == 0 || stats.step == steps);
        if !curve_due && stats.step < steps {
            return Ok(None);
        }
        let tuned = self.training.tuned(lm);
        let evaluated = tuned.as_ref().unwrap_or(lm);
        let report = self.training.evaluate(evaluated, task, helpers).await?;
        let accuracy = report.accuracy();
        if curve_due {
            self.curve.push((stats.step, accuracy));
        }
        if stats.step < steps {
            return Ok(None);
        }
        let footprint = match &self.base {
            Some(base) => {
                let learnt = self.training.learnt(lm);
                Some(base.footprint(&lm.model, &evaluated.model, learnt).await?)
            }
            None => None,
        };
        let prompt = match self.job.keep_prompt {
            true => self.training.prompt().await?,
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
            footprint,
        }))
    }

    /// Training steps still to take.
    pub fn steps_left(&self) -> usize {
        self.job
            .settings
            .steps
            .saturating_sub(self.training.steps_done())
    }
}
