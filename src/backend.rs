//! Backend choice, in one place, and the one way values leave the device (asynchronously:
//! WebGPU in the browser cannot block; natively `pollster::block_on` drives the same code).

use burn::tensor::{Device, Int, Tensor};

use crate::error::{Error, Result};
use crate::model::GptConfig;

/// The CPU backend (burn's pure-Rust `flex`; measured faster than `ndarray` here), with autodiff
/// so a soft prompt on it can be trained.
pub fn cpu() -> Device {
    Device::flex().autodiff()
}

pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(Error::device)?;
    data.convert::<f32>().try_to_vec().map_err(Error::device)
}

pub async fn read_ints<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    let data = t.into_data_async().await.map_err(Error::device)?;
    data.convert::<i64>().try_to_vec().map_err(Error::device)
}

/// A GPU whose buffers are smaller than the model's largest tensor cannot hold it (WebGPU's
/// default binding limit is 128 MiB; GPT-2 small's embedding alone is 147 MiB in f32).
pub fn check_buffer_limit(c: &GptConfig, max_buffer: u64) -> Result<()> {
    let need = c.embedding_bytes();
    if need > max_buffer {
        return Err(Error::Device {
            detail: format!(
                "this GPU allows buffers of at most {} MiB, but the model's token embedding needs {} MiB; use the CPU backend or a smaller model",
                max_buffer >> 20,
                need.div_ceil(1 << 20)
            ),
        });
    }
    Ok(())
}
