//! Hosting an experiment: planned, stepped here, its trainings handed to helper engines as jobs
//! and their results taken back; the family member scale needs loaded for it.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::js_bytes::JsBytes;
use super::{CrashPoint, JsResult, Lab, js_error, to_js};
use crate::error::Error;
use crate::experiments::{ExperimentConfig, ExperimentProgress};
use crate::loader::{LoadedModel, ModelFiles};
use crate::protocol::calls::TaskFiles;
use crate::report;
use crate::session::JobAnswer;

/// An experiment's progress for the page; at the end, the command line's `tables` and, for
/// scale, its `reading` (`report.rs`) beside the summary.
fn experiment_json(progress: ExperimentProgress) -> Result<serde_json::Value, JsValue> {
    let mut view = serde_json::to_value(&progress).map_err(|e| js_error(Error::internal(e)))?;
    if let Some(done) = &progress.done {
        view["done"]["tables"] =
            serde_json::to_value(report::tables(done)).map_err(|e| js_error(Error::internal(e)))?;
        view["done"]["reading"] = report::reading(done).into();
    }
    Ok(view)
}

/// The experiment host's ops of `handle` (src/protocol/calls.rs).
impl Lab {
    /// Plans an experiment (`{name, steps, seeds, base}`) on the current task; transfer starts
    /// from the built-in task given by its `task.json` and splits.
    pub(super) fn start_experiment(
        &mut self,
        config: ExperimentConfig,
        source: Option<TaskFiles>,
    ) -> Result<(), JsValue> {
        let source = source.map(|f| f.task()).transpose().map_err(js_error)?;
        let s = self.session_mut()?;
        s.host
            .start(&mut s.engine, config, source)
            .map_err(js_error)
    }

    /// One step of the experiment: `ExperimentProgress` (`done` holds the summary at the end,
    /// with the command line's `tables` and, for scale, its `reading`: `report.rs`).
    pub(super) async fn experiment_step(&mut self) -> JsResult {
        self.crash_at(CrashPoint::Experiment);
        let s = self.session_mut()?;
        let progress = s.host.step(&mut s.engine).await;
        to_js(&experiment_json(progress.map_err(js_error)?)?)
    }

    /// The scheduler's turn between steps (`ExperimentHost::tick`): `{reports, jobs,
    /// loadMember?, done}`, each report as a step's progress.
    pub(super) fn experiment_tick(&mut self, answers: Vec<JobAnswer>, idle: usize) -> JsResult {
        let s = self.session_mut()?;
        let turn = s.host.tick(&s.engine, answers, idle).map_err(js_error)?;
        let reports = turn.reports.into_iter().map(experiment_json);
        to_js(&serde_json::json!({
            "reports": reports.collect::<Result<Vec<_>, _>>()?,
            "jobs": turn.jobs,
            "loadMember": turn.load_member,
            "done": turn.done,
        }))
    }
}

/// The experiment host's call that carries data.
#[wasm_bindgen]
impl Lab {
    /// Loads family member `index` (scale) from its three files, in place of the one held, for
    /// the experiment's steps or a job on it.
    #[wasm_bindgen(js_name = loadFamilyMember)]
    pub fn load_family_member(
        &mut self,
        index: usize,
        config: Vec<u8>,
        weights: Uint8Array,
        tokenizer: Vec<u8>,
    ) -> Result<(), JsValue> {
        let device = self.device.clone();
        let session = self.session_mut()?;
        session.engine.hold_family_member(None);
        let files = ModelFiles {
            config_json: &config,
            safetensors: &JsBytes(weights),
            tokenizer_json: &tokenizer,
        };
        let lm = LoadedModel::from_bytes(files, &device).map_err(js_error)?;
        session.engine.hold_family_member(Some((index, lm)));
        Ok(())
    }
}
