//! The helper's role: work another engine hands over — a part of its training step's batch, some
//! of its held-out examples, or a whole training of its experiment (a job), stepped here.

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::job::{Job, JobResult, JobRun};
use crate::pool::{PartResult, PartRow, PartShape, compute_part, evaluate_part};
use crate::tasks::{Example, Task, TaskKind};

#[derive(Default)]
pub struct HelperWork {
    /// The job started last, with the task it trains on and the family member it runs on
    /// (`Job::model`).
    job: Option<(Task, Option<usize>, JobRun)>,
}

impl HelperWork {
    /// Computes a batch part another engine sent (`pool::compute_part`).
    pub async fn part(
        &self,
        e: &Engine,
        prompt: Vec<f32>,
        shape: PartShape,
        rows: Vec<PartRow>,
    ) -> Result<PartResult> {
        compute_part(&e.lm.model, prompt, shape, rows).await
    }

    /// Scores some of another engine's held-out examples with its prompt (`pool::evaluate_part`).
    pub async fn eval_part(
        &self,
        e: &Engine,
        values: &[f32],
        n_virtual: usize,
        kind: &TaskKind,
        examples: &[Example],
    ) -> Result<Vec<String>> {
        evaluate_part(&e.lm, values, n_virtual, kind, examples).await
    }

    /// The family member a job runs on (`Job::model`), when the engine does not hold it.
    pub fn model_needed(&self, e: &Engine, job: &Job) -> Option<usize> {
        e.member_needed(job.model)
    }

    /// Starts a job another engine handed over, on `task`, in place of any other.
    pub fn start_job(&mut self, e: &mut Engine, task: Task, job: Job) -> Result<()> {
        self.job = None;
        if job.model.is_none() {
            e.hold_family_member(None);
        }
        let member = job.model;
        let run = JobRun::start(e.model_for(member)?, &task, job)?;
        self.job = Some((task, member, run));
        Ok(())
    }

    /// One step of the job started last; its result after the last one (the job ends there,
    /// or at an error: the engine that handed it over runs it again).
    pub async fn job_step(&mut self, e: &Engine) -> Result<Option<JobResult>> {
        let (task, member, mut run) = self.job.take().ok_or(Error::NotReady {
            what: "the job",
            todo: "start it first",
        })?;
        let result = run.step(e.model_for(member)?, &task, None).await?;
        if result.is_none() {
            self.job = Some((task, member, run));
        }
        Ok(result)
    }
}
