//! Timing benches on the engine's own model, apart from any run: backend "auto" compares the
//! backends with them, the page's pool its sizes, `./build.sh bench` the pool beyond the cores.

use web_time::Instant;

use super::engine::Engine;
use super::ms_since;
use crate::batch::{Sampler, ScoredBatch, Sequence};
use crate::error::Result;
use crate::schedule::median;
use crate::settings::Settings;
use crate::soft_prompt::{PromptInit, SoftPrompt, prompt_gradient};
use crate::train::Trainer;

impl Engine {
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

    fn timing_prompt(&self) -> Result<SoftPrompt> {
        let init = PromptInit::SampleVocab { first_k: None };
        SoftPrompt::init(&self.lm, Settings::default().virtual_tokens, &init, 0)
    }

    /// Median milliseconds of a default-sized training step on this engine's device: `steps`
    /// timed steps after one warm-up, on a throwaway prompt and the timing rows (the user's run
    /// is not touched), shared with the idle helpers as a training step is.
    pub async fn time_steps(&self, steps: usize) -> Result<f64> {
        let settings = Settings::default();
        let mut sampler = Sampler::new(self.timing_rows(), 0)?;
        let mut trainer = Trainer::new(self.timing_prompt()?, settings.train_config());
        let mut times = Vec::new();
        for i in 0..=steps.max(1) {
            let t = Instant::now();
            trainer
                .step_next(&self.lm, &mut sampler, settings.batch, self.helpers())
                .await?;
            if i > 0 {
                times.push(ms_since(t));
            }
        }
        Ok(median(times))
    }

    /// Median milliseconds of what each of `parts` engines computes in a pooled step of the
    /// timing batch (one part's loss and prompt gradient), timed on this engine alone: the pool's
    /// per-engine work at sizes the machine has no cores for.
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
                prompt_gradient(&self.lm.model, prompt.clone(), &part, batch.targets.len())?;
            crate::backend::read_f32(grad).await?;
            if i > 0 {
                times.push(ms_since(t));
            }
        }
        Ok(median(times))
    }
}
