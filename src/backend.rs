//! Backend choice, in one place, and the one way values leave the device (asynchronously:
//! WebGPU in the browser cannot block; natively `pollster::block_on` drives the same code).

use burn::tensor::{DType, Device, Int, Tensor, TensorData, bf16};

use crate::error::{Error, Result};

/// The CPU backend (burn's pure-Rust `flex`; measured faster than `ndarray` here), with autodiff
/// so a soft prompt on it can be trained.
pub fn cpu() -> Device {
    host().autodiff()
}

/// The CPU backend without autodiff: host arithmetic that is never trained (the vocabulary map).
pub fn host() -> Device {
    Device::flex()
}

/// Whether work on `device` is bound by its kernel launches rather than its arithmetic: a GPU
/// (a WebGPU dispatch costs 24-70 µs in browsers; a 135M step is thousands of them), not the
/// CPU. The model lays out a batch by it (`model::run`): on the CPU the prompt's states are
/// computed once for every row and padding is left out of the row-wise work; on a GPU the prompt
/// is prepended to every row and padding computed, so each layer is one attention and no gathers.
pub fn launch_bound(device: &Device) -> bool {
    device.clone().inner() != host()
}

/// Whether the GPU path's own kernel `name` (`norm`, `rope`, `attention`, `swiglu`, `logprob`:
/// `model::kernels`) runs on `device`: on every launch-bound one, unless, natively,
/// `SOFT_PROMPT_LAB_KERNELS` lists the ones to use (`none`: burn's ops alone). The benchmark
/// compares them with burn's fusion on one GPU that way.
pub fn own_kernel(device: &Device, name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(KERNELS_VAR).ok());
    launch_bound(device)
        && chosen
            .as_ref()
            .is_none_or(|list| list.split(',').any(|k| k == name))
}

/// The environment variable that chooses the GPU path's own kernels natively ([`own_kernel`]).
pub const KERNELS_VAR: &str = "SOFT_PROMPT_LAB_KERNELS";

/// Threads a training step may use on `device`: on the CPU backend natively, the machine's
/// cores (or `SOFT_PROMPT_LAB_THREADS`); one elsewhere (a GPU runs the batch as one; the page's
/// worker is a single thread). burn's own threads (flex's rayon) are off: at these matrix sizes
/// they cost more than they gave, so the step splits its batch instead (`train.rs`).
pub fn threads(device: &Device) -> usize {
    if cfg!(target_arch = "wasm32") || *device != cpu() {
        return 1;
    }
    std::env::var(THREADS_VAR)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The environment variable that sets the CPU backend's thread count natively.
pub const THREADS_VAR: &str = "SOFT_PROMPT_LAB_THREADS";

/// `f` on every item, the items spread in contiguous groups over `threads(device)` scoped
/// threads; results in the items' order. On one thread (the page, a GPU) it is a plain map.
pub fn map_threads<T: Sync, R: Send>(
    device: &Device,
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads(device).min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let groups: Vec<_> = items
            .chunks(per)
            .map(|group| s.spawn(move || group.iter().map(f).collect::<Vec<R>>()))
            .collect();
        groups
            .into_iter()
            .flat_map(|g| {
                g.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(Error::device)?;
    data.convert::<f32>().try_to_vec().map_err(Error::device)
}

/// Values read from a large tensor at a time (about 4 MB).
const READ_SLICE: usize = 1 << 20;

/// The values of `t` in order, read a slice of its first dimension at a time and handed to
/// `each` as stored (no conversion): reading a large tensor whole costs two passing copies of it
/// (the device's data, then the vector), which a heap that never shrinks keeps as its
/// high-water mark (216 MiB for a 135M model's token embedding).
pub async fn read_sliced<const D: usize>(
    t: Tensor<D>,
    mut each: impl FnMut(TensorData) -> Result<()>,
) -> Result<()> {
    let rows = t.dims()[0];
    let per_row = t.shape().num_elements() / rows.max(1);
    let per = (READ_SLICE / per_row.max(1)).max(1);
    for start in (0..rows).step_by(per) {
        let part = t.clone().narrow(0, start, per.min(rows - start));
        each(part.into_data_async().await.map_err(Error::device)?)?;
    }
    Ok(())
}

/// [`read_sliced`], each slice as f32 values.
pub async fn read_f32_sliced<const D: usize>(
    t: Tensor<D>,
    mut each: impl FnMut(Vec<f32>),
) -> Result<()> {
    read_sliced(t, |data| {
        each(match data.dtype() {
            DType::BF16 => bf16_to_f32(data.as_slice::<bf16>().map_err(Error::device)?),
            _ => data.convert::<f32>().try_to_vec().map_err(Error::device)?,
        });
        Ok(())
    })
    .await
}

/// bf16 values widened: f32's upper half, a shift. (half's `to_f32`, which burn's `convert`
/// uses, also quiets NaNs, a branch that keeps the loop from vectorising: the vocabulary map's
/// read of a 135M model's embedding took 330 ms natively that way; the loader refused
/// non-finite weights.)
pub fn bf16_to_f32(values: &[bf16]) -> Vec<f32> {
    values.iter().copied().map(widen_bf16).collect()
}

/// One bf16 value widened (see [`bf16_to_f32`]).
pub fn widen_bf16(v: bf16) -> f32 {
    f32::from_bits(u32::from(v.to_bits()) << 16)
}

pub async fn read_ints<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    let data = t.into_data_async().await.map_err(Error::device)?;
    data.convert::<i64>().try_to_vec().map_err(Error::device)
}

/// The most bytes one tensor binding holds on `device`: a GPU's storage-binding and buffer
/// limits, the smaller (cubecl requests the adapter's maximum limits; WebGPU's default is 128
/// MiB), none on the CPU. A vocabulary table larger than it loads in row parts (`model::Table`).
pub fn binding_limit(device: &Device) -> Option<u64> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if let burn::backend::DispatchDevice::Cube(gpu) = device.clone().inner().as_dispatch() {
        return Some(gpu.client().properties().memory.max_page_size);
    }
    let _ = device; // a build without a GPU backend has only the CPU
    None
}

/// A GPU whose buffers are smaller than the model's largest weight matrix (`need` bytes; the
/// vocabulary tables load in parts under [`binding_limit`]) cannot hold it.
pub fn check_buffer_limit(need: u64, max_buffer: u64) -> Result<()> {
    if need > max_buffer {
        return Err(Error::Device {
            detail: format!(
                "this GPU allows buffers of at most {} MiB, but the model's largest weight matrix needs {} MiB; use the CPU backend or a smaller model",
                max_buffer >> 20,
                need.div_ceil(1 << 20)
            ),
        });
    }
    Ok(())
}
