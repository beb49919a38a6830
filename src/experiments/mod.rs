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
//!
//! Here the catalogue (names, prose, config); `plan` makes an experiment's runs, `experiment`
//! runs them, `summary` holds their results.

mod experiment;
mod plan;
mod summary;

use serde::{Deserialize, Serialize};

pub use crate::footprint::Footprint;
pub use experiment::{Experiment, ExperimentProgress};
pub use summary::{ArmSummary, ExperimentSummary, ModelSize, RunResult};

use crate::settings::Settings;

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
/// The same on any other model (a real one, 1.3-2.5 s a step on the page's CPU path): one seed of
/// 30 steps keeps the prompt-length experiment's 5 trainings to about 3-6 minutes, text against
/// soft to about one.
pub const OTHER_MODEL_STEPS: usize = 30;
pub const OTHER_MODEL_SEEDS: usize = 1;
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
