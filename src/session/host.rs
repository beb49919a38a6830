//! The experiment host's role: an experiment planned on the engine's task, stepped here (on the
//! engine's model or, for scale, on the family member it needs) while its other trainings go to
//! helper engines as jobs and come back as results.

use serde::{Deserialize, Serialize};

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::experiments::{Experiment, ExperimentConfig, ExperimentProgress};
use crate::job::{Job, JobResult};
use crate::tasks::Task;

/// A helper's answer to a job: its result, or none when it failed or was cancelled (the
/// experiment then runs that training again).
#[derive(Debug, Clone, Deserialize)]
pub struct JobAnswer {
    pub index: usize,
    pub result: Option<JobResult>,
}

/// A training handed to a helper engine, with the task it trains on.
#[derive(Debug, Clone, Serialize)]
pub struct HandOut {
    pub job: Job,
    pub task: Task,
}

/// What the worker does at a turn of the experiment's loop, in this order: reports the
/// progress of each finished job, hands `jobs` to its idle helpers, loads the family member
/// `load_member` (scale), then steps the experiment here unless `done`.
#[derive(Debug, Default)]
pub struct Turn {
    pub reports: Vec<ExperimentProgress>,
    pub jobs: Vec<HandOut>,
    pub load_member: Option<usize>,
    pub done: bool,
}

#[derive(Default)]
pub struct ExperimentHost {
    /// The experiment in progress, on the current task (it trains its own prompts).
    experiment: Option<Experiment>,
}

fn no_experiment() -> Error {
    Error::NotReady {
        what: "the experiment",
        todo: "start it first",
    }
}

impl ExperimentHost {
    /// A new task: the experiment belonged to the previous one.
    pub(crate) fn clear(&mut self) {
        self.experiment = None;
    }

    /// Plans an experiment on the engine's task (`source`: the task transfer starts from), in
    /// place of any other. It trains its own prompts: the lab's prompt and run stay as they are.
    pub fn start(
        &mut self,
        e: &mut Engine,
        config: ExperimentConfig,
        source: Option<Task>,
    ) -> Result<()> {
        e.hold_family_member(None);
        self.experiment = Some(Experiment::new(config, e.task()?.clone(), source)?);
        Ok(())
    }

    /// The family member (scale) the experiment's next step here runs on, when the engine does
    /// not hold it: the caller loads it (`Engine::hold_family_member`). None on the engine's
    /// own model.
    pub fn model_needed(&self, e: &Engine) -> Option<usize> {
        let x = self.experiment.as_ref();
        let k = x
            .filter(|x| x.on_family() && !x.finished())?
            .model_needed()?;
        e.member_needed(Some(k))
    }

    /// One step of the experiment, on the engine's model or (scale) on the family member it
    /// needs; the member is let go when the experiment is done.
    pub async fn step(&mut self, e: &mut Engine) -> Result<ExperimentProgress> {
        let experiment = self.experiment.as_mut().ok_or_else(no_experiment)?;
        let member = experiment.model_needed().filter(|_| experiment.on_family());
        let lm = e.model_for(member)?;
        // Helpers hold the engine's own model: not a family member's.
        let helpers = e.helpers().filter(|_| member.is_none());
        let progress = experiment.step(lm, helpers).await?;
        if progress.done.is_some() {
            e.hold_family_member(None);
        }
        Ok(progress)
    }

    /// The scheduler's turn between steps (the worker only moves messages): the helpers'
    /// `answers` applied, a training for each of `idle` helpers while the experiment has one to
    /// give, and the family member the next step here needs once they are away.
    pub fn tick(&mut self, e: &Engine, answers: Vec<JobAnswer>, idle: usize) -> Result<Turn> {
        let experiment = self.experiment.as_mut().ok_or_else(no_experiment)?;
        let mut turn = Turn::default();
        for answer in answers {
            match answer.result {
                Some(result) => {
                    let progress = experiment.job_done(result)?;
                    turn.done = progress.done.is_some();
                    turn.reports.push(progress);
                    if turn.done {
                        return Ok(turn);
                    }
                }
                None => experiment.job_failed(answer.index),
            }
        }
        while turn.jobs.len() < idle {
            let Some((job, task)) = experiment.take_job() else {
                break;
            };
            let task = task.clone();
            turn.jobs.push(HandOut { job, task });
        }
        turn.load_member = self.model_needed(e);
        Ok(turn)
    }
}
