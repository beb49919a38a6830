//! The training settings, declared once: names, defaults, bounds and help text. The session
//! checks settings against this table, the command line takes its defaults from it, and the page
//! reads it from `www/settings.js`, which `page_table::page_module` writes (a test keeps the file
//! current).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::soft_prompt::PromptInit;
use crate::tasks::TaskKind;
use crate::train::{OptimizerKind, TrainConfig};

/// A numeric setting: its name in the engine and the page, its URL key, bounds and default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberSetting {
    pub name: &'static str,
    pub url: &'static str,
    pub label: &'static str,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub integer: bool,
    pub help: &'static str,
}

impl NumberSetting {
    /// `value` if it lies within the bounds, else an error that names the setting and its range.
    pub fn check(&self, value: f64) -> Result<()> {
        let fits = value.is_finite()
            && (self.min..=self.max).contains(&value)
            && (!self.integer || value.fract() == 0.0);
        if fits {
            Ok(())
        } else {
            Err(Error::setting(format!(
                "{} must be {}{} to {}, got {value}",
                self.label.to_lowercase(),
                if self.integer {
                    "a whole number from "
                } else {
                    ""
                },
                self.min,
                self.max
            )))
        }
    }
}

pub const VIRTUAL_TOKENS: NumberSetting = NumberSetting {
    name: "virtualTokens",
    url: "vt",
    label: "Virtual tokens",
    min: 1.0,
    max: 32.0,
    default: 8.0,
    integer: true,
    help: "How many learned vectors are prepended to every input.",
};

pub const LEARNING_RATE: NumberSetting = NumberSetting {
    name: "lr",
    url: "lr",
    label: "Learning rate",
    min: 1e-5,
    max: 1.0,
    default: 0.03,
    integer: false,
    help: "Adam's step size for the prompt vectors.",
};

pub const STEPS: NumberSetting = NumberSetting {
    name: "steps",
    url: "steps",
    label: "Steps",
    min: 1.0,
    max: 10_000.0,
    default: 200.0,
    integer: true,
    help: "Optimizer steps in one training run.",
};

pub const BATCH: NumberSetting = NumberSetting {
    name: "batch",
    url: "batch",
    label: "Batch",
    min: 1.0,
    max: 128.0,
    default: 16.0,
    integer: true,
    help: "Training examples per step.",
};

pub const SEED: NumberSetting = NumberSetting {
    name: "seed",
    url: "seed",
    label: "Seed",
    min: 0.0,
    max: 2_147_483_647.0,
    default: 0.0,
    integer: true,
    help: "Fixes the prompt's init and the order of the batches: the same seed, the same run.",
};

pub const NUMBERS: [NumberSetting; 5] = [VIRTUAL_TOKENS, LEARNING_RATE, STEPS, BATCH, SEED];

/// How the prompt starts, by name (the names the page, its URL and the command line use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitName {
    /// The class labels' embeddings (Lester et al.); sampled vocabulary on a generation task.
    #[default]
    ClassLabels,
    /// Embeddings of random vocabulary tokens (PEFT's SAMPLE_VOCAB).
    SampleVocab,
    /// N(0, 1), PEFT's RANDOM.
    Random,
    /// U[-0.5, 0.5] (Lester et al.).
    Uniform,
    /// Embeddings of the init text's tokens (PEFT's TEXT).
    Text,
}

impl InitName {
    pub const ALL: [InitName; 5] = [
        InitName::ClassLabels,
        InitName::SampleVocab,
        InitName::Random,
        InitName::Uniform,
        InitName::Text,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InitName::ClassLabels => "class-labels",
            InitName::SampleVocab => "sample-vocab",
            InitName::Random => "random",
            InitName::Uniform => "uniform",
            InitName::Text => "text",
        }
    }

    /// The init called `name` (`auto`, the command line's old name, is `class-labels`).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "auto" {
            return Some(InitName::ClassLabels);
        }
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    pub fn label(self) -> &'static str {
        match self {
            InitName::ClassLabels => "class labels (Lester et al.)",
            InitName::SampleVocab => "sampled vocabulary",
            InitName::Random => "random N(0, 1)",
            InitName::Uniform => "random U[-0.5, 0.5]",
            InitName::Text => "text",
        }
    }

    /// The init for a task: class labels fall back to sampled vocabulary on a generation task,
    /// which has no label set. `first_k` limits vocabulary sampling to the first K token ids.
    pub fn resolve(
        self,
        kind: &TaskKind,
        init_text: &str,
        first_k: Option<usize>,
    ) -> Result<PromptInit> {
        Ok(match (self, kind) {
            (InitName::Random, _) => PromptInit::RandomNormal,
            (InitName::Uniform, _) => PromptInit::RandomUniform,
            (InitName::SampleVocab, _) | (InitName::ClassLabels, TaskKind::Generate) => {
                PromptInit::SampleVocab { first_k }
            }
            (InitName::ClassLabels, TaskKind::Classify { labels }) => PromptInit::ClassLabels {
                labels: labels.clone(),
                first_k,
            },
            (InitName::Text, _) if init_text.trim().is_empty() => {
                return Err(Error::setting(
                    "the text init needs an init text: type a few words that describe the task",
                ));
            }
            (InitName::Text, _) => PromptInit::Text(init_text.to_string()),
        })
    }
}

/// The optimizer over the prompt, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerName {
    #[default]
    Adam,
    Adamw,
    Sgd,
}

impl OptimizerName {
    pub const ALL: [OptimizerName; 3] = [
        OptimizerName::Adam,
        OptimizerName::Adamw,
        OptimizerName::Sgd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OptimizerName::Adam => "adam",
            OptimizerName::Adamw => "adamw",
            OptimizerName::Sgd => "sgd",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

/// AdamW's decoupled weight decay when the optimizer is `adamw` (torch's default).
pub const WEIGHT_DECAY: f32 = 0.01;
/// The prompt's gradient is clipped to this L2 norm (0: no clipping).
pub const MAX_GRAD_NORM: f32 = 1.0;

/// The fields of [`Settings`] the page sets and sends (its `TRAIN_FIELDS`); the others keep
/// their serde defaults there (the command line's optimizer, weight decay, clipping, first-K).
pub const PAGE_FIELDS: [&str; 7] = [
    "virtualTokens",
    "init",
    "initText",
    "lr",
    "steps",
    "batch",
    "seed",
];

/// One training run's settings (the page keeps them in its URL; the command line has a flag
/// for each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub virtual_tokens: usize,
    #[serde(default)]
    pub init: InitName,
    #[serde(default)]
    pub init_text: String,
    pub lr: f64,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
    #[serde(default)]
    pub optimizer: OptimizerName,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f32,
    #[serde(default = "default_max_grad_norm")]
    pub max_grad_norm: f32,
    /// Sample vocabulary inits only from the first K token ids (none: the whole vocabulary).
    #[serde(default)]
    pub init_first_k: Option<usize>,
}

fn default_weight_decay() -> f32 {
    WEIGHT_DECAY
}

fn default_max_grad_norm() -> f32 {
    MAX_GRAD_NORM
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            virtual_tokens: VIRTUAL_TOKENS.default as usize,
            init: InitName::default(),
            init_text: String::new(),
            lr: LEARNING_RATE.default,
            steps: STEPS.default as usize,
            batch: BATCH.default as usize,
            seed: SEED.default as u64,
            optimizer: OptimizerName::default(),
            weight_decay: WEIGHT_DECAY,
            max_grad_norm: MAX_GRAD_NORM,
            init_first_k: None,
        }
    }
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        VIRTUAL_TOKENS.check(self.virtual_tokens as f64)?;
        LEARNING_RATE.check(self.lr)?;
        STEPS.check(self.steps as f64)?;
        BATCH.check(self.batch as f64)?;
        SEED.check(self.seed as f64)?;
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::setting(
                "gradient clipping norm must be 0 (off) or a positive number",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::setting(
                "weight decay must be 0 or a positive number",
            ));
        }
        Ok(())
    }

    pub fn prompt_init(&self, kind: &TaskKind) -> Result<PromptInit> {
        self.init.resolve(kind, &self.init_text, self.init_first_k)
    }

    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            optimizer: match self.optimizer {
                OptimizerName::Adam => OptimizerKind::Adam,
                OptimizerName::Adamw => OptimizerKind::AdamW {
                    weight_decay: self.weight_decay,
                },
                OptimizerName::Sgd => OptimizerKind::Sgd,
            },
            lr: self.lr,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
        }
    }
}
