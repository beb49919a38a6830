//! The page's entry points (wasm-bindgen), called only by `www/worker.js`: JavaScript values in,
//! `Session` calls, JavaScript values out; errors become `ErrorView` objects
//! (`{kind, message, line?, fatal}`). The worker runs one call at a time; wasm-bindgen's own
//! borrow of `Lab` for each `&mut self` call would refuse an overlapping one with a JS error.

use std::sync::Mutex;

use burn::tensor::Device;
use js_sys::{Float32Array, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::adapter::AdapterFiles;
use crate::error::{Error, ErrorView};
use crate::experiments::{ExperimentConfig, ExperimentProgress};
use crate::inspect::{header_length, inspect};
use crate::job::{Job, JobResult};
use crate::loader::{LoadedModel, ModelFiles};
use crate::model::parse_config;
use crate::report;
use crate::session::{Session, Settings};
use crate::tasks::{Example, Task, TaskKind, TaskSpec};
use crate::web_helpers::JsHelpers;

/// Set by wgpu when the GPU goes away; every later call reports it instead of touching the device.
static GPU_LOST: Mutex<Option<String>> = Mutex::new(None);

type JsResult = Result<JsValue, JsValue>;

#[wasm_bindgen]
extern "C" {
    /// The worker's receiver of a panic's `ErrorView` (JSON): after a panic the instance traps
    /// and cannot be called again, so the words for the user leave before it does.
    #[wasm_bindgen(catch, js_namespace = globalThis, js_name = softPromptLabPanic)]
    fn report_panic(view_json: &str) -> Result<(), JsValue>;
}

#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let view = ErrorView::from(&Error::Panic {
            detail: info.to_string().replace('\n', " "),
        });
        if let Ok(json) = serde_json::to_string(&view) {
            // Absent outside the worker (a test page importing the module): nothing to tell.
            let _ = report_panic(&json);
        }
    }));
}

/// Where `crashNext` makes the engine panic, to test the page's recovery (as `simulateGpuLoss`
/// tests a lost GPU).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CrashPoint {
    Load,
    Train,
    Experiment,
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
    /// The largest buffer the GPU allows (none on the CPU).
    max_buffer: Option<u64>,
    session: Option<Session>,
    /// Destroys the WebGPU device, as a driver reset would (`simulateGpuLoss`).
    destroy_gpu: Option<Box<dyn Fn()>>,
    /// A panic armed by `crashNext`.
    crash: Option<CrashPoint>,
}

impl Lab {
    fn new(device: Device, max_buffer: Option<u64>) -> Self {
        Self {
            device,
            max_buffer,
            session: None,
            destroy_gpu: None,
            crash: None,
        }
    }

    /// Panics when a crash is armed at `point` (tests: `crashNext`).
    fn crash_at(&mut self, point: CrashPoint) {
        if self.crash == Some(point) {
            self.crash = None;
            panic!("a crash asked for by crashNext({point:?}), to test the page's recovery");
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
        Lab::new(crate::backend::cpu(), None)
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
        let limits = setup.device.limits();
        let max_buffer = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let gpu = setup.device.clone();
        Ok(Lab {
            destroy_gpu: Some(Box::new(move || gpu.destroy())),
            ..Lab::new(device.autodiff(), Some(max_buffer))
        })
    }

    /// Destroys the WebGPU device, so the recovery path (a named `GpuLost`, the page restarting
    /// on the CPU with the prompt's last snapshot) can be tested and tried; nothing on the CPU.
    #[wasm_bindgen(js_name = simulateGpuLoss)]
    pub fn simulate_gpu_loss(&self) {
        if let Some(destroy) = &self.destroy_gpu {
            destroy();
        }
    }

    /// Makes the next load, training step or experiment step panic (`"load"`, `"train"`,
    /// `"experiment"`), so the page's recovery from an engine crash can be tested and tried.
    #[wasm_bindgen(js_name = crashNext)]
    pub fn crash_next(&mut self, point: JsValue) -> Result<(), JsValue> {
        self.crash = Some(from_js(point, "crash point")?);
        Ok(())
    }

    /// What a checkpoint will cost before its weights are fetched (`inspect::inspect`), with this
    /// backend's largest buffer (`gpuBufferLimit`, none on the CPU) to hold its largest tensor.
    pub fn inspect(
        &self,
        config: &[u8],
        header: Option<Vec<u8>>,
        download_bytes: f64,
        batch: usize,
        n_virtual: usize,
    ) -> JsResult {
        let summary = inspect(
            config,
            header.as_deref(),
            download_bytes as u64,
            batch,
            n_virtual,
        )
        .map_err(js_error)?;
        let mut view = serde_json::to_value(&summary).map_err(|e| js_error(Error::internal(e)))?;
        view["gpuBufferLimit"] = self.max_buffer.into();
        to_js(&view)
    }

    /// Loads a model from its three files: `{info, mapPoints, mapLabels, explained}`.
    pub async fn load(
        &mut self,
        config: Vec<u8>,
        weights: Vec<u8>,
        tokenizer: Vec<u8>,
    ) -> JsResult {
        self.usable()?;
        self.crash_at(CrashPoint::Load);
        // The page refuses these before fetching; a model that arrives anyway is refused here,
        // not by an allocation failure that would abort the instance.
        let summary = inspect(&config, None, weights.len() as u64, 1, 1).map_err(js_error)?;
        if let Some(detail) = summary.refusal {
            return Err(js_error(Error::ModelTooLarge { detail }));
        }
        if let Some(max) = self.max_buffer {
            let cfg = parse_config(&config).map_err(js_error)?;
            crate::backend::check_buffer_limit(cfg.embedding_bytes(), max).map_err(js_error)?;
        }
        let session = Session::open(config, weights, tokenizer, &self.device)
            .await
            .map_err(js_error)?;
        let out = to_js(&session.engine.loaded_view())?;
        self.session = Some(session);
        Ok(out)
    }

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

    /// A built-in task from its `task.json` and JSONL splits: the task summary.
    #[wasm_bindgen(js_name = setBuiltinTask)]
    pub fn set_builtin_task(&mut self, spec: &[u8], train: &str, test: &str) -> JsResult {
        let task = Task::builtin(spec, train, test).map_err(js_error)?;
        to_js(&self.session_mut()?.set_task(task))
    }

    /// The loss of the answers with no prompt (the loss chart's reference line).
    #[wasm_bindgen(js_name = lossWithoutPrompt)]
    pub async fn loss_without_prompt(&self) -> Result<f32, JsValue> {
        self.session()?
            .engine
            .loss_without_prompt()
            .await
            .map_err(js_error)
    }

    /// Median ms of a default-sized training step on this backend, shared with the idle
    /// helpers (`Engine::time_steps`): backend "auto" and the pool's sizing time with it.
    #[wasm_bindgen(js_name = timeSteps)]
    pub async fn time_steps(&self, steps: usize) -> Result<f64, JsValue> {
        self.session()?
            .engine
            .time_steps(steps)
            .await
            .map_err(js_error)
    }

    /// Median ms of one part's loss and gradient when a default-sized batch is split among
    /// `parts` engines (`Engine::time_parts`: the bench's pool sizes beyond the cores).
    #[wasm_bindgen(js_name = timeParts)]
    pub async fn time_parts(&self, parts: usize, steps: usize) -> Result<f64, JsValue> {
        self.session()?
            .engine
            .time_parts(parts, steps)
            .await
            .map_err(js_error)
    }

    /// Examples typed or uploaded by the user (JSONL, `input => output` lines, or CSV).
    #[wasm_bindgen(js_name = setCustomTask)]
    pub fn set_custom_task(&mut self, name: &str, text: &str) -> JsResult {
        let task = Task::custom(name, text).map_err(js_error)?;
        to_js(&self.session_mut()?.set_task(task))
    }

    /// A new prompt initialised from `settings` (the page's settings object): its view.
    pub async fn reset(&mut self, settings: JsValue) -> JsResult {
        let settings: Settings = from_js(settings, "settings")?;
        let s = self.session_mut()?;
        s.lab.reset(&s.engine, settings).map_err(js_error)?;
        to_js(&s.lab.prompt_view(&s.engine).await.map_err(js_error)?)
    }

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

    /// A helper's side: starts a job another engine handed over (`experimentTakeJob`'s).
    #[wasm_bindgen(js_name = startJob)]
    pub fn start_job(&mut self, task: JsValue, job: JsValue) -> Result<(), JsValue> {
        let task: Task = from_js(task, "job's task")?;
        let job: Job = from_js(job, "job")?;
        let s = self.session_mut()?;
        s.helper
            .start_job(&mut s.engine, task, job)
            .map_err(js_error)
    }

    /// One step of the job: its result after the last step, undefined before.
    #[wasm_bindgen(js_name = jobStep)]
    pub async fn job_step(&mut self) -> JsResult {
        let s = self.session_mut()?;
        match s.helper.job_step(&s.engine).await.map_err(js_error)? {
            Some(result) => to_js(&result),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// The family member (scale) to load before the experiment's next step: its index in the
    /// experiment's `models`, or undefined.
    #[wasm_bindgen(js_name = experimentModelNeeded)]
    pub fn experiment_model_needed(&self) -> Result<Option<usize>, JsValue> {
        let s = self.session()?;
        Ok(s.host.model_needed(&s.engine))
    }

    /// The family member (scale) a job runs on, when this engine does not hold it: its index
    /// for `loadFamilyMember`, or undefined.
    #[wasm_bindgen(js_name = jobModelNeeded)]
    pub fn job_model_needed(&self, job: JsValue) -> Result<Option<usize>, JsValue> {
        let job: Job = from_js(job, "job")?;
        let s = self.session()?;
        Ok(s.helper.model_needed(&s.engine, &job))
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

    /// Where the current run ends.
    #[wasm_bindgen(js_name = setSteps)]
    pub fn set_steps(&mut self, steps: usize) -> Result<(), JsValue> {
        self.session_mut()?.lab.set_steps(steps).map_err(js_error)
    }

    /// The run has reached its step count.
    pub fn finished(&self) -> Result<bool, JsValue> {
        Ok(self.session()?.lab.finished())
    }

    /// One turn of the schedule: `Progress` (step, loss, prompt/accuracy/done when due).
    pub async fn advance(&mut self) -> JsResult {
        self.crash_at(CrashPoint::Train);
        let s = self.session_mut()?;
        let progress = s.lab.advance(&s.engine).await.map_err(js_error)?;
        to_js(&progress)
    }

    /// No prompt, the text prompt and the soft prompt on the held-out set.
    pub async fn compare(&mut self) -> JsResult {
        let s = self.session_mut()?;
        to_js(&s.lab.compare(&s.engine).await.map_err(js_error)?)
    }

    /// Greedy continuation with the current soft prompt.
    pub async fn generate(&self, input: String, max_new_tokens: usize) -> JsResult {
        let s = self.session()?;
        let text = s
            .lab
            .generate(&s.engine, &input, max_new_tokens)
            .await
            .map_err(js_error)?;
        Ok(text.into())
    }

    /// How a text is tokenized: `[{id, text}]`.
    pub fn tokenize(&self, text: &str) -> JsResult {
        to_js(&self.session()?.engine.tokens(text).map_err(js_error)?)
    }

    /// The prompt as PEFT adapter files: `{config, weights}` (Uint8Arrays).
    #[wasm_bindgen(js_name = exportAdapter)]
    pub async fn export_adapter(&self, base_model: String) -> JsResult {
        let s = self.session()?;
        let files = s
            .lab
            .export(&s.engine, &base_model)
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
