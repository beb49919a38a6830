//! What a training run changed, the contrast the scale experiment draws (Lester et al. 2021):
//! prompt tuning learns a few thousand numbers and leaves every base weight bit-identical; model
//! tuning changes its copy of every weight. A run measures it against the base as it found it.

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Model;

/// What a training run changed, measured at its end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Footprint {
    /// Numbers the run trained: the prompt's, or every weight of the model's copy.
    pub learnt: u64,
    /// Weights of the model the trained copy differs in from the base (none for prompt tuning).
    pub weights_changed: u64,
    /// The model's weights in all.
    pub weights: u64,
    /// The optimizer's state: Adam and AdamW keep two f32 moments per trained number.
    pub optimizer_bytes: u64,
    /// The base's fingerprint after the run equals its fingerprint before it.
    pub base_unchanged: bool,
}

/// A base model as a run found it: its weights (shared tensors, not a copy: a run that wrote
/// to the base would not change these) and their fingerprint.
pub struct Base {
    snapshot: Model,
    fingerprint: u64,
}

impl Base {
    pub async fn of(model: &Model) -> Result<Self> {
        Ok(Self {
            snapshot: model.clone(),
            fingerprint: model.fingerprint().await?,
        })
    }

    /// What a run that trained `learnt` numbers left: `trained` (the model it ran: the base
    /// itself for prompt tuning, the tuned copy for model tuning) against the snapshot, and
    /// `base` (as held after the run) against the fingerprint.
    pub async fn footprint(&self, base: &Model, trained: &Model, learnt: u64) -> Result<Footprint> {
        Ok(Footprint {
            learnt,
            weights_changed: trained.weights_differing(&self.snapshot).await?,
            weights: base.num_params() as u64,
            optimizer_bytes: 2 * 4 * learnt,
            base_unchanged: base.fingerprint().await? == self.fingerprint,
        })
    }
}
