//! Backend choice, in one place, and the one way values leave the device (asynchronously:
//! WebGPU in the browser cannot block; natively `pollster::block_on` drives the same code).

use burn::tensor::{Device, Int, Tensor};

use crate::error::{Error, Result};

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
