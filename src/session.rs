//! One lab session, as the page runs it: a loaded frozen model, a task, and a soft prompt being
//! trained step by step, with everything the page shows about it. Plain Rust (tested natively);
//! `web.rs` only converts its inputs and outputs for JavaScript.

use serde::Serialize;
use web_time::Instant;

use crate::adapter::{self, AdapterConfig, AdapterFiles};
use crate::batch::{Sampler, ScoredBatch, Sequence};
use crate::error::{Error, Result};
use crate::eval::{EvalReport, evaluate};
use crate::experiments::{Experiment, ExperimentConfig, ExperimentProgress};
use crate::generate::{GenerateOptions, Prompting, generate};
use crate::job::{Job, JobResult, JobRun};
use crate::loader::{LoadedModel, ModelFiles};
use crate::pool::{
    Helpers, PartResult, PartRow, PartShape, compute_part, evaluate_part, part_gradient,
    pooled_evaluate,
};
use crate::run::Run;
use crate::schedule::{EvalCadence, Schedule, median};
pub use crate::settings::Settings;
use crate::soft_prompt::{PromptInit, SoftPrompt};
use crate::tasks::{Example, Task, TaskKind, TaskSummary};
use crate::train::{StepStats, Trainer};
use crate::viz::{Neighbour, VocabMap};
use burn::tensor::Device;

/// Nearest vocabulary tokens listed per virtual token.
const NEAREST_K: usize = 5;

/// Facts about the loaded model, shown before and after training.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub params: u64,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    pub n_kv_head: usize,
    /// `gpt2`, `llama` or `qwen2`.
    pub family: &'static str,
    pub vocab_size: usize,
    pub n_positions: usize,
    /// FNV-1a of every base weight, hex.
    pub fingerprint: String,
    /// What loading decided about the files on the user's behalf (special-token ids outside the
    /// vocabulary), shown with the model.
    pub notes: Vec<String>,
}

/// The soft prompt as the page draws it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptView {
    pub step: usize,
    pub n_virtual: usize,
    pub d_model: usize,
    /// `[n_virtual, d_model]` row-major.
    pub values: Vec<f32>,
    /// Each virtual token on the vocabulary map, `[n_virtual, 2]` flattened.
    pub points: Vec<f32>,
    pub nearest: Vec<Vec<NeighbourView>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: u32,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NeighbourView {
    pub text: String,
    pub cosine: f32,
}

impl From<Neighbour> for NeighbourView {
    fn from(n: Neighbour) -> Self {
        Self {
            text: n.text,
            cosine: n.cosine,
        }
    }
}

/// What conditions the model in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    NoPrompt,
    TextPrompt,
    SoftPrompt,
}

/// The vocabulary map and facts the page draws once a model is loaded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedView<'a> {
    pub info: ModelInfo,
    pub map_points: &'a [f32],
    pub map_labels: &'a [String],
    pub explained: [f32; 2],
    pub timings: LoadTimings,
}

/// Where opening a model spent its time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadTimings {
    /// Checking the files and building the model on the device.
    pub parse_ms: f64,
    /// Hashing every base weight (the frozen check's reference).
    pub fingerprint_ms: f64,
    /// The vocabulary map (PCA) and the unit rows for nearest tokens.
    pub map_ms: f64,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// What one turn of the schedule did: the step's figures, and the prompt snapshot, held-out
/// accuracy and end-of-run check when they were due.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(flatten)]
    pub stats: StepStats,
    /// The step the run ends at.
    pub target: usize,
    /// Time of the training step alone (the optimizer step and reading its loss).
    pub ms_per_step: f64,
    pub prompt: Option<PromptView>,
    /// Held-out accuracy of the soft prompt at this step.
    pub accuracy: Option<f32>,
    /// Time of that held-out evaluation, when one ran at this step.
    pub eval_ms: Option<f64>,
    pub done: Option<Done>,
    /// What the device's allocator holds after the step (GPU backends; the CPU reports none).
    pub device_memory: Option<DeviceMemory>,
}

/// burn's device allocator after a step: a leak shows as growth from one step to the next.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceMemory {
    /// Live allocations (buffers' slices).
    pub allocs: u64,
    pub bytes_in_use: u64,
    /// Reserved on the device, pages held for reuse included.
    pub bytes_reserved: u64,
}

/// The end of a run: the base weights' fingerprint after training.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub fingerprint: String,
    /// Equal to the fingerprint taken when the model was loaded.
    pub unchanged: bool,
    /// Share of the run's time spent on evaluations and snapshots.
    pub overhead_share: f64,
}

/// The same frozen model on the held-out set, three ways.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub no_prompt: EvalView,
    pub text_prompt: EvalView,
    pub soft_prompt: EvalView,
}

/// The session's training run, with its schedule.
struct Scheduled {
    run: Run,
    schedule: Schedule,
    /// The schedule's last evaluation of the soft prompt, with its step: `compare` at that step
    /// reuses it.
    evaluated: Option<(usize, EvalView)>,
}

/// Training examples the no-prompt reference loss is measured on (one batch).
const BASELINE_EXAMPLES: usize = 64;

pub struct Session {
    lm: LoadedModel,
    map: VocabMap,
    base_fingerprint: u64,
    task: Option<Task>,
    run: Option<Scheduled>,
    /// The experiment in progress, on the current task (it trains its own prompts).
    experiment: Option<Experiment>,
    /// The family member (scale) the experiment's steps or a helper's job run on now, by its
    /// index in the experiment's models.
    family_model: Option<(usize, LoadedModel)>,
    cadence: EvalCadence,
    /// No-prompt and text-prompt results depend on the model and the task only.
    baselines: Option<(EvalView, EvalView)>,
    timings: LoadTimings,
    /// Engines elsewhere that share the training steps (`set_helpers`).
    helpers: Option<Box<dyn Helpers>>,
    /// An experiment's training handed to this engine by the one that planned it (`start_job`).
    /// With the task it trains on and the family member it runs on (`Job::model`).
    job: Option<(Task, Option<usize>, JobRun)>,
}

fn no_experiment() -> Error {
    Error::NotReady {
        what: "the experiment",
        todo: "start it first",
    }
}

fn no_prompt() -> Error {
    Error::NotReady {
        what: "the soft prompt",
        todo: "press Reset or Train first",
    }
}

/// The model a step runs on: family member `member` (which must be held), or the session's own.
/// (A free function: callers borrow these fields beside the experiment they step.)
fn model_for<'a>(
    lm: &'a LoadedModel,
    family: &'a Option<(usize, LoadedModel)>,
    member: Option<usize>,
) -> Result<&'a LoadedModel> {
    match (family, member) {
        (_, None) => Ok(lm),
        (Some((held, held_lm)), Some(k)) if *held == k => Ok(held_lm),
        _ => Err(Error::NotReady {
            what: "the family member to run on",
            todo: "load the model it needs first",
        }),
    }
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

impl Session {
    /// Loads and checks the model, hashes its weights and maps its vocabulary. It takes the
    /// files: the weights file is freed once its tensors are built, before the fingerprint and
    /// the map allocate (a 135M model's 270 MB file would otherwise stay beside its 540 MB of
    /// f32 weights, and wasm's memory never shrinks).
    pub async fn open(
        config_json: Vec<u8>,
        weights: Vec<u8>,
        tokenizer_json: Vec<u8>,
        device: &Device,
    ) -> Result<Self> {
        let t = Instant::now();
        let files = ModelFiles {
            config_json: &config_json,
            safetensors: &weights,
            tokenizer_json: &tokenizer_json,
        };
        let lm = LoadedModel::from_bytes(files, device)?;
        drop(weights);
        let parse_ms = ms_since(t);
        let mut session = Self::new(lm).await?;
        session.timings.parse_ms = parse_ms;
        Ok(session)
    }

    /// A session on a model already loaded.
    pub async fn new(lm: LoadedModel) -> Result<Self> {
        let t = Instant::now();
        let base_fingerprint = lm.model.fingerprint().await?;
        let fingerprint_ms = ms_since(t);
        let t = Instant::now();
        let map = VocabMap::new(&lm).await?;
        Ok(Self {
            lm,
            map,
            base_fingerprint,
            task: None,
            run: None,
            experiment: None,
            family_model: None,
            cadence: EvalCadence::default(),
            baselines: None,
            helpers: None,
            job: None,
            timings: LoadTimings {
                parse_ms: 0.0,
                fingerprint_ms,
                map_ms: ms_since(t),
            },
        })
    }

    /// How often later runs evaluate on the held-out set (the default: a share of the time).
    pub fn set_eval_cadence(&mut self, cadence: EvalCadence) {
        self.cadence = cadence;
        if let Some(run) = &mut self.run {
            run.schedule.cadence = cadence;
        }
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.lm.model.config;
        ModelInfo {
            params: c.num_params(),
            n_layer: c.n_layer,
            n_head: c.n_head,
            d_model: c.d_model,
            n_kv_head: c.n_kv_head,
            family: c.family(),
            vocab_size: c.vocab_size,
            n_positions: c.n_positions,
            fingerprint: hex(self.base_fingerprint),
            notes: self.lm.tokenizer.notes.clone(),
        }
    }

    pub fn loaded_view(&self) -> LoadedView<'_> {
        LoadedView {
            info: self.info(),
            map_points: &self.map.points,
            map_labels: &self.map.labels,
            explained: self.map.explained,
            timings: self.timings,
        }
    }

    /// The base weights' fingerprint now (hex): equal to `info().fingerprint` if nothing changed.
    pub async fn fingerprint(&self) -> Result<String> {
        Ok(hex(self.lm.model.fingerprint().await?))
    }

    fn task(&self) -> Result<&Task> {
        self.task.as_ref().ok_or(Error::NotReady {
            what: "the task",
            todo: "pick a task first",
        })
    }

    fn run(&self) -> Result<&Scheduled> {
        self.run.as_ref().ok_or_else(no_prompt)
    }

    /// Sets the task; the current prompt is dropped (it belongs to the previous task).
    pub fn set_task(&mut self, task: Task) -> TaskSummary {
        let summary = TaskSummary::from(&task);
        self.task = Some(task);
        self.run = None;
        self.experiment = None;
        self.family_model = None;
        self.baselines = None;
        summary
    }

    /// Cross-entropy of the answers with no prompt at all, over the first
    /// `BASELINE_EXAMPLES` training examples: the reference a prompt's training loss starts from
    /// and should fall below (the page draws it as a line in the loss chart).
    pub async fn loss_without_prompt(&self) -> Result<f32> {
        let task = self.task()?;
        let n = task.train.len().min(BASELINE_EXAMPLES);
        let mut sampler = Sampler::for_examples(&self.lm.tokenizer, &task.train[..n], 0)?;
        let batch = sampler.next_batch(n, 0, self.lm.tokenizer.pad_id())?;
        let loss = crate::soft_prompt::loss(&self.lm.model, None, &batch)?;
        Ok(crate::backend::read_f32(loss).await?[0])
    }

    /// Rows the size of an antonym example (8 tokens read, 2 scored), fixed pseudo-random ids: a
    /// default-sized batch to time steps on, with no task needed.
    fn timing_rows(&self) -> Vec<Sequence> {
        let vocab = self.lm.model.config.vocab_size as u32;
        let rows = (0..Settings::default().batch as u32).map(|r| Sequence {
            ids: (0..10u32)
                .map(|t| (r * 7919 + t * 104_729) % vocab)
                .collect(),
            n_context: 8,
        });
        rows.collect()
    }

    /// Median milliseconds of a default-sized training step on this session's device: `steps`
    /// timed steps after one warm-up, on a throwaway prompt and the timing rows (the user's run
    /// is not touched), shared with the idle helpers as a training step is. Backend "auto"
    /// compares the backends with it; the page's pool compares its sizes with it.
    pub async fn time_steps(&self, steps: usize) -> Result<f64> {
        let settings = Settings::default();
        let mut sampler = Sampler::new(self.timing_rows(), 0)?;
        let mut trainer = Trainer::new(self.timing_prompt()?, settings.train_config());
        let helpers = self.helpers.as_deref();
        let mut times = Vec::new();
        for i in 0..=steps.max(1) {
            let t = Instant::now();
            trainer
                .step_next(&self.lm, &mut sampler, settings.batch, helpers)
                .await?;
            if i > 0 {
                times.push(ms_since(t));
            }
        }
        Ok(median(times))
    }

    /// Median milliseconds of what each of `parts` engines computes in a pooled step of the
    /// timing batch (one part's loss and prompt gradient), timed on this engine alone: the pool's
    /// per-engine work at sizes the machine has no cores for (`./build.sh bench`).
    pub async fn time_parts(&self, parts: usize, steps: usize) -> Result<f64> {
        let settings = Settings::default();
        let pad = self.lm.tokenizer.pad_id();
        let batch = ScoredBatch::new(&self.timing_rows(), settings.virtual_tokens, pad)?;
        let part = batch.split(parts).swap_remove(0);
        let prompt = self.timing_prompt()?.values();
        let mut times = Vec::new();
        for i in 0..=steps.max(1) {
            let t = Instant::now();
            let (_, grad) =
                part_gradient(&self.lm.model, prompt.clone(), &part, batch.targets.len())?;
            crate::backend::read_f32(grad).await?;
            if i > 0 {
                times.push(ms_since(t));
            }
        }
        Ok(median(times))
    }

    fn timing_prompt(&self) -> Result<SoftPrompt> {
        let init = PromptInit::SampleVocab { first_k: None };
        SoftPrompt::init(&self.lm, Settings::default().virtual_tokens, &init, 0)
    }

    /// A fresh prompt from `settings` (or the given one, e.g. an imported adapter), ready to train.
    fn start(&mut self, settings: Settings, given: Option<(SoftPrompt, PromptInit)>) -> Result<()> {
        let run = Run::start(&self.lm, self.task()?, settings, given)?;
        self.run = Some(Scheduled {
            schedule: Schedule::new(run.settings.steps, self.cadence),
            run,
            evaluated: None,
        });
        Ok(())
    }

    /// Starts over with a new prompt initialised as `settings` say.
    pub fn reset(&mut self, settings: Settings) -> Result<()> {
        self.start(settings, None)
    }

    /// Changes where the current run ends (the other settings need a new prompt).
    pub fn set_steps(&mut self, steps: usize) -> Result<()> {
        crate::settings::STEPS.check(steps as f64)?;
        self.schedule_mut()?.target = steps;
        Ok(())
    }

    /// The run has reached its step count (a further `advance` goes one step past it).
    pub fn finished(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.schedule.finished(r.run.trainer.step))
    }

    /// One training step on the next batch, without the schedule's views.
    pub async fn step(&mut self) -> Result<StepStats> {
        let run = self.run.as_mut().ok_or_else(no_prompt)?;
        run.run.step(&self.lm, self.helpers.as_deref()).await
    }

    /// Computes a batch part another engine sent: this engine is a helper in the page's pool.
    pub async fn part(
        &self,
        prompt: Vec<f32>,
        shape: PartShape,
        rows: Vec<PartRow>,
    ) -> Result<PartResult> {
        compute_part(&self.lm.model, prompt, shape, rows).await
    }

    /// Engines that take part of each training step's batch (the page's worker pool); none:
    /// this engine computes every step alone.
    pub fn set_helpers(&mut self, helpers: Option<Box<dyn Helpers>>) {
        self.helpers = helpers;
    }

    /// Advances the run by one step and does what the schedule says is due: a prompt snapshot,
    /// a held-out evaluation, and at the last step (or past it) the check that the base weights
    /// did not change.
    pub async fn advance(&mut self) -> Result<Progress> {
        let started = Instant::now();
        let stats = self.step().await?;
        let took = started.elapsed();
        let step = stats.step;
        let run = self.run.as_mut().ok_or_else(no_prompt)?;
        run.schedule.record_step(took);
        // A step past the end (the Step button) moves the end with it.
        run.schedule.target = run.schedule.target.max(step);
        let schedule = run.schedule.clone();

        let prompt = if schedule.prompt_due(step) {
            let t = Instant::now();
            let view = self.prompt_view().await?;
            self.schedule_mut()?.record_snapshot(t.elapsed());
            Some(view)
        } else {
            None
        };
        let (accuracy, eval_ms) = if schedule.eval_due(step) {
            let t = Instant::now();
            let view = EvalView::from(self.evaluate(Conditioning::SoftPrompt).await?);
            let accuracy = view.accuracy;
            let run = self.run.as_mut().ok_or_else(no_prompt)?;
            run.schedule.record_eval(step, t.elapsed());
            run.evaluated = Some((step, view));
            (Some(accuracy), Some(ms_since(t)))
        } else {
            (None, None)
        };
        let done = if schedule.finished(step) {
            let fingerprint = self.lm.model.fingerprint().await?;
            Some(Done {
                fingerprint: hex(fingerprint),
                unchanged: fingerprint == self.base_fingerprint,
                overhead_share: self.run()?.schedule.overhead_share(),
            })
        } else {
            None
        };
        let device_memory = self.lm.model.embedding().device().memory_pool_usage();
        Ok(Progress {
            stats,
            target: schedule.target,
            ms_per_step: took.as_secs_f64() * 1000.0,
            prompt,
            accuracy,
            eval_ms,
            done,
            device_memory: device_memory.map(|m| DeviceMemory {
                allocs: m.number_allocs,
                bytes_in_use: m.bytes_in_use,
                bytes_reserved: m.bytes_reserved,
            }),
        })
    }

    fn schedule_mut(&mut self) -> Result<&mut Schedule> {
        Ok(&mut self.run.as_mut().ok_or_else(no_prompt)?.schedule)
    }

    /// The prompt's values, its place on the vocabulary map and its nearest tokens.
    pub async fn prompt_view(&self) -> Result<PromptView> {
        let run = self.run()?;
        let prompt = &run.run.trainer.prompt;
        let values = crate::backend::read_f32(prompt.values()).await?;
        let n_virtual = prompt.n_virtual();
        let step = run.run.trainer.step;
        let tok = &self.lm.tokenizer;
        Ok(PromptView {
            step,
            n_virtual,
            d_model: self.lm.model.config.d_model,
            points: self.map.project(&values),
            nearest: self
                .map
                .nearest(&values, NEAREST_K, |id| tok.token_text(id))
                .into_iter()
                .map(|row| row.into_iter().map(NeighbourView::from).collect())
                .collect(),
            values,
        })
    }

    fn prompting(&self, how: Conditioning) -> Result<Prompting> {
        Ok(match how {
            Conditioning::NoPrompt => Prompting::default(),
            Conditioning::TextPrompt => Prompting::text(self.task()?.text_prompt.clone()),
            Conditioning::SoftPrompt => Prompting::soft(self.run()?.run.trainer.prompt.values()),
        })
    }

    /// Held-out accuracy with no prompt, the task's text prompt, or the soft prompt (scored with
    /// the helpers, when there are some).
    pub async fn evaluate(&self, how: Conditioning) -> Result<EvalReport> {
        let task = self.task()?;
        if let Conditioning::SoftPrompt = how {
            let prompt = self.run()?.run.trainer.prompt.values();
            let helpers = self.helpers.as_deref();
            return pooled_evaluate(&self.lm, prompt, &task.test, &task.kind, helpers).await;
        }
        evaluate(&self.lm, &self.prompting(how)?, &task.test, &task.kind).await
    }

    /// A helper's side of `pooled_evaluate` (`pool::evaluate_part`).
    pub async fn eval_part(
        &self,
        values: &[f32],
        n_virtual: usize,
        kind: &TaskKind,
        examples: &[Example],
    ) -> Result<Vec<String>> {
        evaluate_part(&self.lm, values, n_virtual, kind, examples).await
    }

    /// No prompt, the text prompt and the soft prompt on the held-out set (the first two are
    /// computed once per task; the soft prompt's is the schedule's when it evaluated this step).
    pub async fn compare(&mut self) -> Result<Comparison> {
        let run = self.run()?;
        let soft_prompt = match &run.evaluated {
            Some((step, view)) if *step == run.run.trainer.step => view.clone(),
            _ => self.evaluate(Conditioning::SoftPrompt).await?.into(),
        };
        let (no_prompt, text_prompt) = match self.baselines.clone() {
            Some(b) => b,
            None => {
                let b = (
                    self.evaluate(Conditioning::NoPrompt).await?.into(),
                    self.evaluate(Conditioning::TextPrompt).await?.into(),
                );
                self.baselines = Some(b.clone());
                b
            }
        };
        Ok(Comparison {
            no_prompt,
            text_prompt,
            soft_prompt,
        })
    }

    /// Greedy continuation of `input` with the soft prompt (or none before one exists).
    pub async fn generate(&self, input: &str, max_new_tokens: usize) -> Result<String> {
        let prompting = match self.run {
            Some(_) => self.prompting(Conditioning::SoftPrompt)?,
            None => Prompting::default(),
        };
        let opts = GenerateOptions {
            max_new_tokens: max_new_tokens.clamp(1, 64),
            ..GenerateOptions::default()
        };
        let out = generate(&self.lm, &prompting, &[input], &opts).await?;
        Ok(out.into_iter().next().map(|g| g.text).unwrap_or_default())
    }

    /// How `input` is tokenized: what the model reads after the virtual tokens.
    pub fn tokens(&self, input: &str) -> Result<Vec<TokenView>> {
        let tok = &self.lm.tokenizer;
        Ok(tok
            .encode_start(input)?
            .into_iter()
            .map(|id| TokenView {
                id,
                text: tok.token_text(id),
            })
            .collect())
    }

    /// Plans an experiment on the current task (`source`: the task transfer starts from), in
    /// place of any other. It trains its own prompts: the session's prompt and run stay as they are.
    pub fn start_experiment(
        &mut self,
        config: ExperimentConfig,
        source: Option<Task>,
    ) -> Result<()> {
        self.family_model = None;
        self.experiment = Some(Experiment::new(config, self.task()?.clone(), source)?);
        Ok(())
    }

    /// The family member (scale) the experiment's next step here runs on, when the session does
    /// not hold it: the caller loads it (`hold_family_member`). None on the session's own model.
    pub fn experiment_model_needed(&self) -> Option<usize> {
        let e = self.experiment.as_ref();
        let k = e
            .filter(|e| e.on_family() && !e.finished())?
            .model_needed()?;
        self.member_needed(Some(k))
    }

    /// The family member a job runs on (`Job::model`), when the session does not hold it.
    pub fn job_model_needed(&self, job: &Job) -> Option<usize> {
        self.member_needed(job.model)
    }

    fn member_needed(&self, member: Option<usize>) -> Option<usize> {
        let held = self.family_model.as_ref().map(|(i, _)| *i);
        member.filter(|k| held != Some(*k))
    }

    /// Holds family member `index` for the steps on it; `None` frees the one held (before
    /// loading the next, so two are never in memory at once).
    pub fn hold_family_member(&mut self, model: Option<(usize, LoadedModel)>) {
        self.family_model = model;
    }

    /// One step of the experiment in progress, on this session's model or (scale) on the family
    /// member it needs.
    pub async fn experiment_step(&mut self) -> Result<ExperimentProgress> {
        let experiment = self.experiment.as_ref().ok_or_else(no_experiment)?;
        let member = experiment.model_needed().filter(|_| experiment.on_family());
        let lm = model_for(&self.lm, &self.family_model, member)?;
        // Helpers hold the session's model: not a family member's.
        let helpers = self.helpers.as_deref().filter(|_| member.is_none());
        let experiment = self.experiment.as_mut().ok_or_else(no_experiment)?;
        let progress = experiment.step(lm, helpers).await?;
        if progress.done.is_some() {
            self.family_model = None;
        }
        Ok(progress)
    }

    /// A training of the experiment another engine can do now, with the task it trains on
    /// (`Experiment::take_job`).
    pub fn experiment_take_job(&mut self) -> Option<(Job, Task)> {
        let (job, task) = self.experiment.as_mut()?.take_job()?;
        Some((job, task.clone()))
    }

    /// A job another engine finished: the experiment's progress with its result.
    pub fn experiment_job_done(&mut self, result: JobResult) -> Result<ExperimentProgress> {
        let experiment = self.experiment.as_mut().ok_or_else(no_experiment)?;
        experiment.job_done(result)
    }

    /// A job another engine could not finish: the experiment runs it again.
    pub fn experiment_job_failed(&mut self, index: usize) {
        if let Some(experiment) = self.experiment.as_mut() {
            experiment.job_failed(index);
        }
    }

    /// Starts a job another engine handed over, on `task`, in place of any other (a helper's side).
    pub fn start_job(&mut self, task: Task, job: Job) -> Result<()> {
        self.job = None;
        if job.model.is_none() {
            self.family_model = None;
        }
        let member = job.model;
        let run = JobRun::start(model_for(&self.lm, &self.family_model, member)?, &task, job)?;
        self.job = Some((task, member, run));
        Ok(())
    }

    /// One step of the job started last; its result after the last one (the job ends there,
    /// or at an error: the engine that handed it over runs it again).
    pub async fn job_step(&mut self) -> Result<Option<JobResult>> {
        let (task, member, mut run) = self.job.take().ok_or(Error::NotReady {
            what: "the job",
            todo: "start it first",
        })?;
        let lm = model_for(&self.lm, &self.family_model, member)?;
        let result = run.step(lm, &task, None).await?;
        if result.is_none() {
            self.job = Some((task, member, run));
        }
        Ok(result)
    }

    /// The current prompt as a PEFT adapter.
    pub async fn export(&self, base_model: &str) -> Result<AdapterFiles> {
        let run = self.run()?;
        adapter::save(
            &run.run.trainer.prompt,
            &self.adapter_config(run, base_model),
        )
        .await
    }

    fn adapter_config(&self, run: &Scheduled, base_model: &str) -> AdapterConfig {
        AdapterConfig::new(
            &self.lm.model,
            run.run.trainer.prompt.n_virtual(),
            &run.run.init,
            Some(base_model.to_string()).filter(|s| !s.is_empty()),
        )
    }

    /// Replaces the prompt with values the page kept on the host (its last view: what survives a
    /// lost GPU or a crashed engine), initialised as `settings` say for a later export.
    pub fn restore(&mut self, values: &[f32], n_virtual: usize, settings: Settings) -> Result<()> {
        let prompt = SoftPrompt::from_values(&self.lm, values, n_virtual)?;
        let settings = Settings {
            virtual_tokens: n_virtual,
            ..settings
        };
        let init = settings.prompt_init(&self.task()?.kind)?;
        self.start(settings, Some((prompt, init)))
    }

    /// Replaces the prompt with an adapter's (checked against this model); training can go on
    /// from it with `settings`. Returns its number of virtual tokens.
    /// Makes an adapter's prompt the current one; `model_name` is the loaded model's name (a Hub
    /// id, or empty when it has none), checked against the one the adapter names.
    pub fn import(
        &mut self,
        files: &AdapterFiles,
        settings: Settings,
        model_name: &str,
    ) -> Result<usize> {
        let (prompt, config) = adapter::load(files, &self.lm.model)?;
        adapter::check_base(&config, model_name)?;
        let init = PromptInit::from_peft(
            config.prompt_tuning_init.as_deref(),
            config.prompt_tuning_init_text.as_deref(),
        );
        let settings = Settings {
            virtual_tokens: config.num_virtual_tokens,
            ..settings
        };
        self.start(settings, Some((prompt, init)))?;
        Ok(config.num_virtual_tokens)
    }
}

/// An evaluation as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalView {
    pub accuracy: f32,
    pub predictions: Vec<crate::eval::Prediction>,
}

impl From<EvalReport> for EvalView {
    fn from(r: EvalReport) -> Self {
        Self {
            accuracy: r.accuracy(),
            predictions: r.predictions,
        }
    }
}
