//! The tests' and the bench's hooks, behind one entry apart from the page's API: a lost GPU and
//! an engine crash on demand (the recovery paths), and the pool's per-engine work timed alone.

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::{Crash, CrashPoint, JsResult, Lab, from_js, js_error};

#[derive(Deserialize)]
#[serde(tag = "hook", rename_all = "kebab-case")]
enum Hook {
    /// Destroys the WebGPU device, so the recovery path (a named `GpuLost`, the page restarting
    /// on the CPU with the prompt's last snapshot) can be tested and tried; nothing on the CPU.
    SimulateGpuLoss,
    /// Makes the next load, training step or experiment step panic (or run out of memory), so
    /// the page's recovery from an engine crash can be tested and tried.
    CrashNext {
        point: CrashPoint,
        #[serde(default)]
        how: Crash,
    },
    /// Median ms of one part's loss and gradient when a default-sized batch is split among
    /// `parts` engines (`Engine::time_parts`: the bench's pool sizes beyond the cores).
    TimeParts { parts: usize, steps: usize },
}

#[wasm_bindgen]
impl Lab {
    /// One hook: `{hook: 'simulate-gpu-loss'}`, `{hook: 'crash-next', point: 'load' | 'train' |
    /// 'experiment', how?: 'panic' | 'out-of-memory'}` or `{hook: 'time-parts', parts, steps}` (answers the median ms).
    #[wasm_bindgen(js_name = testHook)]
    pub async fn test_hook(&mut self, hook: JsValue) -> JsResult {
        match from_js(hook, "test hook")? {
            Hook::SimulateGpuLoss => {
                if let Some(destroy) = &self.destroy_gpu {
                    destroy();
                }
            }
            Hook::CrashNext { point, how } => self.crash = Some((point, how)),
            Hook::TimeParts { parts, steps } => {
                let engine = &self.session()?.engine;
                let ms = engine.time_parts(parts, steps).await.map_err(js_error)?;
                return Ok(ms.into());
            }
        }
        Ok(JsValue::UNDEFINED)
    }
}
