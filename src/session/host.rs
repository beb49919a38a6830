//! The experiment host's role: an experiment planned on the engine's task, stepped here (on the
//! engine's model or, for scale, on the family member it needs) while its other trainings go to
//! helper engines as jobs and come back as results.

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::experiments::{Experiment, ExperimentConfig, ExperimentProgress};
use crate::job::{Job, JobResult};
use crate::tasks::Task;

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

    /// A training of the experiment another engine can do now, with the task it trains on
    /// (`Experiment::take_job`).
    pub fn take_job(&mut self) -> Option<(Job, Task)> {
        let (job, task) = self.experiment.as_mut()?.take_job()?;
        Some((job, task.clone()))
    }

    /// A job another engine finished: the experiment's progress with its result.
    pub fn job_done(&mut self, result: JobResult) -> Result<ExperimentProgress> {
        let experiment = self.experiment.as_mut().ok_or_else(no_experiment)?;
        experiment.job_done(result)
    }

    /// A job another engine could not finish: the experiment runs it again.
    pub fn job_failed(&mut self, index: usize) {
        if let Some(experiment) = self.experiment.as_mut() {
            experiment.job_failed(index);
        }
    }
}
