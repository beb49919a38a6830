//! Soft Prompt Lab's engine: a frozen GPT-2-family model and a trainable soft prompt, the same
//! code natively (CPU) and in the browser (WebGPU or CPU in wasm).
//!
//! Bytes in, typed results out: nothing here touches the file system or spawns threads, except
//! the native conveniences marked `cfg(not(target_arch = "wasm32"))`.

pub mod adapter;
pub mod backend;
pub mod batch;
pub mod error;
pub mod eval;
pub mod generate;
pub mod loader;
pub mod model;
pub mod session;
pub mod soft_prompt;
pub mod tasks;
pub mod text;
pub mod train;
pub mod viz;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
