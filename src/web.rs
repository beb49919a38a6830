//! The page's entry points (wasm-bindgen), called only by `www/worker.js`: JavaScript values in,
//! `Session` calls, JavaScript values out. Errors become `{kind, message, line?}` objects.
//! Calls are serialised by the worker; each async method holds the session for its duration
//! (across its awaits, hence the allow below), and `with_session` refuses an overlapping call.
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;
use std::sync::Mutex;

use burn::tensor::Device;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::adapter::AdapterFiles;
use crate::error::Error;
use crate::loader::{ModelFiles, parse_config};
use crate::session::{Conditioning, Session, Settings, Task};

/// Set by wgpu when the GPU goes away; every later call reports it instead of touching the device.
static GPU_LOST: Mutex<Option<String>> = Mutex::new(None);

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(e: &Error) -> JsValue {
    let obj = Object::new();
    let debug = format!("{e:?}");
    let kind = debug.split([' ', '{', '(']).next().unwrap_or("Error");
    let _ = Reflect::set(&obj, &"kind".into(), &kind.into());
    let _ = Reflect::set(&obj, &"message".into(), &e.to_string().into());
    if let Error::TaskLine { line, .. } = e {
        let _ = Reflect::set(&obj, &"line".into(), &(*line as u32).into());
    }
    obj.into()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(&Error::device(e)))
}

fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(&Error::setting(format!("{what}: {e}"))))
}

/// What a config.json promises before the weights are fetched: size and a memory estimate.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigSummary {
    params: usize,
    n_layer: usize,
    n_embd: usize,
    vocab_size: usize,
    /// Device weights in f32, the host copy of the embedding for the map, and the file itself.
    estimated_bytes: f64,
}

/// Reads `config.json` and estimates the memory a model needs, without loading it.
#[wasm_bindgen(js_name = inspectConfig)]
pub fn inspect_config(config_json: &[u8], weights_file_bytes: f64) -> Result<JsValue, JsValue> {
    let c = parse_config(config_json).map_err(|e| js_error(&e))?;
    to_js(&ConfigSummary {
        params: c.num_params(),
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        vocab_size: c.vocab_size,
        estimated_bytes: (c.num_params() * 4) as f64
            + crate::backend::embedding_bytes(&c) as f64
            + weights_file_bytes,
    })
}

#[derive(Default)]
struct State {
    session: Option<Session>,
}

/// A compute device and, once a model is loaded, the session on it.
#[wasm_bindgen]
pub struct Lab {
    device: Device,
    /// The largest buffer the GPU allows (none on the CPU).
    max_buffer: Option<u64>,
    state: Rc<RefCell<State>>,
}

fn gpu_lost() -> Option<String> {
    GPU_LOST.lock().ok().and_then(|g| g.clone())
}

impl Lab {
    fn new(device: Device, max_buffer: Option<u64>) -> Self {
        Self {
            device,
            max_buffer,
            state: Rc::default(),
        }
    }

    /// Runs `f` on the session as a Promise; a lost GPU is reported before anything is touched.
    fn with_session<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<RefCell<State>>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    {
        let state = self.state.clone();
        future_to_promise(async move {
            if let Some(reason) = gpu_lost() {
                return Err(js_error(&Error::Device {
                    detail: format!("the GPU was lost ({reason}); switch to the CPU backend"),
                }));
            }
            // An overlapping call (the worker serialises them) is refused, not a borrow panic.
            match state.try_borrow_mut() {
                Err(_) => {
                    return Err(js_error(&Error::device(
                        "the lab is busy with another call; wait for it to finish",
                    )));
                }
                Ok(s) if s.session.is_none() => {
                    return Err(js_error(&Error::setting("no model loaded yet")));
                }
                Ok(_) => {}
            }
            f(state).await
        })
    }
}

/// The session, read-only (`with_session` has checked it exists). Borrows last across awaits:
/// the worker never overlaps calls.
fn shared(state: &RefCell<State>) -> Ref<'_, Session> {
    Ref::map(state.borrow(), |s| {
        s.session.as_ref().expect("checked by with_session")
    })
}

fn exclusive(state: &RefCell<State>) -> RefMut<'_, Session> {
    RefMut::map(state.borrow_mut(), |s| {
        s.session.as_mut().expect("checked by with_session")
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
                js_error(&Error::Device {
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
        Ok(Lab::new(device.autodiff(), Some(max_buffer)))
    }

    /// Loads a model from its three files; returns its facts and the vocabulary map.
    pub fn load(&self, config: Vec<u8>, weights: Vec<u8>, tokenizer: Vec<u8>) -> Promise {
        let (state, device, max_buffer) =
            (self.state.clone(), self.device.clone(), self.max_buffer);
        future_to_promise(async move {
            let cfg = parse_config(&config).map_err(|e| js_error(&e))?;
            if let Some(max) = max_buffer {
                crate::backend::check_buffer_limit(&cfg, max).map_err(|e| js_error(&e))?;
            }
            let files = ModelFiles {
                config_json: &config,
                safetensors: &weights,
                tokenizer_json: &tokenizer,
            };
            let session = Session::open(files, &device)
                .await
                .map_err(|e| js_error(&e))?;
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Loaded<'a> {
                info: crate::session::ModelInfo,
                map_points: &'a [f32],
                map_labels: &'a [String],
                explained: [f32; 2],
            }
            let out = to_js(&Loaded {
                info: session.info(),
                map_points: &session.map.points,
                map_labels: &session.map.labels,
                explained: session.map.explained,
            })?;
            state.borrow_mut().session = Some(session);
            Ok(out)
        })
    }

    /// A built-in task from its `task.json` and JSONL splits.
    #[wasm_bindgen(js_name = setBuiltinTask)]
    pub fn set_builtin_task(&self, spec: Vec<u8>, train: String, test: String) -> Promise {
        self.with_session(move |state| async move {
            let task = Task::builtin(&spec, &train, &test).map_err(|e| js_error(&e))?;
            set_task(&state, task)
        })
    }

    /// Examples typed or uploaded by the user (JSONL, `input => output` lines, or CSV).
    #[wasm_bindgen(js_name = setCustomTask)]
    pub fn set_custom_task(&self, name: String, text: String) -> Promise {
        self.with_session(move |state| async move {
            let task = Task::custom(&name, &text).map_err(|e| js_error(&e))?;
            set_task(&state, task)
        })
    }

    /// A new prompt initialised from `settings` (the page's settings object).
    pub fn reset(&self, settings: JsValue) -> Promise {
        self.with_session(move |state| async move {
            let settings: Settings = from_js(settings, "settings")?;
            exclusive(&state)
                .reset(settings)
                .map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// One training step: `{step, loss, gradNorm}`.
    pub fn step(&self) -> Promise {
        self.with_session(move |state| async move {
            let mut session = exclusive(&state);
            let stats = session.step().await.map_err(|e| js_error(&e))?;
            to_js(&stats)
        })
    }

    /// The prompt's values, map positions and nearest tokens.
    #[wasm_bindgen(js_name = promptView)]
    pub fn prompt_view(&self) -> Promise {
        self.with_session(move |state| async move {
            let session = shared(&state);
            to_js(&session.prompt_view().await.map_err(|e| js_error(&e))?)
        })
    }

    /// Held-out predictions and accuracy; `how` is `no-prompt`, `text-prompt` or `soft-prompt`.
    pub fn evaluate(&self, how: JsValue) -> Promise {
        self.with_session(move |state| async move {
            let how: Conditioning = from_js(how, "evaluation")?;
            let session = shared(&state);
            let report = session.evaluate(how).await.map_err(|e| js_error(&e))?;
            to_js(&crate::session::EvalView::from(report))
        })
    }

    /// Greedy continuation with the current soft prompt.
    pub fn generate(&self, input: String, max_new_tokens: usize) -> Promise {
        self.with_session(move |state| async move {
            let session = shared(&state);
            let text = session
                .generate(&input, max_new_tokens)
                .await
                .map_err(|e| js_error(&e))?;
            Ok(text.into())
        })
    }

    /// How a text is tokenized: `[{id, text}]`.
    pub fn tokenize(&self, text: String) -> Promise {
        self.with_session(move |state| async move {
            let session = shared(&state);
            to_js(&session.tokens(&text).map_err(|e| js_error(&e))?)
        })
    }

    /// The base weights' fingerprint now (hex).
    pub fn fingerprint(&self) -> Promise {
        self.with_session(move |state| async move {
            let session = shared(&state);
            Ok(session
                .fingerprint()
                .await
                .map_err(|e| js_error(&e))?
                .into())
        })
    }

    /// The prompt as PEFT adapter files: `{config, weights}` (Uint8Arrays).
    #[wasm_bindgen(js_name = exportAdapter)]
    pub fn export_adapter(&self, base_model: String) -> Promise {
        self.with_session(move |state| async move {
            let session = shared(&state);
            let files = session
                .export(&base_model)
                .await
                .map_err(|e| js_error(&e))?;
            let obj = Object::new();
            let _ = Reflect::set(
                &obj,
                &"config".into(),
                &Uint8Array::from(&files.config_json[..]),
            );
            let _ = Reflect::set(
                &obj,
                &"weights".into(),
                &Uint8Array::from(&files.safetensors[..]),
            );
            Ok(obj.into())
        })
    }

    /// Replaces the prompt with a PEFT adapter's; returns its number of virtual tokens.
    #[wasm_bindgen(js_name = importAdapter)]
    pub fn import_adapter(&self, config: Vec<u8>, weights: Vec<u8>, settings: JsValue) -> Promise {
        self.with_session(move |state| async move {
            let settings: Settings = from_js(settings, "settings")?;
            let files = AdapterFiles {
                config_json: config,
                safetensors: weights,
            };
            let n = exclusive(&state)
                .import(&files, settings)
                .map_err(|e| js_error(&e))?;
            Ok((n as u32).into())
        })
    }
}

fn set_task(state: &Rc<RefCell<State>>, task: Task) -> Result<JsValue, JsValue> {
    let summary = crate::session::TaskSummary::from(&task);
    exclusive(state).set_task(task);
    to_js(&summary)
}
