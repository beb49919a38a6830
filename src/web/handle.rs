//! The one entry for the worker's calls that carry no bulk data: `handle({op, ...})`, a
//! `protocol::calls::Call`, dispatched to the role it belongs to (the task and model here, the
//! lab's run, the experiment host, a helper's job).

use wasm_bindgen::prelude::*;

use super::{JsResult, Lab, from_js};
use crate::protocol::calls::Call;

/// Nothing, or an answer, as JavaScript: `undefined` for none.
fn some<T: Into<JsValue>>(value: Option<T>) -> JsValue {
    value.map_or(JsValue::UNDEFINED, Into::into)
}

#[wasm_bindgen]
impl Lab {
    /// One call of src/protocol/calls.rs (`www/protocol.js` CALL): `{op: 'advance'}`,
    /// `{op: 'set-steps', steps: 40}`, ...; its answer, or an `ErrorView`.
    pub async fn handle(&mut self, call: JsValue) -> JsResult {
        let none = JsValue::UNDEFINED;
        match from_js::<Call>(call, "engine call")? {
            Call::SetBuiltinTask(files) => self.set_builtin_task(&files),
            Call::SetCustomTask { name, text } => self.set_custom_task(&name, &text),
            Call::LossWithoutPrompt => Ok(self.loss_without_prompt().await?.into()),
            Call::TimeSteps { steps } => Ok(self.time_steps(steps).await?.into()),
            Call::Reset { settings } => self.reset(settings).await,
            Call::SetSteps { steps } => self.set_steps(steps).map(|()| none),
            Call::Finished => Ok(self.finished()?.into()),
            Call::Advance => self.advance().await,
            Call::Compare => self.compare().await,
            Call::Evaluate => self.evaluate_prompt().await,
            Call::Generate {
                text,
                max_new_tokens,
            } => self.generate(&text, max_new_tokens).await,
            Call::Tokenize { text } => self.tokenize(&text),
            Call::Export {
                base_model,
                precision,
            } => {
                self.export_adapter(&base_model, precision.unwrap_or_default())
                    .await
            }
            Call::StartExperiment { config, source } => {
                self.start_experiment(config, source).map(|()| none)
            }
            Call::ExperimentTick { answers, idle } => self.experiment_tick(answers, idle),
            Call::ExperimentStep => self.experiment_step().await,
            Call::StartJob { task, job } => self.start_job(task, job).map(|()| none),
            Call::JobStep => self.job_step().await,
            Call::JobModelNeeded { job } => Ok(some(self.job_model_needed(&job)?)),
        }
    }
}
