//! The page's entry points (wasm-bindgen), called only by `www/worker.js`: JavaScript values in,
//! `Session` calls, JavaScript values out; errors become `ErrorView` objects
//! (`{kind, message, line?, fatal}`). The worker runs one call at a time; wasm-bindgen's own
//! borrow of `Lab` for each `&mut self` call would refuse an overlapping one with a JS error.

mod handle;
mod helper;
mod hooks;
mod host;
mod js_bytes;
mod js_helpers;
mod lab;
mod out_of_memory;

use std::sync::Mutex;

use burn::tensor::Device;
use js_sys::Uint8Array;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::{Error, ErrorView};
use crate::inspect::{Step, header_length, inspect};
use crate::protocol::calls::TaskFiles;
use crate::session::{Role, Session};
use crate::tasks::{Task, TaskSpec};
use js_bytes::JsBytes;

/// Set by wgpu when the GPU goes away; every later call reports it instead of touching the device.
static GPU_LOST: Mutex<Option<String>> = Mutex::new(None);

type JsResult = Result<JsValue, JsValue>;

#[wasm_bindgen]
extern "C" {
    /// The worker's receiver of a panic's (or a failed allocation's) `ErrorView` (JSON): after
    /// either the instance traps and cannot be called again, so the words for the user leave
    /// before it does.
    #[wasm_bindgen(catch, js_namespace = globalThis, js_name = softPromptLabPanic)]
    fn report_panic(view_json: &str) -> Result<(), JsValue>;
}

#[wasm_bindgen(start)]
pub fn start() {
    out_of_memory::reserve();
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        report_fatal(&Error::Panic {
            detail: info.to_string().replace('\n', " "),
        });
    }));
}

/// Tells the worker why the instance is about to trap.
fn report_fatal(e: &Error) {
    if let Ok(json) = serde_json::to_string(&ErrorView::from(e)) {
        // Absent outside the worker (a test page importing the module): nothing to tell.
        let _ = report_panic(&json);
    }
}

/// Where the crash-next hook makes the engine panic, to test the page's recovery (as
/// simulate-gpu-loss tests a lost GPU).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CrashPoint {
    Load,
    Train,
    Experiment,
}

/// How the crash-next hook's crash comes: a panic, or an allocation that fails.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Crash {
    #[default]
    Panic,
    OutOfMemory,
}

fn js_error(e: Error) -> JsValue {
    to_js(&ErrorView::from(&e)).unwrap_or_else(|_| JsValue::from_str(&e.to_string()))
}

/// Values cross as JSON text and `JSON.parse`: serde_wasm_bindgen's serializer, one boundary
/// call per element, took 2.3 s (6 s before wasm-opt) for the vocabulary map's 12k values.
fn to_js<T: Serialize>(value: &T) -> JsResult {
    let text = serde_json::to_string(value).map_err(|e| js_error(Error::internal(e)))?;
    js_sys::JSON::parse(&text).map_err(|e| js_error(Error::internal(format!("{e:?}"))))
}

fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(Error::setting(format!("{what}: {e}"))))
}

/// The safetensors header's length from the file's first 8 bytes (checked: the page asks for
/// that many bytes next).
#[wasm_bindgen(js_name = headerLength)]
pub fn header_length_js(first: &[u8]) -> Result<f64, JsValue> {
    Ok(header_length(first).map_err(js_error)? as f64)
}

/// The split files a built-in task's `task.json` names: `[train, test]`.
#[wasm_bindgen(js_name = taskSplits)]
pub fn task_splits(spec_json: &[u8]) -> JsResult {
    let spec = TaskSpec::parse(spec_json).map_err(js_error)?;
    to_js(&[spec.train, spec.test])
}

/// A compute device and, once a model is loaded, the session on it.
#[wasm_bindgen]
pub struct Lab {
    device: Device,
    session: Option<Session>,
    /// Destroys the WebGPU device, as a driver reset would (`testHook` simulate-gpu-loss).
    destroy_gpu: Option<Box<dyn Fn()>>,
    /// A crash armed by `testHook` crash-next.
    crash: Option<(CrashPoint, Crash)>,
}

impl Lab {
    fn new(device: Device) -> Self {
        Self {
            device,
            session: None,
            destroy_gpu: None,
            crash: None,
        }
    }

    /// Crashes when a crash is armed at `point` (tests: `testHook` crash-next).
    fn crash_at(&mut self, point: CrashPoint) {
        match self.crash.take_if(|(at, _)| *at == point) {
            None => {}
            Some((_, Crash::Panic)) => panic!(
                "a crash asked for by the crash-next hook ({point:?}), to test the page's recovery"
            ),
            Some((_, Crash::OutOfMemory)) => out_of_memory::exhaust(),
        }
    }

    fn usable(&self) -> Result<(), JsValue> {
        match GPU_LOST.lock().ok().and_then(|g| g.clone()) {
            Some(reason) => Err(js_error(Error::GpuLost { reason })),
            None => Ok(()),
        }
    }

    /// The session; a lost GPU is reported before anything touches the device.
    fn session(&self) -> Result<&Session, JsValue> {
        self.usable()?;
        self.session.as_ref().ok_or_else(not_loaded)
    }

    fn session_mut(&mut self) -> Result<&mut Session, JsValue> {
        self.usable()?;
        self.session.as_mut().ok_or_else(not_loaded)
    }
}

fn not_loaded() -> JsValue {
    js_error(Error::NotReady {
        what: "the model",
        todo: "wait for it to load",
    })
}

#[wasm_bindgen]
impl Lab {
    /// The CPU backend (burn flex, wasm SIMD).
    pub fn cpu() -> Lab {
        Lab::new(crate::backend::cpu())
    }

    /// The WebGPU backend; fails with a message when the browser has no usable adapter. Call once
    /// per worker: the runtime cannot be initialised twice.
    pub async fn webgpu() -> Result<Lab, JsValue> {
        let (device, setup) = Device::wgpu_options()
            .init_with_setup_async()
            .await
            .map_err(|e| {
                js_error(Error::Device {
                    detail: format!("WebGPU could not start ({e}); the CPU backend still works"),
                })
            })?;
        setup.device.set_device_lost_callback(|reason, message| {
            if let Ok(mut lost) = GPU_LOST.lock() {
                *lost = Some(format!("{reason:?}: {message}"));
            }
        });
        let gpu = setup.device.clone();
        Ok(Lab {
            destroy_gpu: Some(Box::new(move || gpu.destroy())),
            ..Lab::new(device.autodiff())
        })
    }

    /// What a checkpoint will cost before its weights are fetched (`inspect::inspect`), with this
    /// backend's largest buffer (`gpuBufferLimit`, none on the CPU) to hold its largest tensor.
    /// Its rows are as long as the current task's are by this engine's tokenizer; `engines`:
    /// the lab engine and the helpers the page would start.
    pub fn inspect(
        &self,
        config: &[u8],
        header: Option<Vec<u8>>,
        download_bytes: f64,
        batch: usize,
        n_virtual: usize,
        engines: usize,
    ) -> JsResult {
        let mut step = Step {
            engines,
            ..Step::typical(batch, n_virtual)
        };
        let session = self.session.as_ref();
        if let Some(t) = session.and_then(|s| s.engine.typical_row_tokens(batch)) {
            step.row_tokens = t;
        }
        let summary =
            inspect(config, header.as_deref(), download_bytes as u64, step).map_err(js_error)?;
        let mut view = serde_json::to_value(&summary).map_err(|e| js_error(Error::internal(e)))?;
        view["gpuBufferLimit"] = crate::backend::binding_limit(&self.device).into();
        to_js(&view)
    }

    /// Loads a model from its three files: `{info, mapPoints, mapLabels, explained}` (no map
    /// on a `helper` in another engine's pool).
    pub async fn load(
        &mut self,
        config: Vec<u8>,
        weights: Uint8Array,
        tokenizer: Vec<u8>,
        helper: bool,
    ) -> JsResult {
        self.usable()?;
        self.crash_at(CrashPoint::Load);
        // The page refuses these before fetching; a model that arrives anyway is refused here,
        // not by an allocation failure that would abort the instance.
        let summary = inspect(&config, None, weights.length().into(), Step::typical(1, 1))
            .map_err(js_error)?;
        if let Some(detail) = summary.refusal {
            return Err(js_error(Error::ModelTooLarge { detail }));
        }
        let role = if helper { Role::Helper } else { Role::Lab };
        let session = Session::open(config, JsBytes(weights), tokenizer, &self.device, role)
            .await
            .map_err(js_error)?;
        let out = to_js(&session.engine.loaded_view())?;
        self.session = Some(session);
        Ok(out)
    }
}

/// The engine's ops of `handle` (src/protocol/calls.rs) on the task and the loaded model.
impl Lab {
    /// A built-in task from its `task.json` and JSONL splits: the task summary.
    fn set_builtin_task(&mut self, files: &TaskFiles) -> JsResult {
        let task = files.task().map_err(js_error)?;
        to_js(&self.session_mut()?.set_task(task))
    }

    /// The loss of the answers with no prompt (the loss chart's reference line).
    async fn loss_without_prompt(&self) -> Result<f32, JsValue> {
        self.session()?
            .engine
            .loss_without_prompt()
            .await
            .map_err(js_error)
    }

    /// Median ms of a default-sized training step on this backend, shared with the idle
    /// helpers (`Engine::time_steps`): backend "auto" and the pool's sizing time with it.
    async fn time_steps(&self, steps: usize) -> Result<f64, JsValue> {
        self.session()?
            .engine
            .time_steps(steps)
            .await
            .map_err(js_error)
    }

    /// Examples typed or uploaded by the user (JSONL, `input => output` lines, or CSV).
    fn set_custom_task(&mut self, name: &str, text: &str) -> JsResult {
        let task = Task::custom(name, text).map_err(js_error)?;
        to_js(&self.session_mut()?.set_task(task))
    }
}
