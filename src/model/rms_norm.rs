//! RMSNorm, `w · x / sqrt(mean(x²) + eps)` over the last dimension in f32: burn's ops on the
//! CPU, one kernel each way on a GPU (`rms_norm_kernel.rs`), chosen by
//! [`crate::backend::launch_bound`].

use burn::tensor::Tensor;

/// `x` `[b, s, d]` normed with the weight `w` `[d]`.
pub fn rms_norm(x: Tensor<3>, w: Tensor<1>, eps: f64) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if crate::backend::launch_bound(&x.device()) {
        use super::rms_norm_kernel::FusedRmsNorm;
        return Tensor::from_dispatch(<burn::backend::Dispatch as FusedRmsNorm>::rms_norm(
            x.into_dispatch(),
            w.into_dispatch(),
            eps as f32,
        ));
    }
    let rms = x
        .clone()
        .powi_scalar(2)
        .mean_dim(2)
        .add_scalar(eps)
        .sqrt(); // [b, s, 1]
    x / rms * w.unsqueeze::<3>()
}
