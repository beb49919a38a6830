//! Model tuning, the comparison prompt tuning is measured against (Lester et al. 2021, Figure 1):
//! every weight of a copy of the model is trained (AdamW), with no prompt. The copy is the
//! tuner's own: the frozen base the session holds stays bit-identical, and the contrast the page
//! draws is the fingerprint: this copy changes, and now serves one task.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use crate::batch::{Sampler, ScoredBatch};
use crate::error::Result;
use crate::loader::LoadedModel;
use crate::model::Model;
use crate::soft_prompt::loss;
use crate::tasks::Task;
use crate::train::{ADAM_EPSILON, StepHandle, StepStats, clip_scale};

/// AdamW's settings for model tuning (the settings table holds prompt tuning's). The defaults are
/// the scale experiment's.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTuningConfig {
    pub lr: f64,
    pub weight_decay: f32,
    /// Clip the gradient of all weights together to this L2 norm, as torch's
    /// `clip_grad_norm_` over `model.parameters()` (none: no clipping).
    pub max_grad_norm: Option<f32>,
}

impl Default for ModelTuningConfig {
    /// lr 1e-4: the best of 3e-5, 1e-4, 3e-4, 1e-3 and 3e-3 for the scale experiment's 60 steps on
    /// the bundled model (sentiment and antonyms, 3 seeds; 1e-3 and up wreck antonyms: the model
    /// card's scale section); weight decay and clipping as pretraining's.
    fn default() -> Self {
        Self {
            lr: 1e-4,
            weight_decay: 0.1,
            max_grad_norm: Some(1.0),
        }
    }
}

pub struct ModelTuner {
    /// The tuned copy: every weight requires grad.
    pub model: Model,
    optim: ModuleOptimizer,
    config: ModelTuningConfig,
    pub step: usize,
}

impl ModelTuner {
    /// A trainable copy of `base` in f32 (f32 tensors are shared until the first step writes new
    /// ones).
    pub fn new(base: &Model, config: ModelTuningConfig) -> Self {
        let optim = AdamWConfig::new()
            .with_epsilon(ADAM_EPSILON)
            .with_weight_decay(config.weight_decay)
            .init();
        Self {
            model: base.clone().widened().set_require_grad(true),
            optim,
            config,
            step: 0,
        }
    }

    /// One AdamW step on `batch`; the handle's norm is all weights' gradient norm before clipping.
    pub fn step(&mut self, batch: &ScoredBatch) -> Result<StepHandle> {
        let loss = loss(&self.model, None, batch)?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let mut norm = SquaredNorm {
            grads: &grads,
            sum: None,
        };
        self.model.visit(&mut norm);
        let grad_norm = norm.sum.expect("a model has weights").sqrt(); // [1]
        let grads = match self.config.max_grad_norm {
            Some(max) => {
                let mut scaled = Scale {
                    grads,
                    scale: clip_scale(&grad_norm, max),
                };
                self.model.visit(&mut scaled);
                scaled.grads
            }
            None => grads,
        };
        self.model = self.optim.step(self.config.lr, self.model.clone(), grads);
        self.step += 1;
        Ok(StepHandle::new(self.step, loss.detach(), grad_norm))
    }
}

/// The sum of every weight gradient's squares, on the device.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum(); // [1]
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Every weight gradient times `scale` (`[1]`).
struct Scale {
    grads: GradientsParams,
    scale: Tensor<1>,
}

impl ModuleVisitor for Scale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let scale = self.scale.clone().reshape([1; D]); // [1] -> [1, ..., 1]
            self.grads.register(param.id, g * scale);
        }
    }
}

/// A model-tuning run on a task: the tuner and a seeded sampler over the task's training examples
/// (no prompt: the inputs as they are, as evaluation sees them).
pub struct ModelTuningRun {
    pub tuner: ModelTuner,
    sampler: Sampler,
    batch: usize,
}

impl ModelTuningRun {
    pub fn start(
        lm: &LoadedModel,
        task: &Task,
        batch: usize,
        seed: u64,
        config: ModelTuningConfig,
    ) -> Result<Self> {
        Ok(Self {
            tuner: ModelTuner::new(&lm.model, config),
            sampler: Sampler::for_examples(&lm.tokenizer, &task.train, seed)?,
            batch,
        })
    }

    pub async fn step(&mut self, lm: &LoadedModel) -> Result<StepStats> {
        let batch = self
            .sampler
            .next_batch(self.batch, 0, lm.tokenizer.pad_id())?;
        self.tuner.step(&batch)?.read().await
    }

    /// The tuned copy, frozen, with `lm`'s tokenizer: what evaluation runs on.
    pub fn tuned(&self, lm: &LoadedModel) -> LoadedModel {
        LoadedModel {
            model: self.tuner.model.clone().no_grad(),
            tokenizer: lm.tokenizer.clone(),
        }
    }
}
