//! The lab's role: the page's own soft prompt trained step by step on the engine's task, with what
//! the schedule says is due (snapshots, held-out accuracy, the frozen check), its comparison
//! with no prompt and the text prompt, and the prompt in and out as PEFT adapters.

use web_time::Instant;

use super::engine::Engine;
use super::views::{Comparison, DeviceMemory, Done, EvalView, NeighbourView, Progress, PromptView};
use super::{hex, ms_since};
use crate::adapter::{self, AdapterConfig, AdapterFiles, Precision};
use crate::error::{Error, Result};
use crate::eval::{EvalReport, evaluate};
use crate::generate::{GenerateOptions, Prompting, generate};
use crate::pool::pooled_evaluate;
use crate::run::Run;
use crate::schedule::{EvalCadence, Schedule};
use crate::settings::Settings;
use crate::soft_prompt::{PromptInit, SoftPrompt};
use crate::train::StepStats;

/// Nearest vocabulary tokens listed per virtual token.
const NEAREST_K: usize = 5;

/// What conditions the model in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditioning {
    NoPrompt,
    TextPrompt,
    SoftPrompt,
}

/// The lab's training run, with its schedule.
struct Scheduled {
    run: Run,
    schedule: Schedule,
    /// The schedule's last evaluation of the soft prompt, with its step: `compare` at that step
    /// reuses it.
    evaluated: Option<(usize, EvalView)>,
}

#[derive(Default)]
pub struct LabRun {
    run: Option<Scheduled>,
    cadence: EvalCadence,
    /// No-prompt and text-prompt results depend on the model and the task only.
    baselines: Option<(EvalView, EvalView)>,
}

fn no_prompt() -> Error {
    Error::NotReady {
        what: "the soft prompt",
        todo: "press Reset or Train first",
    }
}

impl LabRun {
    /// A new task: the prompt and the baselines belonged to the previous one.
    pub(crate) fn clear(&mut self) {
        self.run = None;
        self.baselines = None;
    }

    /// How often later runs evaluate on the held-out set (the default: a share of the time).
    pub fn set_eval_cadence(&mut self, cadence: EvalCadence) {
        self.cadence = cadence;
        if let Some(run) = &mut self.run {
            run.schedule.cadence = cadence;
        }
    }

    fn run(&self) -> Result<&Scheduled> {
        self.run.as_ref().ok_or_else(no_prompt)
    }

    fn schedule_mut(&mut self) -> Result<&mut Schedule> {
        Ok(&mut self.run.as_mut().ok_or_else(no_prompt)?.schedule)
    }

    /// A fresh prompt from `settings` (or the given one, e.g. an imported adapter), ready to train.
    fn start(
        &mut self,
        e: &Engine,
        settings: Settings,
        given: Option<(SoftPrompt, PromptInit)>,
    ) -> Result<()> {
        let task = e.task()?;
        let run = Run::start(&e.lm, task, settings, given)?;
        let (steps, batch) = (run.settings.steps, run.settings.batch);
        self.run = Some(Scheduled {
            schedule: Schedule::for_run(steps, self.cadence, batch, task.test.len()),
            run,
            evaluated: None,
        });
        Ok(())
    }

    /// Starts over with a new prompt initialised as `settings` say.
    pub fn reset(&mut self, e: &Engine, settings: Settings) -> Result<()> {
        self.start(e, settings, None)
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
    pub async fn step(&mut self, e: &Engine) -> Result<StepStats> {
        let run = self.run.as_mut().ok_or_else(no_prompt)?;
        run.run.step(&e.lm, e.helpers()).await
    }

    /// Advances the run by one step and does what the schedule says is due: a prompt snapshot,
    /// a held-out evaluation, and at the last step (or past it) the check that the base weights
    /// did not change.
    pub async fn advance(&mut self, e: &Engine) -> Result<Progress> {
        let started = Instant::now();
        let stats = self.step(e).await?;
        let took = started.elapsed();
        let step = stats.step;
        let schedule = self.schedule_mut()?;
        schedule.record_step(took);
        // A step past the end (the Step button) moves the end with it.
        schedule.target = schedule.target.max(step);
        let schedule = schedule.clone();
        let prompt = match schedule.prompt_due(step) {
            true => Some(self.snapshot(e).await?),
            false => None,
        };
        let (accuracy, eval_ms) = match schedule.eval_due(step) {
            true => self.scheduled_eval(e, step).await?,
            false => (None, None),
        };
        let done = match schedule.finished(step) {
            true => Some(self.done(e).await?),
            false => None,
        };
        let device_memory = e.lm.model.device().memory_pool_usage();
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

    /// The prompt's view, its time recorded by the schedule.
    async fn snapshot(&mut self, e: &Engine) -> Result<PromptView> {
        let t = Instant::now();
        let view = self.prompt_view(e).await?;
        self.schedule_mut()?.record_snapshot(t.elapsed());
        Ok(view)
    }

    /// The schedule's held-out evaluation at `step`: the accuracy and its time in ms.
    async fn scheduled_eval(
        &mut self,
        e: &Engine,
        step: usize,
    ) -> Result<(Option<f32>, Option<f64>)> {
        let t = Instant::now();
        let view = EvalView::from(self.evaluate(e, Conditioning::SoftPrompt).await?);
        let accuracy = view.accuracy;
        let run = self.run.as_mut().ok_or_else(no_prompt)?;
        run.schedule.record_eval(step, t.elapsed());
        run.evaluated = Some((step, view));
        Ok((Some(accuracy), Some(ms_since(t))))
    }

    /// The end-of-run check: the base weights' fingerprint against the one taken at load.
    async fn done(&self, e: &Engine) -> Result<Done> {
        let fingerprint = e.lm.model.fingerprint().await?;
        Ok(Done {
            fingerprint: hex(fingerprint),
            unchanged: fingerprint == e.base_fingerprint,
            overhead_share: self.run()?.schedule.overhead_share(),
        })
    }

    /// The prompt's values, its place on the vocabulary map and its nearest tokens.
    pub async fn prompt_view(&self, e: &Engine) -> Result<PromptView> {
        let run = self.run()?;
        let prompt = &run.run.trainer.prompt;
        let values = crate::backend::read_f32(prompt.values()).await?;
        let tok = &e.lm.tokenizer;
        let map = e.map()?;
        Ok(PromptView {
            step: run.run.trainer.step,
            n_virtual: prompt.n_virtual(),
            d_model: e.lm.model.config.d_model,
            points: map.project(&values),
            nearest: map
                .nearest(&values, NEAREST_K, |id| tok.token_text(id))
                .into_iter()
                .map(|row| row.into_iter().map(NeighbourView::from).collect())
                .collect(),
            values,
        })
    }

    fn prompting(&self, e: &Engine, how: Conditioning) -> Result<Prompting> {
        Ok(match how {
            Conditioning::NoPrompt => Prompting::default(),
            Conditioning::TextPrompt => Prompting::text(e.task()?.text_prompt.clone()),
            Conditioning::SoftPrompt => Prompting::soft(self.run()?.run.trainer.prompt.values()),
        })
    }

    /// Held-out accuracy with no prompt, the task's text prompt, or the soft prompt (scored with
    /// the helpers, when there are some).
    pub async fn evaluate(&self, e: &Engine, how: Conditioning) -> Result<EvalReport> {
        let task = e.task()?;
        if let Conditioning::SoftPrompt = how {
            let prompt = self.run()?.run.trainer.prompt.values();
            return pooled_evaluate(&e.lm, prompt, &task.test, &task.kind, e.helpers()).await;
        }
        evaluate(&e.lm, &self.prompting(e, how)?, &task.test, &task.kind).await
    }

    /// The soft prompt on the held-out set: the schedule's evaluation when it evaluated this
    /// step, else computed now and kept for `compare`.
    pub async fn evaluate_prompt(&mut self, e: &Engine) -> Result<EvalView> {
        let run = self.run()?;
        let step = run.run.trainer.step;
        if let Some((at, view)) = &run.evaluated
            && *at == step
        {
            return Ok(view.clone());
        }
        let view = EvalView::from(self.evaluate(e, Conditioning::SoftPrompt).await?);
        self.run.as_mut().ok_or_else(no_prompt)?.evaluated = Some((step, view.clone()));
        Ok(view)
    }

    /// No prompt, the text prompt and the soft prompt on the held-out set (the first two are
    /// computed once per task).
    pub async fn compare(&mut self, e: &Engine) -> Result<Comparison> {
        let soft_prompt = self.evaluate_prompt(e).await?;
        let (no_prompt, text_prompt) = match self.baselines.clone() {
            Some(b) => b,
            None => {
                let b = (
                    self.evaluate(e, Conditioning::NoPrompt).await?.into(),
                    self.evaluate(e, Conditioning::TextPrompt).await?.into(),
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
    pub async fn generate(&self, e: &Engine, input: &str, max_new_tokens: usize) -> Result<String> {
        let prompting = match self.run {
            Some(_) => self.prompting(e, Conditioning::SoftPrompt)?,
            None => Prompting::default(),
        };
        let opts = GenerateOptions {
            max_new_tokens: max_new_tokens.clamp(1, 64),
            ..GenerateOptions::default()
        };
        let out = generate(&e.lm, &prompting, &[input], &opts).await?;
        Ok(out.into_iter().next().map(|g| g.text).unwrap_or_default())
    }

    /// The current prompt as a PEFT adapter.
    pub async fn export(
        &self,
        e: &Engine,
        base_model: &str,
        precision: Precision,
    ) -> Result<AdapterFiles> {
        let run = &self.run()?.run;
        let config = AdapterConfig::new(
            &e.lm.model,
            run.trainer.prompt.n_virtual(),
            &run.init,
            Some(base_model.to_string()).filter(|s| !s.is_empty()),
        );
        adapter::save(&run.trainer.prompt, &config, precision).await
    }

    /// Replaces the prompt with values the page kept on the host (its last view: what survives a
    /// lost GPU or a crashed engine), initialised as `settings` say for a later export.
    pub fn restore(
        &mut self,
        e: &Engine,
        values: &[f32],
        n_virtual: usize,
        settings: Settings,
    ) -> Result<()> {
        let prompt = SoftPrompt::from_values(&e.lm, values, n_virtual)?;
        let settings = Settings {
            virtual_tokens: n_virtual,
            ..settings
        };
        let init = settings.prompt_init(&e.task()?.kind)?;
        self.start(e, settings, Some((prompt, init)))
    }

    /// Makes an adapter's prompt the current one (checked against this model); training can go
    /// on from it with `settings`. `model_name` is the loaded model's name (a Hub id, or empty
    /// when it has none), checked against the one the adapter names. Returns its number of
    /// virtual tokens.
    pub fn import(
        &mut self,
        e: &Engine,
        files: &AdapterFiles,
        settings: Settings,
        model_name: &str,
    ) -> Result<usize> {
        let (prompt, config) = adapter::load(files, &e.lm.model)?;
        adapter::check_base(&config, model_name)?;
        let init = PromptInit::from_peft(
            config.prompt_tuning_init.as_deref(),
            config.prompt_tuning_init_text.as_deref(),
        );
        let settings = Settings {
            virtual_tokens: config.num_virtual_tokens,
            ..settings
        };
        self.start(e, settings, Some((prompt, init)))?;
        Ok(config.num_virtual_tokens)
    }
}
