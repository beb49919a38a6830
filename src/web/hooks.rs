//! Hooks for the tests and the bench, apart from the page's API: a lost GPU and an engine
//! crash on demand (the recovery paths), and the pool's per-engine work timed alone.

use wasm_bindgen::prelude::*;

use super::{Lab, from_js, js_error};

#[wasm_bindgen]
impl Lab {
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
}
