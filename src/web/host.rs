//! Hosting an experiment: planned, stepped here, its trainings handed to helper engines as jobs
//! and their results taken back; the family member scale needs loaded for it.

use wasm_bindgen::prelude::*;

use super::{CrashPoint, JsResult, Lab, from_js, js_error, to_js};
use crate::error::Error;
use crate::experiments::{ExperimentConfig, ExperimentProgress};
use crate::job::JobResult;
use crate::loader::{LoadedModel, ModelFiles};
use crate::report;
use crate::tasks::Task;

/// An experiment's progress for the page; at the end, the command line's `tables` and, for
/// scale, its `reading` (`report.rs`) beside the summary.
fn experiment_view(progress: ExperimentProgress) -> JsResult {
    let mut view = serde_json::to_value(&progress).map_err(|e| js_error(Error::internal(e)))?;
    if let Some(done) = &progress.done {
        view["done"]["tables"] =
            serde_json::to_value(report::tables(done)).map_err(|e| js_error(Error::internal(e)))?;
        view["done"]["reading"] = report::reading(done).into();
    }
    to_js(&view)
}

#[wasm_bindgen]
impl Lab {
    /// Plans an experiment (`{name, steps, seeds, base}`) on the current task; transfer starts
    /// from the built-in task given by its `task.json` and splits.
    #[wasm_bindgen(js_name = startExperiment)]
    pub fn start_experiment(
        &mut self,
        config: JsValue,
        source_spec: Option<Vec<u8>>,
        source_train: Option<String>,
        source_test: Option<String>,
    ) -> Result<(), JsValue> {
        let config: ExperimentConfig = from_js(config, "experiment")?;
        let source = match (source_spec, source_train, source_test) {
            (Some(spec), Some(train), Some(test)) => {
                Some(Task::builtin(&spec, &train, &test).map_err(js_error)?)
            }
            _ => None,
        };
        let s = self.session_mut()?;
        s.host
            .start(&mut s.engine, config, source)
            .map_err(js_error)
    }

    /// One step of the experiment: `ExperimentProgress` (`done` holds the summary at the end,
    /// with the command line's `tables` and, for scale, its `reading`: `report.rs`).
    #[wasm_bindgen(js_name = experimentStep)]
    pub async fn experiment_step(&mut self) -> JsResult {
        self.crash_at(CrashPoint::Experiment);
        let s = self.session_mut()?;
        let progress = s.host.step(&mut s.engine).await;
        experiment_view(progress.map_err(js_error)?)
    }

    /// A training of the experiment for a helper engine: `{job, task}`, or undefined when none
    /// can start now (`Experiment::take_job`).
    #[wasm_bindgen(js_name = experimentTakeJob)]
    pub fn experiment_take_job(&mut self) -> JsResult {
        match self.session_mut()?.host.take_job() {
            Some((job, task)) => to_js(&serde_json::json!({ "job": job, "task": task })),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// A helper's finished job (`jobStep`'s result): the experiment's progress, as a step's.
    #[wasm_bindgen(js_name = experimentJobDone)]
    pub fn experiment_job_done(&mut self, result: JsValue) -> JsResult {
        let result: JobResult = from_js(result, "job result")?;
        let progress = self.session_mut()?.host.job_done(result);
        experiment_view(progress.map_err(js_error)?)
    }

    /// A job whose helper stopped: the experiment runs it again.
    #[wasm_bindgen(js_name = experimentJobFailed)]
    pub fn experiment_job_failed(&mut self, index: usize) -> Result<(), JsValue> {
        self.session_mut()?.host.job_failed(index);
        Ok(())
    }

    /// The family member (scale) to load before the experiment's next step: its index in the
    /// experiment's `models`, or undefined.
    #[wasm_bindgen(js_name = experimentModelNeeded)]
    pub fn experiment_model_needed(&self) -> Result<Option<usize>, JsValue> {
        let s = self.session()?;
        Ok(s.host.model_needed(&s.engine))
    }

    /// Loads family member `index` (scale) from its three files, in place of the one held, for
    /// the experiment's steps or a job on it.
    #[wasm_bindgen(js_name = loadFamilyMember)]
    pub fn load_family_member(
        &mut self,
        index: usize,
        config: Vec<u8>,
        weights: Vec<u8>,
        tokenizer: Vec<u8>,
    ) -> Result<(), JsValue> {
        let device = self.device.clone();
        let session = self.session_mut()?;
        session.engine.hold_family_member(None);
        let files = ModelFiles {
            config_json: &config,
            safetensors: &weights,
            tokenizer_json: &tokenizer,
        };
        let lm = LoadedModel::from_bytes(files, &device).map_err(js_error)?;
        session.engine.hold_family_member(Some((index, lm)));
        Ok(())
    }
}
