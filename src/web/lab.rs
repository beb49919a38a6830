//! The lab's run, as the page's worker calls it: a new prompt, one turn of the schedule, the
//! comparison, generation and tokens, and the prompt in and out (adapters, a restart's copy).

use js_sys::{Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{CrashPoint, JsResult, Lab, from_js, js_error, to_js};
use crate::adapter::{AdapterFiles, Precision};
use crate::session::Settings;

/// The lab's ops of `handle` (src/protocol/calls.rs).
impl Lab {
    /// A new prompt initialised from `settings` (the page's settings object): its view.
    pub(super) async fn reset(&mut self, settings: Settings) -> JsResult {
        let s = self.session_mut()?;
        s.lab.reset(&s.engine, settings).map_err(js_error)?;
        to_js(&s.lab.prompt_view(&s.engine).await.map_err(js_error)?)
    }

    /// Where the current run ends.
    pub(super) fn set_steps(&mut self, steps: usize) -> Result<(), JsValue> {
        self.session_mut()?.lab.set_steps(steps).map_err(js_error)
    }

    /// The run has reached its step count.
    pub(super) fn finished(&self) -> Result<bool, JsValue> {
        Ok(self.session()?.lab.finished())
    }

    /// One turn of the schedule: `Progress` (step, loss, prompt/accuracy/done when due).
    pub(super) async fn advance(&mut self) -> JsResult {
        self.crash_at(CrashPoint::Train);
        let s = self.session_mut()?;
        let progress = s.lab.advance(&s.engine).await.map_err(js_error)?;
        to_js(&progress)
    }

    /// No prompt, the text prompt and the soft prompt on the held-out set.
    pub(super) async fn compare(&mut self) -> JsResult {
        let s = self.session_mut()?;
        to_js(&s.lab.compare(&s.engine).await.map_err(js_error)?)
    }

    /// The soft prompt on the held-out set.
    pub(super) async fn evaluate_prompt(&mut self) -> JsResult {
        let s = self.session_mut()?;
        to_js(&s.lab.evaluate_prompt(&s.engine).await.map_err(js_error)?)
    }

    /// Greedy continuation with the current soft prompt.
    pub(super) async fn generate(&self, input: &str, max_new_tokens: usize) -> JsResult {
        let s = self.session()?;
        let text = s
            .lab
            .generate(&s.engine, input, max_new_tokens)
            .await
            .map_err(js_error)?;
        Ok(text.into())
    }

    /// How a text is tokenized: `[{id, text}]`.
    pub(super) fn tokenize(&self, text: &str) -> JsResult {
        to_js(&self.session()?.engine.tokens(text).map_err(js_error)?)
    }

    /// The prompt as PEFT adapter files: `{config, weights}` (Uint8Arrays).
    pub(super) async fn export_adapter(&self, base_model: &str, precision: Precision) -> JsResult {
        let s = self.session()?;
        let files = s
            .lab
            .export(&s.engine, base_model, precision)
            .await
            .map_err(js_error)?;
        let obj = Object::new();
        Reflect::set(
            &obj,
            &"config".into(),
            &Uint8Array::from(&files.config_json[..]),
        )?;
        Reflect::set(
            &obj,
            &"weights".into(),
            &Uint8Array::from(&files.safetensors[..]),
        )?;
        Ok(obj.into())
    }
}

/// The lab's calls that carry data.
#[wasm_bindgen]
impl Lab {
    /// Replaces the prompt with values the page kept (`[nVirtual, d_model]` row-major, from its
    /// last view): how a restarted engine gets the prompt back. Returns the prompt's view.
    #[wasm_bindgen(js_name = restorePrompt)]
    pub async fn restore_prompt(
        &mut self,
        values: Vec<f32>,
        n_virtual: usize,
        settings: JsValue,
    ) -> JsResult {
        let settings: Settings = from_js(settings, "settings")?;
        let s = self.session_mut()?;
        s.lab
            .restore(&s.engine, &values, n_virtual, settings)
            .map_err(js_error)?;
        to_js(&s.lab.prompt_view(&s.engine).await.map_err(js_error)?)
    }

    /// Replaces the prompt with a PEFT adapter's: `{nVirtual, prompt}` (the prompt's view).
    #[wasm_bindgen(js_name = importAdapter)]
    pub async fn import_adapter(
        &mut self,
        config: Vec<u8>,
        weights: Vec<u8>,
        settings: JsValue,
        model_name: String,
    ) -> JsResult {
        let settings: Settings = from_js(settings, "settings")?;
        let files = AdapterFiles {
            config_json: config,
            safetensors: weights,
        };
        let s = self.session_mut()?;
        let n_virtual = s
            .lab
            .import(&s.engine, &files, settings, &model_name)
            .map_err(js_error)?;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Imported {
            n_virtual: usize,
            prompt: crate::session::PromptView,
        }
        to_js(&Imported {
            n_virtual,
            prompt: s.lab.prompt_view(&s.engine).await.map_err(js_error)?,
        })
    }
}
