//! The page's pool of helper engines (www/pool.js) as the engine's `pool::Helpers`: a JS function
//! that sends batch parts to other workers and resolves with their results.

use js_sys::{Array, Float32Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::pool::{Helpers, PartResult, PartRow, PartShape, PartsFuture};

pub struct JsHelpers {
    compute: Function,
    count: usize,
}

impl JsHelpers {
    pub fn new(compute: Function, count: usize) -> Self {
        Self { compute, count }
    }

    /// Calls the pool: the parts leave for the helpers before this returns.
    fn send(&self, prompt: &[f32], shape: PartShape, parts: &[Vec<PartRow>]) -> Option<Promise> {
        let shape = serde_wasm_bindgen::to_value(&shape).ok()?;
        let parts = serde_json::to_string(parts).ok()?;
        let sent = self.compute.call3(
            &JsValue::NULL,
            &Float32Array::from(prompt),
            &shape,
            &parts.into(),
        );
        sent.ok()?.dyn_into::<Promise>().ok()
    }
}

/// One helper's answer: `{loss, grad}`, or null when its part failed.
fn part_result(value: JsValue) -> Option<PartResult> {
    let loss = Reflect::get(&value, &"loss".into()).ok()?.as_f64()? as f32;
    let grad = Reflect::get(&value, &"grad".into()).ok()?;
    let grad = grad.dyn_into::<Float32Array>().ok()?.to_vec();
    Some(PartResult { loss, grad })
}

impl Helpers for JsHelpers {
    fn count(&self) -> usize {
        self.count
    }

    fn compute<'a>(
        &'a self,
        prompt: Vec<f32>,
        shape: PartShape,
        parts: Vec<Vec<PartRow>>,
    ) -> PartsFuture<'a> {
        let n = parts.len();
        let sent = self.send(&prompt, shape, &parts);
        Box::pin(async move {
            // Whatever failed on the way is computed by the caller (`None` parts).
            let Some(promise) = sent else {
                return vec![None; n];
            };
            match JsFuture::from(promise).await {
                Ok(answers) => Array::from(&answers).iter().map(part_result).collect(),
                Err(_) => vec![None; n],
            }
        })
    }
}
