//! Prompt tuning: cross-entropy on the target tokens only, an optimizer over the prompt alone.
//!
//! A step returns its scalars as device tensors; they are read with `.read().await`, because
//! WebGPU in the browser cannot block (natively, `pollster::block_on` drives the same code).

use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Tensor;

use crate::backend::read_f32;
use crate::batch::{Sampler, ScoredBatch};
use crate::error::{Error, Result};
use crate::loader::LoadedModel;
use crate::model::Model;
use crate::pool::{Helpers, pooled_loss_and_grad};
use crate::soft_prompt::{SoftPrompt, prompt_gradient, require_targets};

/// torch's Adam epsilon (burn's default is 1e-5); the parity test follows torch's trajectory.
pub(crate) const ADAM_EPSILON: f32 = 1e-8;
/// torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
const CLIP_EPSILON: f32 = 1e-6;

/// The factor that clips a gradient of norm `grad_norm` (`[1]`) to `max`, as torch's
/// `clip_grad_norm_`: min(1, max / (norm + eps)), on the device (no read, no branch on a value).
pub(crate) fn clip_scale(grad_norm: &Tensor<1>, max: f32) -> Tensor<1> {
    grad_norm
        .clone()
        .add_scalar(CLIP_EPSILON)
        .recip()
        .mul_scalar(max)
        .clamp_max(1.0)
}

#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerKind {
    Adam,
    AdamW { weight_decay: f32 },
    Sgd,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// Clip the prompt's gradient to this L2 norm (none: no clipping).
    pub max_grad_norm: Option<f32>,
}

/// A step's scalars, still on the device.
pub struct StepHandle {
    step: usize,
    loss: Tensor<1>,
    grad_norm: Tensor<1>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStats {
    pub step: usize,
    pub loss: f32,
    /// L2 norm of the prompt's gradient before clipping.
    pub grad_norm: f32,
}

impl StepHandle {
    pub(crate) fn new(step: usize, loss: Tensor<1>, grad_norm: Tensor<1>) -> Self {
        Self {
            step,
            loss,
            grad_norm,
        }
    }

    /// Reads the scalars without blocking; a non-finite loss is an error.
    pub async fn read(self) -> Result<StepStats> {
        let loss = read_scalar(self.loss).await?;
        let grad_norm = read_scalar(self.grad_norm).await?;
        if !loss.is_finite() {
            return Err(Error::LossNotFinite {
                step: self.step,
                value: loss,
            });
        }
        Ok(StepStats {
            step: self.step,
            loss,
            grad_norm,
        })
    }
}

async fn read_scalar(t: Tensor<1>) -> Result<f32> {
    read_f32(t)
        .await?
        .first()
        .copied()
        .ok_or_else(|| Error::internal("a scalar read back empty"))
}

pub struct Trainer {
    pub prompt: SoftPrompt,
    optim: ModuleOptimizer,
    config: TrainConfig,
    /// Steps taken so far.
    pub step: usize,
}

impl Trainer {
    /// An optimizer over `prompt` alone. The learning rate and clipping norm come checked from
    /// the settings table (`Settings::check`).
    pub fn new(prompt: SoftPrompt, config: TrainConfig) -> Self {
        let optim = match config.optimizer {
            OptimizerKind::Adam => AdamConfig::new().with_epsilon(ADAM_EPSILON).init(),
            OptimizerKind::AdamW { weight_decay } => AdamWConfig::new()
                .with_epsilon(ADAM_EPSILON)
                .with_weight_decay(weight_decay)
                .init(),
            OptimizerKind::Sgd => SgdConfig::new().init(),
        };
        Self {
            prompt,
            optim,
            config,
            step: 0,
        }
    }

    /// One step on the sampler's next `batch_size` examples, its scalars read; the batch's parts
    /// shared with `helpers` when there are any.
    pub async fn step_next(
        &mut self,
        lm: &LoadedModel,
        sampler: &mut Sampler,
        batch_size: usize,
        helpers: Option<&dyn Helpers>,
    ) -> Result<StepStats> {
        let n = self.prompt.n_virtual();
        let batch = sampler.next_batch(batch_size, n, lm.tokenizer.pad_id())?;
        match helpers.filter(|h| h.count() > 0) {
            Some(h) => self.step_pooled(&lm.model, &batch, h).await?.read().await,
            None => self.step(&lm.model, &batch)?.read().await,
        }
    }

    /// One optimizer step on `batch`. Only the prompt is in the graph that needs gradients: the
    /// model's weights do not require grad, so backward computes no weight gradients at all.
    pub fn step(&mut self, model: &Model, batch: &ScoredBatch) -> Result<StepHandle> {
        // Parts in threads only over a frozen base: with weights that require grad, the parts'
        // graphs share those weights' nodes, and burn 0.22's autodiff then merges them while
        // another thread's backward holds a graph lock (a lock-order deadlock, seen in the bench).
        let threads = match model.is_frozen() {
            true => crate::backend::threads(&model.device()),
            false => 1,
        };
        let (loss, grad) = loss_and_grad(model, self.prompt.embeddings.val(), batch, threads)?;
        Ok(self.apply(loss, grad))
    }

    /// One optimizer step on `batch` with its parts shared with `helpers` (the page's pool).
    pub async fn step_pooled(
        &mut self,
        model: &Model,
        batch: &ScoredBatch,
        helpers: &dyn Helpers,
    ) -> Result<StepHandle> {
        let (loss, grad) =
            pooled_loss_and_grad(model, self.prompt.embeddings.val(), batch, helpers).await?;
        Ok(self.apply(loss, grad))
    }

    /// Clips `grad` (the batch's prompt gradient) and takes the optimizer's step.
    fn apply(&mut self, loss: Tensor<1>, grad: Tensor<2>) -> StepHandle {
        let grad_norm = grad.clone().square().sum().sqrt(); // [1]
        let grad = match self.config.max_grad_norm {
            Some(max) => grad * clip_scale(&grad_norm, max).unsqueeze::<2>(), // [1] -> [1, 1]
            None => grad,
        };
        let mut params = GradientsParams::new();
        params.register(self.prompt.embeddings.id, grad);
        self.prompt = self.optim.step(self.config.lr, self.prompt.clone(), params);
        self.step += 1;
        StepHandle::new(self.step, loss, grad_norm)
    }
}

/// The batch's mean loss and its gradient with respect to `prompt`, the rows split in up to
/// `parts` parts that run on the backend's threads (`backend::map_threads`). Each part has its
/// own autodiff graph from its own copy of the prompt and divides its summed loss by the whole
/// batch's target count, so the parts' losses and gradients add up to the whole batch's.
pub fn loss_and_grad(
    model: &Model,
    prompt: Tensor<2>,
    batch: &ScoredBatch,
    parts: usize,
) -> Result<(Tensor<1>, Tensor<2>)> {
    require_targets(batch)?;
    let total = batch.targets.len();
    let part = |part: &ScoredBatch| prompt_gradient(model, prompt.clone(), part, total);
    let results = crate::backend::map_threads(&model.device(), &batch.split(parts), part);
    let mut sum: Option<(Tensor<1>, Tensor<2>)> = None;
    for r in results {
        let (l, g) = r?;
        sum = Some(match sum {
            Some((sl, sg)) => (sl + l, sg + g),
            None => (l, g),
        });
    }
    Ok(sum.expect("at least one part"))
}
