//! Soft Prompt Lab's engine: a frozen language model (GPT-2, or the Llama family: Llama, SmolLM2,
//! Qwen2) and a trainable soft prompt, the same code natively (CPU) and in the browser (WebGPU or
//! CPU in wasm).
//!
//! Bytes in, typed results out: nothing here touches the file system or spawns threads, except
//! the native conveniences marked `cfg(not(target_arch = "wasm32"))`.
//!
//! The data path, in reading order:
//! - [`loader`] turns `config.json` + `model.safetensors` bytes into a frozen [`model::Model`]
//!   (every key, shape and dtype checked), [`text`] checks `tokenizer.json` against it;
//! - [`tasks`] reads examples, [`batch`] tokenizes them into right-padded rows with the
//!   positions whose next token is scored (only the answer's tokens: PEFT's `-100` labels);
//! - [`soft_prompt`] is the method: the prompt `P` and its inits, the prompted input
//!   `cat(P, wte(ids))` with an all-ones attention mask over the virtual tokens as PEFT does
//!   (`soft_prompt::prompted_input`; the forward pass computes `P`'s part once per batch:
//!   `model::Model::forward_prefixed`), the cross-entropy on the scored tokens and the gradient
//!   a step uses, `soft_prompt::prompt_gradient`, of `P` alone (the base needs no gradient);
//! - [`train`] steps an optimizer over `P` with that gradient, a batch's parts computed by one
//!   engine or shared with the page's helper engines ([`pool`]); [`run`] is one run of it,
//!   [`schedule`] decides when a run looks at itself;
//! - [`eval`] and [`generate`] measure and use the prompt; [`adapter`] saves it as PEFT does;
//! - [`session`] is one engine as the page and the command line run it (the lab's run, an
//!   experiment's host, a helper), with [`settings`] its one table of defaults and bounds;
//!   [`experiments`] plans and runs the paper's findings, their trainings as [`job`]s any engine
//!   can do ([`model_tuning`] for scale's comparison), [`report`] makes their tables;
//! - [`viz`] maps the prompt among the vocabulary; `web` (wasm only) is the page's wasm surface,
//!   its messages and calls declared in [`protocol`] and its tables in [`page_table`];
//!   [`backend`] is the one place a device is chosen.

pub mod adapter;
pub mod backend;
pub mod batch;
pub mod error;
pub mod eval;
pub mod experiments;
pub mod footprint;
pub mod generate;
pub mod inspect;
pub mod job;
pub mod loader;
pub mod model;
pub mod model_tuning;
pub mod page_table;
pub mod pool;
pub mod protocol;
pub mod report;
pub mod run;
pub mod schedule;
pub mod session;
pub mod settings;
pub mod soft_prompt;
pub mod tasks;
pub mod text;
pub mod train;
pub mod viz;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
