//! One engine, as the page and the command line run it: what it has loaded (`engine`: the frozen
//! model, its map, the task) and the three roles that borrow it — the lab's own run (`lab`), an
//! experiment's host (`host`), and a helper doing work another engine hands over (`helper`).
//! Plain Rust (tested natively); `web` only converts inputs and outputs for JavaScript.
//!
//! A role's methods take the engine as their first argument:
//! `session.lab.advance(&session.engine)`.

mod engine;
mod helper;
mod host;
mod lab;
mod timing;
mod views;

use web_time::Instant;

pub use engine::{Engine, Role};
pub use helper::HelperWork;
pub use host::{ExperimentHost, HandOut, JobAnswer, Turn};
pub use lab::{Conditioning, LabRun};
pub use views::{
    Comparison, DeviceMemory, Done, EvalView, LoadTimings, LoadedView, ModelInfo, NeighbourView,
    Progress, PromptView, TokenView,
};

use crate::error::Result;
use crate::loader::LoadedModel;
use crate::model::WeightBytes;
pub use crate::settings::Settings;
use crate::tasks::{Task, TaskSummary};
use burn::tensor::Device;

pub struct Session {
    pub engine: Engine,
    pub lab: LabRun,
    pub host: ExperimentHost,
    pub helper: HelperWork,
}

impl Session {
    /// Loads the model from its three files (`Engine::open`).
    pub async fn open(
        config_json: Vec<u8>,
        weights: impl WeightBytes,
        tokenizer_json: Vec<u8>,
        device: &Device,
        role: Role,
    ) -> Result<Self> {
        let engine = Engine::open(config_json, weights, tokenizer_json, device, role).await?;
        Ok(Self::with(engine))
    }

    /// The page's own session on a model already loaded.
    pub async fn new(lm: LoadedModel) -> Result<Self> {
        Ok(Self::with(Engine::new(lm, Role::Lab).await?))
    }

    fn with(engine: Engine) -> Self {
        Self {
            engine,
            lab: LabRun::default(),
            host: ExperimentHost::default(),
            helper: HelperWork::default(),
        }
    }

    /// Sets the task; what every role had on the previous one is dropped: the lab's prompt, the
    /// experiment, the family member held.
    pub fn set_task(&mut self, task: Task) -> TaskSummary {
        let summary = TaskSummary::from(&task);
        self.engine.task = Some(task);
        self.engine.hold_family_member(None);
        self.lab.clear();
        self.host.clear();
        summary
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}
