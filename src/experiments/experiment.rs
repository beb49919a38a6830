//! An experiment in progress: its plan's runs stepped here one step at a time, or handed to other
//! engines as jobs and taken back, in an order that keeps dependent runs (transfer's source
//! prompts, the ensemble's vote) after what they need.

use std::collections::BTreeMap;

use burn::module::Module;
use serde::Serialize;

use super::plan::{self, RunKind, RunSpec, task_for};
use super::summary::{
    ArmSummary, ExperimentSummary, ModelSize, RunResult, model_label, text_result, vote,
};
use super::{CURVE_POINTS, ExperimentConfig, ExperimentName, MAX_SEEDS};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::generate::Prompting;
use crate::job::{Job, JobResult, JobRun, Tuning};
use crate::loader::LoadedModel;
use crate::pool::Helpers;
use crate::tasks::Task;

/// What one `experiment_step` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentProgress {
    /// Runs finished so far, and in all.
    pub runs_done: usize,
    pub runs: usize,
    /// Training steps taken so far, and in all (for the progress bar and its ETA).
    pub steps_done: usize,
    pub steps_total: usize,
    pub arm: String,
    pub seed: u64,
    /// Runs on other engines now (the page's pool: `take_job`).
    pub runs_away: usize,
    /// Nothing to step here: every run left is with another engine or waits for one that is.
    pub waiting: bool,
    pub finished: Option<RunResult>,
    /// Every arm so far, when a run finished (the page's chart draws them as they come), and
    /// the family's models with the parameters counted so far (scale).
    pub arms: Option<Vec<ArmSummary>>,
    pub models: Option<Vec<ModelSize>>,
    pub done: Option<ExperimentSummary>,
}

/// The training this engine is on, by its index in the plan.
struct Current {
    index: usize,
    run: JobRun,
}

/// Where each run of the plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    /// This engine is on it (`Experiment::current`).
    Here,
    /// Handed to another engine as a job.
    Away,
    Done,
}

/// An experiment in progress on a session's model and task.
pub struct Experiment {
    config: ExperimentConfig,
    task: Task,
    source: Option<Task>,
    /// Each arm's label and the model it runs on.
    arms: Vec<(String, usize)>,
    plan: Vec<RunSpec>,
    status: Vec<Status>,
    /// The family (scale), with parameter counts as its models are met.
    models: Vec<ModelSize>,
    current: Option<Current>,
    /// The source task's trained prompt by seed (transfer).
    source_prompts: BTreeMap<u64, Vec<f32>>,
    /// Each finished run's result, by its index in the plan.
    results: Vec<Option<RunResult>>,
    steps_done: usize,
}

impl Experiment {
    /// Plans `config` on `task`; transfer needs `source`, the task whose prompt it starts from.
    pub fn new(config: ExperimentConfig, task: Task, source: Option<Task>) -> Result<Self> {
        config.base.check()?;
        crate::settings::STEPS.check(config.steps as f64)?;
        if !(1..=MAX_SEEDS).contains(&config.seeds) {
            return Err(Error::setting(format!(
                "an experiment runs 1 to {MAX_SEEDS} seeds per arm"
            )));
        }
        let plan = plan::plan(&config, &task, source.as_ref())?;
        let models = config.models.iter().map(|name| ModelSize {
            name: name.clone(),
            parameters: 0,
        });
        let models = models.collect();
        let n_runs = plan.runs.len();
        Ok(Self {
            config,
            task,
            source,
            arms: plan.arms,
            plan: plan.runs,
            models,
            status: vec![Status::Waiting; n_runs],
            current: None,
            source_prompts: BTreeMap::new(),
            results: vec![None; n_runs],
            steps_done: 0,
        })
    }

    fn steps_total(&self) -> usize {
        self.plan.iter().filter(|r| r.kind.trains()).count() * self.config.steps
    }

    pub fn finished(&self) -> bool {
        self.status.iter().all(|s| *s == Status::Done)
    }

    /// Runs on a family of models, not on the session's (`ExperimentName::needs_family`).
    pub fn on_family(&self) -> bool {
        self.config.name.needs_family()
    }

    /// Whether run `i` can start now: waiting, and what it starts from is there (transfer's
    /// source prompt of its seed; every earlier prompt for the ensemble's vote).
    fn ready(&self, i: usize) -> bool {
        let spec = &self.plan[i];
        self.status[i] == Status::Waiting
            && match &spec.kind {
                RunKind::Train {
                    from_source: true, ..
                } => self.source_prompts.contains_key(&spec.seed),
                RunKind::Vote => (0..i).all(|j| self.status[j] == Status::Done),
                _ => true,
            }
    }

    /// The run this engine's next step is on: the current one, else the first that can start.
    fn next_here(&self) -> Option<usize> {
        let current = self.current.as_ref().map(|c| c.index);
        current.or_else(|| (0..self.plan.len()).find(|&i| self.ready(i)))
    }

    /// The model the next step here runs on: an index into the config's `models` (always 0 for
    /// the experiments on the loaded model); None when nothing is left to step here.
    pub fn model_needed(&self) -> Option<usize> {
        self.next_here().map(|i| self.plan[i].model)
    }

    /// A training another engine can do now, handed over with the task it trains on (it is not
    /// run here unless `job_failed` gives it back). On a family (scale) the job names its model.
    pub fn take_job(&mut self) -> Option<(Job, &Task)> {
        let i = (0..self.plan.len()).find(|&i| self.ready(i) && self.plan[i].kind.trains())?;
        if self.keep_here(i) {
            return None;
        }
        let job = self.job(i)?;
        let task = task_for(&self.task, self.source.as_ref(), &self.plan[i].kind).ok()?;
        self.status[i] = Status::Away;
        Some((job, task))
    }

    /// Keeps training `i` for this engine when it is the last one waiting and this engine is
    /// (nearly) free: here the idle helpers share its steps (a prompt tuning on the loaded
    /// model; ~1.24× faster on two engines), where a helper would run it alone — it ends sooner
    /// unless this engine has more than a fifth of a run left.
    fn keep_here(&self, i: usize) -> bool {
        let prompt_tuning = matches!(self.plan[i].kind, RunKind::Train { .. });
        let others = (0..self.plan.len())
            .any(|j| j != i && self.status[j] == Status::Waiting && self.plan[j].kind.trains());
        let left_here = self.current.as_ref().map_or(0, |c| c.run.steps_left());
        !others && !self.on_family() && prompt_tuning && left_here * 5 <= self.config.steps
    }

    /// Run `index` as a job, when it is a training (text prompts and the vote are not).
    fn job(&self, index: usize) -> Option<Job> {
        let spec = &self.plan[index];
        let (settings, tuning, from_source, on_source) = match &spec.kind {
            RunKind::Train {
                settings,
                from_source,
                on_source,
            } => (settings, Tuning::Prompt, *from_source, *on_source),
            RunKind::ModelTune(settings) => (settings, Tuning::Model, false, false),
            RunKind::Text(_) | RunKind::Vote => return None,
        };
        let curve = self.config.name == ExperimentName::Transfer && !on_source;
        Some(Job {
            index,
            model: self.on_family().then_some(spec.model),
            tuning,
            settings: settings.clone(),
            given: from_source
                .then(|| self.source_prompts.get(&spec.seed).cloned())
                .flatten(),
            curve_every: curve.then(|| self.config.steps.div_ceil(CURVE_POINTS)),
            keep_prompt: on_source,
        })
    }

    /// A job another engine finished: its run's result, as `step` reports a run of its own.
    pub fn job_done(&mut self, result: JobResult) -> Result<ExperimentProgress> {
        let i = result.index;
        if self.status.get(i) != Some(&Status::Away) {
            return Err(Error::internal(format!(
                "a helper engine answered for run {i}, which was not handed to it"
            )));
        }
        self.steps_done += result.steps;
        let run = self.job_result(result);
        Ok(self.finish(i, run))
    }

    /// A job the other engine could not finish (it stopped): the run waits to start again.
    pub fn job_failed(&mut self, index: usize) {
        if self.status.get(index) == Some(&Status::Away) {
            self.status[index] = Status::Waiting;
        }
    }

    /// One training step of the run this engine is on, or the evaluation that ends it, on `lm`:
    /// the model `model_needed` names; a prompt tuning's steps shared with `helpers` (engines
    /// holding `lm` too: the page's idle ones) when given. When every run left is away or waits
    /// for one that is, it does nothing and says so (`waiting`): the caller waits for a job to
    /// come back.
    pub async fn step(
        &mut self,
        lm: &LoadedModel,
        helpers: Option<&dyn Helpers>,
    ) -> Result<ExperimentProgress> {
        let Some(index) = self.next_here() else {
            return match self.finished() {
                true => Err(Error::NotReady {
                    what: "the experiment",
                    todo: "start it again",
                }),
                false => Ok(self.progress(None, None)),
            };
        };
        self.status[index] = Status::Here;
        let spec = self.plan[index].clone();
        // Counted once per model, when its first step here comes (or a job's footprint).
        if let Some(size) = self
            .models
            .get_mut(spec.model)
            .filter(|s| s.parameters == 0)
        {
            size.parameters = lm.model.num_params() as u64;
        }
        let finished = match &spec.kind {
            RunKind::Text(text) => {
                let report = evaluate(
                    lm,
                    &Prompting::text(text.clone()),
                    &self.task.test,
                    &self.task.kind,
                )
                .await?;
                Some(text_result(&spec, report))
            }
            RunKind::Vote => Some(self.vote(&spec)),
            RunKind::Train { .. } | RunKind::ModelTune(_) => {
                self.train_step(lm, index, helpers).await?
            }
        };
        Ok(match finished {
            Some(result) => self.finish(index, result),
            None => self.progress(Some(&spec), None),
        })
    }

    /// Keeps run `index`'s result: the progress that reports it, with every arm so far.
    fn finish(&mut self, index: usize, result: RunResult) -> ExperimentProgress {
        self.status[index] = Status::Done;
        self.results[index] = Some(result.clone());
        let spec = self.plan[index].clone();
        self.progress(Some(&spec), Some(result))
    }

    /// Where the experiment stands; `spec`: the run just stepped or finished (None: waiting).
    fn progress(&self, spec: Option<&RunSpec>, finished: Option<RunResult>) -> ExperimentProgress {
        let arms = finished.as_ref().map(|_| self.arm_summaries());
        let models = finished.as_ref().map(|_| self.models.clone());
        ExperimentProgress {
            runs_done: self.count(Status::Done),
            runs_away: self.count(Status::Away),
            runs: self.plan.len(),
            steps_done: self.steps_done,
            steps_total: self.steps_total(),
            arm: spec.map_or(String::new(), |s| self.arm_label(s.arm)),
            seed: spec.map_or(0, |s| s.seed),
            waiting: spec.is_none(),
            finished,
            arms,
            models,
            done: self.finished().then(|| self.summary()),
        }
    }

    fn count(&self, status: Status) -> usize {
        self.status.iter().filter(|s| **s == status).count()
    }

    /// A run's result from what its job handed back (transfer keeps a source run's prompt).
    fn job_result(&mut self, job: JobResult) -> RunResult {
        let spec = &self.plan[job.index];
        if let Some(values) = job.prompt {
            self.source_prompts.insert(spec.seed, values);
        }
        // A model whose every run went to other engines is counted from their footprints.
        if let (Some(size), Some(f)) = (self.models.get_mut(spec.model), &job.footprint) {
            size.parameters = f.weights;
        }
        RunResult {
            arm: spec.arm,
            seed: spec.seed,
            accuracy: job.accuracy,
            loss: Some(job.loss),
            curve: job.curve,
            footprint: job.footprint,
            predictions: job.predictions,
        }
    }

    /// One step of a training here (the job it would be on another engine); its last step ends
    /// in its evaluation.
    async fn train_step(
        &mut self,
        lm: &LoadedModel,
        index: usize,
        helpers: Option<&dyn Helpers>,
    ) -> Result<Option<RunResult>> {
        let task = task_for(&self.task, self.source.as_ref(), &self.plan[index].kind)?;
        if self.current.is_none() {
            // The job (with transfer's source prompt copied in) is made once, when its run starts.
            let job = self
                .job(index)
                .ok_or_else(|| Error::internal("a training step on a run with nothing to train"))?;
            let run = JobRun::start(lm, task, job)?;
            self.current = Some(Current { index, run });
        }
        let current = self.current.as_mut().expect("started above");
        let done = current.run.step(lm, task, helpers).await?;
        self.steps_done += 1;
        let Some(done) = done else {
            return Ok(None);
        };
        self.current = None;
        Ok(Some(self.job_result(done)))
    }

    /// The ensemble's majority vote over the runs before it (`summary::vote`).
    fn vote(&self, spec: &RunSpec) -> RunResult {
        let members: Vec<&RunResult> = self.runs().filter(|r| r.arm < spec.arm).collect();
        vote(&members, &self.task, spec)
    }

    /// The finished runs, in the plan's order.
    fn runs(&self) -> impl Iterator<Item = &RunResult> {
        self.results.iter().flatten()
    }

    fn arm_summaries(&self) -> Vec<ArmSummary> {
        let arms = self.arms.iter().enumerate().map(|(i, (label, model))| {
            let runs: Vec<&RunResult> = self.runs().filter(|r| r.arm == i).collect();
            ArmSummary::of(label, *model, &runs)
        });
        arms.collect()
    }

    fn arm_label(&self, arm: usize) -> String {
        let (label, model) = &self.arms[arm];
        model_label(&self.models, label, *model)
    }

    pub fn summary(&self) -> ExperimentSummary {
        ExperimentSummary {
            name: self.config.name,
            title: self.config.name.title(),
            finding: self.config.name.finding(),
            task: self.task.name.clone(),
            steps: self.config.steps,
            seeds: self.config.seeds,
            arms: self.arm_summaries(),
            runs: self.runs().cloned().collect(),
            models: self.models.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::tasks::{Example, TaskKind};

    /// With nothing in progress here, the last waiting prompt tuning stays for this engine (the
    /// free helpers share its steps); scale's trainings on a family go out to the last one
    /// (helpers cannot share steps on a model they do not hold).
    #[test]
    fn the_last_waiting_training_stays_here_unless_helpers_cannot_share_it() {
        let task = Task {
            name: "t".into(),
            kind: TaskKind::Generate,
            train: vec![Example {
                input: "x ->".into(),
                output: " a".into(),
            }],
            test: Vec::new(),
            text_prompt: "say".into(),
        };
        let ensemble = ExperimentConfig::new(ExperimentName::Ensemble, Settings::default());
        let mut e = Experiment::new(ensemble, task.clone(), None).unwrap();
        let taken: Vec<usize> = std::iter::from_fn(|| Some(e.take_job()?.0.index)).collect();
        assert_eq!(taken, [0, 1], "prompt 3 (and the vote) stay here");
        let scale = ExperimentConfig {
            models: vec!["s".into(), "m".into()],
            seeds: 1,
            ..ExperimentConfig::new(ExperimentName::Scale, Settings::default())
        };
        let mut e = Experiment::new(scale, task, None).unwrap();
        let taken: Vec<(usize, Option<usize>)> =
            std::iter::from_fn(|| e.take_job().map(|(j, _)| (j.index, j.model))).collect();
        // Each model: text prompt (here), prompt tuning, model tuning.
        assert_eq!(
            taken,
            [(1, Some(0)), (2, Some(0)), (4, Some(1)), (5, Some(1))]
        );
    }

    #[test]
    fn the_majority_vote_counts_answers_and_breaks_ties_by_the_first_prompt() {
        let ex = |o: &str| Example {
            input: "x ->".into(),
            output: o.into(),
        };
        let task = Task {
            name: "t".into(),
            kind: TaskKind::Generate,
            train: vec![ex(" a")],
            test: vec![ex(" a"), ex(" b"), ex(" c")],
            text_prompt: String::new(),
        };
        let config = ExperimentConfig::new(ExperimentName::Ensemble, Settings::default());
        let mut e = Experiment::new(config, task, None).unwrap();
        for (arm, answers) in [["a", "b", "x"], ["a", "y", "c"], ["z", "b", "q"]]
            .iter()
            .enumerate()
        {
            e.results[arm] = Some(RunResult {
                arm,
                seed: arm as u64,
                accuracy: 0.0,
                loss: None,
                curve: Vec::new(),
                footprint: None,
                predictions: answers.iter().map(|s| s.to_string()).collect(),
            });
        }
        let vote = e.vote(&RunSpec {
            arm: 3,
            model: 0,
            seed: 0,
            kind: RunKind::Vote,
        });
        // a a z -> a (right); b y b -> b (right); x c q, all different -> the first prompt's x (wrong).
        assert_eq!(vote.predictions, ["a", "b", "x"]);
        assert!((vote.accuracy - 2.0 / 3.0).abs() < 1e-6);
    }
}
