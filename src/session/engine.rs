//! What one engine has loaded, whatever role it plays: the frozen model with its fingerprint and
//! (the page's own engine only) vocabulary map, the task, the family member held for an experiment's steps or a job, and the
//! helper engines its steps are shared with. The roles (`lab`, `host`, `helper`) borrow it.

use web_time::Instant;

use super::views::{LoadTimings, LoadedView, ModelInfo, TokenView};
use super::{hex, ms_since};
use crate::batch::Sampler;
use crate::error::{Error, Result};
use crate::loader::{LoadedModel, ModelFiles};
use crate::model::WeightBytes;
use crate::pool::Helpers;
use crate::tasks::Task;
use crate::viz::VocabMap;
use burn::tensor::Device;

/// Training examples the no-prompt reference loss is measured on (one pass): as many as keep the
/// pass's work (parameters × examples) within `BASELINE_WORK`, between 16 and 64. It runs as the
/// first prompt is ready, and a Train pressed meanwhile waits for it: 64 examples took 3.7 s on a
/// 135M model in the page (16 there now; 64 on the bundled model).
const BASELINE_EXAMPLES: (usize, usize) = (16, 64);
const BASELINE_WORK: usize = 2_000_000_000;

/// What the engine is for: the page's own (it draws the prompt's views), or a helper in another
/// engine's pool (it computes parts of steps, evaluations and jobs, and draws nothing: no
/// vocabulary map, 108 MiB on a 135M model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Lab,
    Helper,
}

pub struct Engine {
    pub(crate) lm: LoadedModel,
    /// The vocabulary map the prompt's views are drawn on (none on a helper).
    map: Option<VocabMap>,
    pub(crate) base_fingerprint: u64,
    pub(crate) task: Option<Task>,
    /// The family member (scale) an experiment's steps or a helper's job run on now, by its
    /// index in the experiment's models.
    family_model: Option<(usize, LoadedModel)>,
    timings: LoadTimings,
    /// Engines elsewhere that share the training steps (`set_helpers`).
    helpers: Option<Box<dyn Helpers>>,
}

impl Engine {
    /// Loads and checks the model, hashes its weights and maps its vocabulary. The weights are
    /// read one tensor at a time (in the page from the file JavaScript holds, outside wasm's
    /// memory, which never shrinks) and the source is dropped once the tensors are built, before
    /// the fingerprint and the map allocate.
    pub async fn open(
        config_json: Vec<u8>,
        weights: impl WeightBytes,
        tokenizer_json: Vec<u8>,
        device: &Device,
        role: Role,
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
        let mut engine = Self::new(lm, role).await?;
        engine.timings.parse_ms = parse_ms;
        Ok(engine)
    }

    /// An engine on a model already loaded.
    pub async fn new(lm: LoadedModel, role: Role) -> Result<Self> {
        let t = Instant::now();
        let base_fingerprint = lm.model.fingerprint().await?;
        let fingerprint_ms = ms_since(t);
        let t = Instant::now();
        let map = match role {
            Role::Lab => Some(VocabMap::new(&lm).await?),
            Role::Helper => None,
        };
        Ok(Self {
            lm,
            map,
            base_fingerprint,
            task: None,
            family_model: None,
            helpers: None,
            timings: LoadTimings {
                parse_ms: 0.0,
                fingerprint_ms,
                map_ms: ms_since(t),
            },
        })
    }

    /// The model and its tokenizer, to read (the benches measure an engine as the page opens it).
    pub fn loaded(&self) -> &LoadedModel {
        &self.lm
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

    /// The model's facts and its vocabulary map (empty on a helper, which draws nothing).
    pub fn loaded_view(&self) -> LoadedView<'_> {
        LoadedView {
            info: self.info(),
            map_points: self.map.as_ref().map_or(&[], |m| &m.points),
            map_labels: self.map.as_ref().map_or(&[], |m| &m.labels),
            explained: self.map.as_ref().map_or([0.0; 2], |m| m.explained),
            timings: self.timings,
        }
    }

    /// The vocabulary map the prompt's views are drawn on.
    pub(crate) fn map(&self) -> Result<&VocabMap> {
        self.map.as_ref().ok_or_else(|| {
            Error::internal("a helper engine draws no prompt views (it has no vocabulary map)")
        })
    }

    /// The base weights' fingerprint now (hex): equal to `info().fingerprint` if nothing changed.
    pub async fn fingerprint(&self) -> Result<String> {
        Ok(hex(self.lm.model.fingerprint().await?))
    }

    pub(crate) fn task(&self) -> Result<&Task> {
        self.task.as_ref().ok_or(Error::NotReady {
            what: "the task",
            todo: "pick a task first",
        })
    }

    pub(crate) fn helpers(&self) -> Option<&dyn Helpers> {
        self.helpers.as_deref()
    }

    /// Engines that take part of each training step's batch (the page's worker pool); none:
    /// this engine computes every step alone.
    pub fn set_helpers(&mut self, helpers: Option<Box<dyn Helpers>>) {
        self.helpers = helpers;
    }

    /// Cross-entropy of the answers with no prompt at all, over the first training examples
    /// (`BASELINE_EXAMPLES`): the reference a prompt's training loss starts from and should fall
    /// below (the page draws it as a line in the loss chart).
    pub async fn loss_without_prompt(&self) -> Result<f32> {
        let task = self.task()?;
        let (fewest, most) = BASELINE_EXAMPLES;
        let params = self.lm.model.config.num_params() as usize;
        let by_work = BASELINE_WORK / params.max(1);
        let n = task.train.len().min(by_work.clamp(fewest, most));
        let mut sampler = Sampler::for_examples(&self.lm.tokenizer, &task.train[..n], 0)?;
        let batch = sampler.next_batch(n, 0, self.lm.tokenizer.pad_id())?;
        // Off the autodiff graph: no gradient is wanted (`Model::inference`).
        let loss = crate::soft_prompt::loss(&self.lm.model.inference(), None, &batch)?;
        Ok(crate::backend::read_f32(loss).await?[0])
    }

    /// The tokens a training row of `batch` is typically padded to on the current task, by this
    /// engine's tokenizer (`batch::typical_width`): what the memory estimate of another model
    /// assumes its rows hold (`inspect`). `None` before a task is set.
    pub fn typical_row_tokens(&self, batch: usize) -> Option<usize> {
        let task = self.task.as_ref()?;
        crate::batch::typical_width(&self.lm.tokenizer, &task.train, batch)
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

    /// The model a step runs on: family member `member` (which must be held), or the engine's own.
    pub(crate) fn model_for(&self, member: Option<usize>) -> Result<&LoadedModel> {
        match (&self.family_model, member) {
            (_, None) => Ok(&self.lm),
            (Some((held, held_lm)), Some(k)) if *held == k => Ok(held_lm),
            _ => Err(Error::NotReady {
                what: "the family member to run on",
                todo: "load the model it needs first",
            }),
        }
    }

    /// `member` when it is a family member this engine does not hold (the caller loads it).
    pub(crate) fn member_needed(&self, member: Option<usize>) -> Option<usize> {
        let held = self.family_model.as_ref().map(|(i, _)| *i);
        member.filter(|k| held != Some(*k))
    }

    /// Holds family member `index` for the steps on it; `None` frees the one held (before
    /// loading the next, so two are never in memory at once).
    pub fn hold_family_member(&mut self, model: Option<(usize, LoadedModel)>) {
        self.family_model = model;
    }
}
