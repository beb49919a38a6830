//! One lab session, as the page runs it: a loaded frozen model, a task, and a soft prompt being
//! trained step by step, with everything the page shows about it. Plain Rust (tested natively);
//! `web.rs` only converts its inputs and outputs for JavaScript.

use serde::{Deserialize, Serialize};

use crate::adapter::{self, AdapterConfig, AdapterFiles};
use crate::batch::Sampler;
use crate::error::{Error, Result};
use crate::eval::{EvalReport, evaluate};
use crate::generate::{GenerateOptions, Prompting, generate};
use crate::loader::{LoadedModel, ModelFiles};
use crate::soft_prompt::{PromptInit, SoftPrompt};
use crate::tasks::{Example, TaskKind, TaskSpec, parse_jsonl};
use crate::train::{OptimizerKind, StepStats, TrainConfig, Trainer};
use crate::viz::{Neighbour, VocabMap};
use burn::tensor::Device;

/// Nearest vocabulary tokens listed per virtual token.
const NEAREST_K: usize = 5;

/// The training settings the page exposes (and keeps in its URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub virtual_tokens: usize,
    /// `random`, `sample-vocab`, `text` or `class-labels`.
    pub init: String,
    #[serde(default)]
    pub init_text: String,
    pub lr: f64,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            virtual_tokens: 8,
            init: "class-labels".into(),
            init_text: String::new(),
            lr: 0.03,
            steps: 200,
            batch: 16,
            seed: 0,
        }
    }
}

impl Settings {
    fn check(&self) -> Result<()> {
        let range = |name: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::setting(format!(
                    "{name} must be {lo} to {hi}, got {v}"
                )))
            }
        };
        range("virtual tokens", self.virtual_tokens, 1, 32)?;
        range("steps", self.steps, 1, 10_000)?;
        range("batch size", self.batch, 1, 128)?;
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return Err(Error::setting(format!(
                "learning rate must be in (0, 1], got {}",
                self.lr
            )));
        }
        Ok(())
    }

    /// The init the settings name, for this task (class labels fall back to sampled vocabulary
    /// on a generation task, which has no label set).
    fn prompt_init(&self, kind: &TaskKind) -> Result<PromptInit> {
        Ok(match (self.init.as_str(), kind) {
            ("random", _) => PromptInit::RandomNormal,
            ("sample-vocab", _) | ("class-labels", TaskKind::Generate) => {
                PromptInit::SampleVocab { first_k: None }
            }
            ("class-labels", TaskKind::Classify { labels }) => PromptInit::ClassLabels {
                labels: labels.clone(),
                first_k: None,
            },
            ("text", _) if self.init_text.trim().is_empty() => {
                return Err(Error::setting(
                    "the text init needs an init text: type a few words that describe the task",
                ));
            }
            ("text", _) => PromptInit::Text(self.init_text.clone()),
            (other, _) => {
                return Err(Error::setting(format!(
                    "init {other:?} is not one of random, sample-vocab, text, class-labels"
                )));
            }
        })
    }
}

/// A task as the session uses it: examples split into training and held-out sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    pub train: Vec<Example>,
    pub test: Vec<Example>,
    /// The hand-written prompt the soft prompt is compared with.
    pub text_prompt: String,
}

impl Task {
    /// A built-in task: its `task.json` and the two JSONL splits.
    pub fn builtin(spec_json: &[u8], train_jsonl: &str, test_jsonl: &str) -> Result<Self> {
        let spec = TaskSpec::parse(spec_json)?;
        Ok(Self {
            kind: spec.kind()?,
            name: spec.name,
            train: parse_jsonl(train_jsonl)?,
            test: parse_jsonl(test_jsonl)?,
            text_prompt: spec.text_prompt,
        })
    }

    /// Examples a user pasted or uploaded (any format `tasks::parse_custom` reads).
    pub fn custom(name: &str, text: &str) -> Result<Self> {
        let examples = crate::tasks::parse_custom(text)?;
        let kind = crate::tasks::infer_kind(&examples);
        let (train, test) = crate::tasks::split_held_out(examples)?;
        Ok(Self {
            name: name.into(),
            kind,
            train,
            test,
            text_prompt: String::new(),
        })
    }

    pub fn labels(&self) -> &[String] {
        match &self.kind {
            TaskKind::Classify { labels } => labels,
            TaskKind::Generate => &[],
        }
    }
}

/// Facts about the loaded model, shown before and after training.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub params: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub vocab_size: usize,
    pub n_positions: usize,
    /// FNV-1a of every base weight, hex.
    pub fingerprint: String,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conditioning {
    NoPrompt,
    TextPrompt,
    SoftPrompt,
}

struct Run {
    trainer: Trainer,
    sampler: Sampler,
    settings: Settings,
    init: PromptInit,
}

pub struct Session {
    pub lm: LoadedModel,
    pub map: VocabMap,
    base_fingerprint: u64,
    task: Option<Task>,
    run: Option<Run>,
}

fn no_prompt() -> Error {
    Error::setting("no soft prompt yet: press Reset or Train first")
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

impl Session {
    /// Loads and checks the model, hashes its weights and maps its vocabulary.
    pub async fn open(files: ModelFiles<'_>, device: &Device) -> Result<Self> {
        let lm = LoadedModel::from_bytes(files, device)?;
        let base_fingerprint = lm.model.fingerprint().await?;
        let map = VocabMap::new(&lm).await?;
        Ok(Self {
            lm,
            map,
            base_fingerprint,
            task: None,
            run: None,
        })
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.lm.model.config;
        ModelInfo {
            params: c.num_params(),
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_embd: c.n_embd,
            vocab_size: c.vocab_size,
            n_positions: c.n_positions,
            fingerprint: hex(self.base_fingerprint),
        }
    }

    /// The base weights' fingerprint now (hex): equal to `info().fingerprint` if nothing changed.
    pub async fn fingerprint(&self) -> Result<String> {
        Ok(hex(self.lm.model.fingerprint().await?))
    }

    fn task(&self) -> Result<&Task> {
        self.task
            .as_ref()
            .ok_or_else(|| Error::setting("no task chosen: pick a task first"))
    }

    fn run(&self) -> Result<&Run> {
        self.run.as_ref().ok_or_else(no_prompt)
    }

    /// Sets the task; the current prompt is dropped (it belongs to the previous task).
    pub fn set_task(&mut self, task: Task) {
        self.task = Some(task);
        self.run = None;
    }

    /// A fresh prompt from `settings` (or the given one, e.g. an imported adapter), ready to train.
    fn start(&mut self, settings: Settings, given: Option<(SoftPrompt, PromptInit)>) -> Result<()> {
        settings.check()?;
        let task = self.task()?;
        let (prompt, init) = match given {
            Some(given) => given,
            None => {
                let init = settings.prompt_init(&task.kind)?;
                let prompt =
                    SoftPrompt::init(&self.lm, settings.virtual_tokens, &init, settings.seed)?;
                (prompt, init)
            }
        };
        let sampler = Sampler::for_examples(&self.lm.tokenizer, &task.train, settings.seed)?;
        let trainer = Trainer::new(
            prompt,
            TrainConfig {
                optimizer: OptimizerKind::Adam,
                lr: settings.lr,
                max_grad_norm: Some(1.0),
            },
        )?;
        self.run = Some(Run {
            trainer,
            sampler,
            settings,
            init,
        });
        Ok(())
    }

    /// Starts over with a new prompt initialised as `settings` say.
    pub fn reset(&mut self, settings: Settings) -> Result<()> {
        self.start(settings, None)
    }

    /// One training step on the next batch.
    pub async fn step(&mut self) -> Result<StepStats> {
        let pad = self.lm.tokenizer.pad_id();
        let run = self.run.as_mut().ok_or_else(no_prompt)?;
        let n = run.trainer.prompt.n_virtual();
        let batch = run.sampler.next_batch(run.settings.batch, n, pad)?;
        run.trainer.step(&self.lm.model, &batch)?.read().await
    }

    pub fn steps_done(&self) -> usize {
        self.run.as_ref().map_or(0, |r| r.trainer.step)
    }

    /// The prompt's values, its place on the vocabulary map and its nearest tokens.
    pub async fn prompt_view(&self) -> Result<PromptView> {
        let run = self.run()?;
        let prompt = &run.trainer.prompt;
        let values = crate::backend::read_f32(prompt.values()).await?;
        let tok = &self.lm.tokenizer;
        Ok(PromptView {
            step: run.trainer.step,
            n_virtual: prompt.n_virtual(),
            d_model: self.lm.model.config.n_embd,
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
            Conditioning::SoftPrompt => Prompting::soft(self.run()?.trainer.prompt.values()),
        })
    }

    /// Held-out accuracy with no prompt, the task's text prompt, or the soft prompt.
    pub async fn evaluate(&self, how: Conditioning) -> Result<EvalReport> {
        let task = self.task()?;
        evaluate(&self.lm, &self.prompting(how)?, &task.test, &task.kind).await
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
            .encode(input)?
            .into_iter()
            .map(|id| TokenView {
                id,
                text: tok.token_text(id),
            })
            .collect())
    }

    /// The current prompt as a PEFT adapter.
    pub async fn export(&self, base_model: &str) -> Result<AdapterFiles> {
        let run = self.run()?;
        let config = AdapterConfig::new(
            &self.lm.model,
            run.trainer.prompt.n_virtual(),
            &run.init,
            Some(base_model.to_string()).filter(|s| !s.is_empty()),
        );
        adapter::save(&run.trainer.prompt, &config).await
    }

    /// Replaces the prompt with an adapter's (checked against this model); training can go on
    /// from it with `settings`. Returns its number of virtual tokens.
    pub fn import(&mut self, files: &AdapterFiles, settings: Settings) -> Result<usize> {
        let (prompt, config) = adapter::load(files, &self.lm.model)?;
        // Recorded for a later export; PEFT itself ignores the init when loading.
        let init = match (
            config.prompt_tuning_init.as_deref(),
            &config.prompt_tuning_init_text,
        ) {
            (Some("TEXT"), Some(text)) => PromptInit::Text(text.clone()),
            (Some("SAMPLE_VOCAB"), _) => PromptInit::SampleVocab { first_k: None },
            _ => PromptInit::RandomNormal,
        };
        let settings = Settings {
            virtual_tokens: config.num_virtual_tokens,
            ..settings
        };
        self.start(settings, Some((prompt, init)))?;
        Ok(config.num_virtual_tokens)
    }
}

/// A task as the page lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    pub name: String,
    /// `generate` or `classify`.
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub train_size: usize,
    pub test_size: usize,
    pub text_prompt: String,
    pub chance: f32,
}

impl From<&Task> for TaskSummary {
    fn from(t: &Task) -> Self {
        Self {
            name: t.name.clone(),
            kind: match t.kind {
                TaskKind::Generate => "generate",
                TaskKind::Classify { .. } => "classify",
            },
            labels: t.labels().to_vec(),
            train_size: t.train.len(),
            test_size: t.test.len(),
            text_prompt: t.text_prompt.clone(),
            chance: crate::tasks::chance_level(&t.test),
        }
    }
}

/// An evaluation as the page shows it.
#[derive(Debug, Clone, Serialize)]
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
