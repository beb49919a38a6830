//! What the page draws, as the engine hands it over: the model's facts, the prompt, a step's
//! progress, evaluations and the three-way comparison. Plain serde types; no behaviour.

use serde::Serialize;

use crate::eval::EvalReport;
use crate::train::StepStats;
use crate::viz::Neighbour;

/// Facts about the loaded model, shown before and after training.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub params: u64,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    pub n_kv_head: usize,
    /// `gpt2`, `llama` or `qwen2`.
    pub family: &'static str,
    pub vocab_size: usize,
    pub n_positions: usize,
    /// FNV-1a of every base weight, hex.
    pub fingerprint: String,
    /// What loading decided about the files on the user's behalf (special-token ids outside the
    /// vocabulary), shown with the model.
    pub notes: Vec<String>,
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

/// The vocabulary map and facts the page draws once a model is loaded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedView<'a> {
    pub info: ModelInfo,
    pub map_points: &'a [f32],
    pub map_labels: &'a [String],
    pub explained: [f32; 2],
    pub timings: LoadTimings,
}

/// Where opening a model spent its time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadTimings {
    /// Checking the files and building the model on the device.
    pub parse_ms: f64,
    /// Hashing every base weight (the frozen check's reference).
    pub fingerprint_ms: f64,
    /// The vocabulary map (PCA) and the unit rows for nearest tokens.
    pub map_ms: f64,
}

/// What one turn of the schedule did: the step's figures, and the prompt snapshot, held-out
/// accuracy and end-of-run check when they were due.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(flatten)]
    pub stats: StepStats,
    /// The step the run ends at.
    pub target: usize,
    /// Time of the training step alone (the optimizer step and reading its loss).
    pub ms_per_step: f64,
    pub prompt: Option<PromptView>,
    /// Held-out accuracy of the soft prompt at this step.
    pub accuracy: Option<f32>,
    /// Time of that held-out evaluation, when one ran at this step.
    pub eval_ms: Option<f64>,
    pub done: Option<Done>,
    /// What the device's allocator holds after the step (GPU backends; the CPU reports none).
    pub device_memory: Option<DeviceMemory>,
}

/// burn's device allocator after a step: a leak shows as growth from one step to the next.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceMemory {
    /// Live allocations (buffers' slices).
    pub allocs: u64,
    pub bytes_in_use: u64,
    /// Reserved on the device, pages held for reuse included.
    pub bytes_reserved: u64,
}

/// The end of a run: the base weights' fingerprint after training.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub fingerprint: String,
    /// Equal to the fingerprint taken when the model was loaded.
    pub unchanged: bool,
    /// Share of the run's time spent on evaluations and snapshots.
    pub overhead_share: f64,
}

/// The same frozen model on the held-out set, three ways.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub no_prompt: EvalView,
    pub text_prompt: EvalView,
    pub soft_prompt: EvalView,
}

/// An evaluation as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
