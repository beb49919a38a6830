//! A helper engine's side: the pool's batch parts and held-out parts computed for another
//! engine, and a job of its experiment stepped here; and the lab engine's link to its helpers.

use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::js_helpers::JsHelpers;
use super::{JsResult, Lab, from_js, js_error, to_js};
use crate::error::Error;
use crate::job::Job;
use crate::tasks::{Example, Task, TaskKind};

#[wasm_bindgen]
impl Lab {
    /// Shares each training step's batch with the helper engines free at the time (`idle`:
    /// `() => number`) through `compute` (`(prompt: Float32Array, shape, parts: string) =>
    /// Promise<Array<{loss, grad} | null>>`, www/pool.js), and held-out scoring through
    /// `evaluate`; while none is free this engine trains alone.
    #[wasm_bindgen(js_name = setHelpers)]
    pub fn set_helpers(
        &mut self,
        compute: js_sys::Function,
        evaluate: js_sys::Function,
        idle: js_sys::Function,
    ) -> Result<(), JsValue> {
        let helpers = JsHelpers::new(compute, evaluate, idle);
        self.session_mut()?
            .engine
            .set_helpers(Some(Box::new(helpers)));
        Ok(())
    }

    /// Scores some of another engine's held-out examples (JSON) with its prompt (this engine
    /// is a helper): each one's predicted answer.
    #[wasm_bindgen(js_name = evalPart)]
    pub async fn eval_part(
        &self,
        prompt: Vec<f32>,
        n_virtual: usize,
        kind: String,
        examples: String,
    ) -> JsResult {
        let parse = |e: serde_json::Error| js_error(Error::setting(format!("held-out part: {e}")));
        let kind: TaskKind = serde_json::from_str(&kind).map_err(parse)?;
        let examples: Vec<Example> = serde_json::from_str(&examples).map_err(parse)?;
        let s = self.session()?;
        let answers = s
            .helper
            .eval_part(&s.engine, &prompt, n_virtual, &kind, &examples)
            .await;
        to_js(&answers.map_err(js_error)?)
    }

    /// Computes a part of another engine's batch (this engine is a helper):
    /// `{loss, grad: Float32Array}`.
    #[wasm_bindgen(js_name = partGradient)]
    pub async fn part_gradient(&self, prompt: Vec<f32>, shape: JsValue, rows: String) -> JsResult {
        let shape = from_js(shape, "part shape")?;
        let rows = serde_json::from_str(&rows).map_err(|e| js_error(Error::internal(e)))?;
        let s = self.session()?;
        let part = s
            .helper
            .part(&s.engine, prompt, shape, rows)
            .await
            .map_err(js_error)?;
        let obj = Object::new();
        Reflect::set(&obj, &"loss".into(), &part.loss.into())?;
        Reflect::set(&obj, &"grad".into(), &Float32Array::from(&part.grad[..]))?;
        Ok(obj.into())
    }
}

/// A helper's ops of `handle` (src/protocol/calls.rs).
impl Lab {
    /// A helper's side: starts a job another engine handed over (`experiment-take-job`'s).
    pub(super) fn start_job(&mut self, task: Task, job: Job) -> Result<(), JsValue> {
        let s = self.session_mut()?;
        s.helper
            .start_job(&mut s.engine, task, job)
            .map_err(js_error)
    }

    /// One step of the job: its result after the last step, undefined before.
    pub(super) async fn job_step(&mut self) -> JsResult {
        let s = self.session_mut()?;
        match s.helper.job_step(&s.engine).await.map_err(js_error)? {
            Some(result) => to_js(&result),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// The family member (scale) a job runs on, when this engine does not hold it: its index
    /// for `loadFamilyMember`, or none.
    pub(super) fn job_model_needed(&self, job: &Job) -> Result<Option<usize>, JsValue> {
        let s = self.session()?;
        Ok(s.helper.model_needed(&s.engine, job))
    }
}
