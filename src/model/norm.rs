//! The norms, in f32 over the last dimension: RMSNorm (`w · x / sqrt(mean(x²) + eps)`, the
//! Llama family) and LayerNorm (`w · (x - mean) / sqrt(var + eps) + b`, biased variance as
//! `torch.nn.LayerNorm`, GPT-2). burn's ops on the CPU; one kernel each way on a GPU
//! (`norm_kernel.rs`), chosen by [`crate::backend::launch_bound`].

use burn::tensor::Tensor;

/// RMSNorm of `x` `[b, s, d]` with the weight `w` `[d]`.
pub fn rms_norm(x: Tensor<3>, w: Tensor<1>, eps: f64) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if crate::backend::launch_bound(&x.device()) {
        use super::norm_kernel::FusedNorm;
        let (x, w) = (x.into_dispatch(), w.into_dispatch());
        let y = <burn::backend::Dispatch as FusedNorm>::rms_norm(x, w, eps as f32);
        return Tensor::from_dispatch(y);
    }
    rms_norm_composed(x, w, eps)
}

/// LayerNorm of `x` `[b, s, d]` with the weight `w` and bias `b` `[d]`.
pub fn layer_norm(x: Tensor<3>, w: Tensor<1>, b: Tensor<1>, eps: f64) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if crate::backend::launch_bound(&x.device()) {
        use super::norm_kernel::FusedNorm;
        let (x, w, b) = (x.into_dispatch(), w.into_dispatch(), b.into_dispatch());
        let y = <burn::backend::Dispatch as FusedNorm>::layer_norm(x, w, b, eps as f32);
        return Tensor::from_dispatch(y);
    }
    layer_norm_composed(x, w, b, eps)
}

/// [`rms_norm`] in burn's ops.
pub(super) fn rms_norm_composed(x: Tensor<3>, w: Tensor<1>, eps: f64) -> Tensor<3> {
    let rms = x.clone().powi_scalar(2).mean_dim(2).add_scalar(eps).sqrt(); // [b, s, 1]
    x / rms * w.unsqueeze::<3>()
}

/// [`layer_norm`] in burn's ops.
pub(super) fn layer_norm_composed(x: Tensor<3>, w: Tensor<1>, b: Tensor<1>, eps: f64) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2); // [b, s, 1] each
    let x = (x - mean) / var.add_scalar(eps).sqrt();
    x * w.unsqueeze::<3>() + b.unsqueeze::<3>()
}
