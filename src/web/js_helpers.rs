//! The page's pool of helper engines (www/pool.js) as the engine's `pool::Helpers`: JS functions
//! that send batch parts (or held-out examples) to other workers and resolve with their results.

use js_sys::{Array, Float32Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::pool::{AnswersFuture, Helpers, PartResult, PartRow, PartShape, PartsFuture};
use crate::tasks::{Example, TaskKind};

pub struct JsHelpers {
    compute: Function,
    evaluate: Function,
    /// `() => number`: the helpers free now (those on an experiment's job are not).
    idle: Function,
}

impl JsHelpers {
    pub fn new(compute: Function, evaluate: Function, idle: Function) -> Self {
        Self {
            compute,
            evaluate,
            idle,
        }
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

/// Awaits what a pool function returned: each part's answer read by `read` (None where its
/// helper failed, or everything failed on the way).
async fn answers<T>(
    sent: Option<Promise>,
    n: usize,
    read: fn(JsValue) -> Option<T>,
) -> Vec<Option<T>>
where
    T: Clone,
{
    let Some(promise) = sent else {
        return vec![None; n];
    };
    match JsFuture::from(promise).await {
        Ok(answers) => Array::from(&answers).iter().map(read).collect(),
        Err(_) => vec![None; n],
    }
}

/// One helper's predicted answers (an array of strings), or null when its part failed.
fn predictions(value: JsValue) -> Option<Vec<String>> {
    let array = value.dyn_into::<Array>().ok()?;
    array.iter().map(|v| v.as_string()).collect()
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
        let idle = self.idle.call0(&JsValue::NULL).ok();
        idle.and_then(|n| n.as_f64()).map_or(0, |n| n as usize)
    }

    fn compute<'a>(
        &'a self,
        prompt: Vec<f32>,
        shape: PartShape,
        parts: Vec<Vec<PartRow>>,
    ) -> PartsFuture<'a> {
        let n = parts.len();
        // Whatever failed on the way is computed by the caller (`None` parts).
        let sent = self.send(&prompt, shape, &parts);
        Box::pin(answers(sent, n, part_result))
    }

    fn evaluate<'a>(
        &'a self,
        prompt: Vec<f32>,
        n_virtual: usize,
        kind: &TaskKind,
        parts: Vec<Vec<Example>>,
    ) -> AnswersFuture<'a> {
        let n = parts.len();
        let sent = (|| {
            let kind = serde_json::to_string(kind).ok()?;
            let parts = serde_json::to_string(&parts).ok()?;
            let args = Array::of4(
                &Float32Array::from(prompt.as_slice()),
                &JsValue::from(n_virtual as u32),
                &kind.into(),
                &parts.into(),
            );
            let sent = self.evaluate.apply(&JsValue::NULL, &args).ok()?;
            sent.dyn_into::<Promise>().ok()
        })();
        Box::pin(answers(sent, n, predictions))
    }
}
