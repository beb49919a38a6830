//! A training run: a soft prompt, its optimizer and the seeded sampler over a task's training
//! examples, made from the settings. The session's run and each of an experiment's runs are one.

use crate::batch::Sampler;
use crate::error::Result;
use crate::loader::LoadedModel;
use crate::pool::Helpers;
use crate::settings::Settings;
use crate::soft_prompt::{PromptInit, SoftPrompt};
use crate::tasks::Task;
use crate::train::{StepStats, Trainer};

pub struct Run {
    pub trainer: Trainer,
    pub sampler: Sampler,
    pub settings: Settings,
    /// How the prompt started (an adapter records it).
    pub init: PromptInit,
}

impl Run {
    /// A run on `task` from a fresh prompt initialised as `settings` say, or from `given` (an
    /// imported or carried prompt and the init it came from).
    pub fn start(
        lm: &LoadedModel,
        task: &Task,
        settings: Settings,
        given: Option<(SoftPrompt, PromptInit)>,
    ) -> Result<Self> {
        settings.check()?;
        let (prompt, init) = match given {
            Some(given) => given,
            None => {
                let init = settings.prompt_init(&task.kind)?;
                let prompt = SoftPrompt::init(lm, settings.virtual_tokens, &init, settings.seed)?;
                (prompt, init)
            }
        };
        Ok(Self {
            trainer: Trainer::new(prompt, settings.train_config()),
            sampler: Sampler::for_examples(&lm.tokenizer, &task.train, settings.seed)?,
            settings,
            init,
        })
    }

    /// One training step on the sampler's next batch (its parts shared with `helpers`, if any).
    pub async fn step(
        &mut self,
        lm: &LoadedModel,
        helpers: Option<&dyn Helpers>,
    ) -> Result<StepStats> {
        self.trainer
            .step_next(lm, &mut self.sampler, self.settings.batch, helpers)
            .await
    }
}
