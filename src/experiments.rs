//! The method's findings, reproduced on the loaded model: each experiment is a list of seeded
//! trainings ("runs") on the session's task, taken one step at a time so the page can show
//! progress and cancel between steps; each run ends in held-out accuracy. The command line's
//! `sweep` and the page's worker run the same plans (`ExperimentHost::step`). On the page's
//! CPU path the pool's helper engines take trainings that can start (`take_job`: src/job.rs)
//! while this engine steps its own, so independent runs go side by side.
//!
//! - prompt length: 1, 2, 4, 8, 16 virtual tokens (Lester et al. 2021, Fig. 3a)
//! - initialisation: random N(0,1) (PEFT's RANDOM), uniform [-0.5, 0.5] (Lester), sampled
//!   vocabulary, class labels, text (Lester Fig. 3b)
//! - transfer: the task from another task's trained prompt against from scratch, accuracy by step
//!   (Vu et al. 2022, SPoT)
//! - text against soft: the best of a few hand-written text prompts against a trained soft prompt
//! - ensemble: several prompts on the one frozen model, majority vote against each alone
//!   (Lester §6; here each prompt is scored in its own pass, then the votes are counted)
//! - scale: on each model of a family of sizes, the text prompt, prompt tuning and model tuning
//!   (Lester Fig. 1). The only experiment on more than the loaded model: the caller loads the
//!   model `model_needed` names before each step (the command line's `sweep` does).

use std::collections::BTreeMap;

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{EvalReport, evaluate};
pub use crate::footprint::Footprint;
use crate::generate::Prompting;
use crate::job::{Job, JobResult, JobRun, Tuning};
use crate::loader::LoadedModel;
use crate::pool::Helpers;
use crate::settings::{InitName, Settings};
use crate::tasks::{Task, TaskKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExperimentName {
    PromptLength,
    Init,
    Transfer,
    TextVsSoft,
    Ensemble,
    Scale,
}

impl ExperimentName {
    /// Every experiment, in the page's order.
    pub const ALL: [ExperimentName; 6] = [
        Self::PromptLength,
        Self::Init,
        Self::Transfer,
        Self::TextVsSoft,
        Self::Ensemble,
        Self::Scale,
    ];

    /// Runs on a family of models (the caller loads each when `Experiment::model_needed` names
    /// it), not on the loaded model.
    pub fn needs_family(self) -> bool {
        self == Self::Scale
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::PromptLength => "prompt-length",
            Self::Init => "init",
            Self::Transfer => "transfer",
            Self::TextVsSoft => "text-vs-soft",
            Self::Ensemble => "ensemble",
            Self::Scale => "scale",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::PromptLength => "Prompt length",
            Self::Init => "Initialisation",
            Self::Transfer => "Transfer from another task",
            Self::TextVsSoft => "Text prompt against soft prompt",
            Self::Ensemble => "Prompt ensemble",
            Self::Scale => "Scale: prompt against model tuning",
        }
    }

    /// What the literature found, for the page and the model card to compare with.
    pub fn finding(self) -> &'static str {
        match self {
            Self::PromptLength => {
                "Lester et al. (2021, Fig. 3a): more than one token matters for small models; returns shrink past about 20."
            }
            Self::Init => {
                "Lester et al. (2021, Fig. 3b): class-label init is best at small scale, random uniform worst; the gap closes with scale."
            }
            Self::Transfer => {
                "Vu et al. (2022, SPoT): starting from a prompt trained on a related task beats starting from scratch, most early in training."
            }
            Self::TextVsSoft => {
                "A fixed text prompt cannot learn from examples; a soft prompt can."
            }
            Self::Ensemble => {
                "Lester et al. (2021, §6): a majority vote of several prompts on one frozen model beats the average prompt alone."
            }
            Self::Scale => {
                "Lester et al. (2021, Fig. 1): prompt tuning trails model tuning on small models and closes the gap as they grow (T5, 60 M to 11 B parameters)."
            }
        }
    }
}

/// An experiment's size: steps per training, seeds per arm, and the settings every run starts
/// from (the arm changes one of them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentConfig {
    pub name: ExperimentName,
    pub steps: usize,
    pub seeds: usize,
    pub base: Settings,
    /// The family's models by name, smallest first (scale only).
    #[serde(default)]
    pub models: Vec<String>,
}

/// The bundled model's family for scale, smallest first: folders beside it in `www/models`, made
/// by `tools/pretrain/pretrain.py` from the bundled model's corpus, tokenizer and recipe.
pub const FAMILY: [&str; 3] = ["wordnet-gpt-xs", "wordnet-gpt-s", "wordnet-gpt"];

/// Scale's arms on each model, in this order.
pub const SCALE_METHODS: [&str; 3] = ["text prompt", "prompt tuning", "model tuning"];

/// Steps per training and seeds per arm that keep each experiment on the bundled model under
/// two minutes on the page's CPU path (~80 ms a step; about 900 steps for the largest).
pub const DEFAULT_STEPS: usize = 60;
pub const DEFAULT_SEEDS: usize = 3;
/// The most seeds per arm an experiment runs.
pub const MAX_SEEDS: usize = 10;
/// Held-out accuracy is measured this many times along a transfer run (the curves).
const CURVE_POINTS: usize = 6;
/// Prompts in the ensemble.
const ENSEMBLE_SIZE: usize = 3;

impl ExperimentConfig {
    pub fn new(name: ExperimentName, base: Settings) -> Self {
        Self {
            name,
            steps: DEFAULT_STEPS,
            seeds: DEFAULT_SEEDS,
            base,
            models: Vec::new(),
        }
    }
}

/// How a run starts and ends.
#[derive(Debug, Clone)]
enum RunKind {
    /// Train from a fresh prompt (`from_source`: from the source task's prompt of the same seed).
    Train {
        settings: Settings,
        from_source: bool,
        on_source: bool,
    },
    /// Train every weight of a copy of the model (scale), with the settings' seed and batch.
    ModelTune(Settings),
    /// Evaluate a text prompt: nothing to train.
    Text(String),
    /// Count the votes of the ensemble's runs.
    Vote,
}

impl RunKind {
    /// A training (a job another engine could run), not a text prompt's scoring or the vote.
    fn trains(&self) -> bool {
        matches!(self, Self::Train { .. } | Self::ModelTune(_))
    }
}

#[derive(Debug, Clone)]
struct RunSpec {
    arm: usize,
    /// The model it runs on: an index into the config's `models` (0 when there are none).
    model: usize,
    seed: u64,
    kind: RunKind,
}

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
    predictions: Vec<String>,
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
    fn of(label: &str, model: usize, runs: &[&RunResult]) -> Self {
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

fn model_label(models: &[ModelSize], label: &str, model: usize) -> String {
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

/// The task a run of `kind` trains on: the experiment's `task`, or transfer's source task. (A
/// free function: callers borrow these fields beside others they change.)
fn task_for<'a>(task: &'a Task, source: Option<&'a Task>, kind: &RunKind) -> Result<&'a Task> {
    match kind {
        RunKind::Train {
            on_source: true, ..
        } => source.ok_or_else(|| Error::setting("no source task")),
        _ => Ok(task),
    }
}

/// A text prompt's run: its held-out evaluation.
fn text_result(spec: &RunSpec, report: EvalReport) -> RunResult {
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

/// A few hand-written text prompts for a task: its own, a bare question, and for classification
/// the labels spelled out.
fn text_prompts(task: &Task) -> Vec<String> {
    let mut out = vec![task.text_prompt.clone(), "Answer: ".to_string()];
    if let TaskKind::Classify { labels } = &task.kind {
        let names: Vec<&str> = labels.iter().map(|l| l.trim()).collect();
        out.push(format!("Answer {}. ", names.join(" or ")));
    }
    out.retain(|p| !p.trim().is_empty());
    out.dedup();
    out
}

/// An experiment's arms and their runs, as its planner adds them.
#[derive(Default)]
struct Plan {
    arms: Vec<(String, usize)>,
    runs: Vec<RunSpec>,
    /// The model the next arms run on.
    model: usize,
}

impl Plan {
    fn arm(&mut self, label: impl Into<String>, runs: Vec<(u64, RunKind)>) {
        let (arm, model) = (self.arms.len(), self.model);
        self.arms.push((label.into(), model));
        let specs = runs.into_iter().map(|(seed, kind)| RunSpec {
            arm,
            model,
            seed,
            kind,
        });
        self.runs.extend(specs);
    }
}

/// What every planner starts from: the base settings at the experiment's step count, and the
/// seeds of each arm.
struct Planning<'a> {
    config: &'a ExperimentConfig,
    seeds: Vec<u64>,
}

impl Planning<'_> {
    /// The base settings for `seed`, changed by `f` (the arm's one difference).
    fn settings(&self, seed: u64, f: impl Fn(&mut Settings)) -> Settings {
        let mut s = self.config.base.clone();
        s.steps = self.config.steps;
        s.seed = seed;
        f(&mut s);
        s
    }

    /// One training per seed, each with `f`'s change.
    fn trainings(&self, f: impl Fn(&mut Settings)) -> Vec<(u64, RunKind)> {
        let train = |settings| RunKind::Train {
            settings,
            from_source: false,
            on_source: false,
        };
        let runs = self
            .seeds
            .iter()
            .map(|&seed| (seed, train(self.settings(seed, &f))));
        runs.collect()
    }

    fn prompt_length(&self, plan: &mut Plan) {
        for n in [1, 2, 4, 8, 16] {
            let label = format!("{n} virtual token{}", if n == 1 { "" } else { "s" });
            plan.arm(label, self.trainings(|s| s.virtual_tokens = n));
        }
    }

    fn init(&self, task: &Task, plan: &mut Plan) {
        let mut inits = vec![
            InitName::Random,
            InitName::Uniform,
            InitName::SampleVocab,
            InitName::ClassLabels,
        ];
        // Text init starts from the task's own text prompt; your own examples have none.
        if !task.text_prompt.trim().is_empty() {
            inits.push(InitName::Text);
        }
        for init in inits {
            let label = match (init, &task.kind) {
                (InitName::ClassLabels, TaskKind::Generate) => {
                    "class labels (no labels here: sampled vocabulary)".to_string()
                }
                _ => init.label().to_string(),
            };
            let runs = self.trainings(|s| {
                s.init = init;
                s.init_text = task.text_prompt.clone();
            });
            plan.arm(label, runs);
        }
    }

    fn transfer(&self, task: &Task, source: Option<&Task>, plan: &mut Plan) -> Result<()> {
        let source = source.ok_or_else(|| Error::setting("transfer needs a source task"))?;
        if source.name == task.name {
            return Err(Error::setting(
                "transfer needs a source task other than the task itself",
            ));
        }
        let runs = |from_source, on_source| {
            let kind = |seed| RunKind::Train {
                settings: self.settings(seed, |_| {}),
                from_source,
                on_source,
            };
            self.seeds.iter().map(|&seed| (seed, kind(seed))).collect()
        };
        plan.arm(format!("{} (source)", source.name), runs(false, true));
        plan.arm(format!("from {}'s prompt", source.name), runs(true, false));
        plan.arm("from scratch", runs(false, false));
        Ok(())
    }

    fn text_vs_soft(&self, task: &Task, plan: &mut Plan) {
        for text in text_prompts(task) {
            plan.arm(format!("text: {text:?}"), vec![(0, RunKind::Text(text))]);
        }
        plan.arm("soft prompt", self.trainings(|_| {}));
    }

    /// On each model: the task's own text prompt, prompt tuning and model tuning.
    fn scale(&self, task: &Task, plan: &mut Plan) -> Result<()> {
        if self.config.models.is_empty() {
            return Err(Error::setting(
                "the scale experiment needs a family of models",
            ));
        }
        let text = text_prompts(task).swap_remove(0);
        let [text_label, prompt_label, model_label] = SCALE_METHODS;
        for model in 0..self.config.models.len() {
            plan.model = model;
            plan.arm(text_label, vec![(0, RunKind::Text(text.clone()))]);
            plan.arm(prompt_label, self.trainings(|_| {}));
            let tunings = self.seeds.iter().map(|&seed| {
                let settings = self.settings(seed, |_| {});
                (seed, RunKind::ModelTune(settings))
            });
            plan.arm(model_label, tunings.collect());
        }
        Ok(())
    }

    fn ensemble(&self, plan: &mut Plan) {
        for (seed, run) in self.trainings(|_| {}).into_iter().take(ENSEMBLE_SIZE) {
            plan.arm(format!("prompt {}", seed + 1), vec![(seed, run)]);
        }
        plan.arm("majority vote", vec![(0, RunKind::Vote)]);
    }
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
        let planning = Planning {
            config: &config,
            seeds: (0..config.seeds as u64)
                .map(|s| config.base.seed + s)
                .collect(),
        };
        let mut plan = Plan::default();
        match config.name {
            ExperimentName::PromptLength => planning.prompt_length(&mut plan),
            ExperimentName::Init => planning.init(&task, &mut plan),
            ExperimentName::Transfer => planning.transfer(&task, source.as_ref(), &mut plan)?,
            ExperimentName::TextVsSoft => planning.text_vs_soft(&task, &mut plan),
            ExperimentName::Ensemble => planning.ensemble(&mut plan),
            ExperimentName::Scale => planning.scale(&task, &mut plan)?,
        }
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

    /// The ensemble's majority vote over the runs before it (ties: the earliest prompt's answer).
    fn vote(&self, spec: &RunSpec) -> RunResult {
        let members: Vec<&RunResult> = self.runs().filter(|r| r.arm < spec.arm).collect();
        let expected: Vec<&str> = self.task.test.iter().map(|e| e.output.trim()).collect();
        let mut predictions = Vec::with_capacity(expected.len());
        let mut correct = 0;
        for (i, want) in expected.iter().enumerate() {
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for m in &members {
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
    use crate::tasks::Example;

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
