//! The ops that are one kernel each way on a GPU (`kernels/`) and burn's ops on the CPU, chosen
//! here by [`crate::backend::own_kernel`]: the norms, in f32 over the last dimension (RMSNorm,
//! `w · x / sqrt(mean(x²) + eps)`, the Llama family; LayerNorm, `w · (x - mean) / sqrt(var +
//! eps) + b` with the biased variance as `torch.nn.LayerNorm`, GPT-2), rotary position
//! embedding, attention, and the Llama MLP's gate (SwiGLU). The kernels take no gradient for the
//! weights (frozen when prompt tuning): a norm whose weight is trained (model tuning) keeps
//! burn's ops.

use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::{Bool, Int, Tensor};

#[cfg(any(feature = "gpu", target_arch = "wasm32"))]
use crate::backend::own_kernel;

/// RMSNorm of `x` `[b, s, d]` with the weight `w` `[d]`.
pub fn rms_norm(x: Tensor<3>, w: Tensor<1>, eps: f64) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&x.device(), "norm") && !w.is_require_grad() {
        use super::kernels::norm::FusedNorm;
        let (x, w) = (x.into_dispatch(), w.into_dispatch());
        let y = <burn::backend::Dispatch as FusedNorm>::rms_norm(x, w, eps as f32);
        return Tensor::from_dispatch(y);
    }
    rms_norm_composed(x, w, eps)
}

/// LayerNorm of `x` `[b, s, d]` with the weight `w` and bias `b` `[d]`.
pub fn layer_norm(x: Tensor<3>, w: Tensor<1>, b: Tensor<1>, eps: f64) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&x.device(), "norm") && !w.is_require_grad() && !b.is_require_grad() {
        use super::kernels::norm::FusedNorm;
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

/// RoPE's angles at a run of positions or one per row: `cos` and `sin` `[1|b, s|1, 1, hd]`, the
/// first half of `sin` negated ([`rope`]), and both as one tensor `[2 · (1|b), s|1, 1, hd]`
/// (`cos`, then `sin`) for the GPU kernels: a kernel binds few buffers (`kernels::attention`).
pub struct Angles {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    pub both: Tensor<4>,
}

impl Angles {
    /// From `both`: `cos` and `sin` are views of it (one upload, no join on the device).
    pub fn new(both: Tensor<4>) -> Self {
        let rows = both.dims()[0] / 2;
        Angles {
            cos: both.clone().narrow(0, 0, rows),
            sin: both.clone().narrow(0, rows, rows),
            #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
            both,
        }
    }
}

/// Attention of queries `q` `[b, h, s, hd]` over keys and values `k`, `v` `[b, g, K, hd]`, each
/// key/value head serving `h / g` consecutive query heads: `softmax(q · kᵀ / divisor) · v`, a
/// key's score `f32::MIN` where `masked` `[b, 1, (h / g) · s, K]` (transformers' fill: a fully
/// masked row stays finite), the mask shared by the key/value heads. With `angles` (at positions
/// `0..s`, keys the same positions: no past), `q` and `k` are rotated first ([`rope`]): one
/// kernel, not a RoPE kernel each way for each. Returns `[b, s, h, hd]`, the output projection's
/// rows.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Tensor<4, Bool>,
    divisor: f64,
    angles: Option<&Angles>,
) -> Tensor<4> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&q.device(), "attention") && q.dims()[3] <= super::kernels::MAX_THREADS {
        use super::kernels::attention::FusedAttention;
        // Without angles the kernel reads none: an empty tensor stands in (an allocation, no
        // launch).
        let both = angles.map_or_else(
            || Tensor::<4>::empty([1, 1, 1, 1], &q.device()),
            |a| a.both.clone(),
        );
        let rope = angles.is_some();
        let [q, k, v, both] = [q, k, v, both].map(Tensor::into_dispatch);
        let y = <burn::backend::Dispatch as FusedAttention>::attention(
            q,
            k,
            v,
            both,
            masked.into_dispatch(),
            divisor as f32,
            rope,
        );
        return Tensor::from_dispatch(y);
    }
    attention_composed(q, k, v, masked, divisor, angles)
}

/// [`attention`] in burn's ops.
pub(super) fn attention_composed(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    masked: Tensor<4, Bool>,
    divisor: f64,
    angles: Option<&Angles>,
) -> Tensor<4> {
    let [b, h, s, hd] = q.dims();
    let [_, g, keys, _] = k.dims();
    let (q, k) = match angles {
        // rope_composed takes the rows' layout `[b, s, n, hd]` and returns `[b, n, s, hd]`.
        Some(angles) => (
            rope_composed(q.swap_dims(1, 2), angles),
            rope_composed(k.swap_dims(1, 2), angles),
        ),
        None => (q, k),
    };
    // The `h / g` query heads of a key/value head as one longer sequence, so that no key or
    // value is copied (transformers' `repeat_kv`).
    let q = q.reshape([b, g, h / g * s, hd]);
    let scores = q.matmul(k.swap_dims(2, 3)) / divisor; // [b, g, r·s, keys]
    let masked = masked.expand([b, g, h / g * s, keys]); // [b, 1, r·s, keys] -> [b, g, ...]
    let y = softmax(scores.mask_fill(masked, f32::MIN), 3).matmul(v); // [b, g, r·s, hd]
    y.reshape([b, h, s, hd]).swap_dims(1, 2) // -> [b, s, h, hd]
}

/// Rotary position embedding, `x · cos + rotate_half(x) · sin`, of `x` `[b, s, heads, hd]`, in
/// attention's layout `[b, heads, s, hd]` ([`Angles`]: the first half of `sin` negated).
/// `rotate_half(x) = cat(-x₂, x₁)` over the halves of each head's dimensions
/// (Hugging Face's layout, not interleaved pairs): the halves are swapped by one flip and the
/// minus is folded into `sin` (exact: `-a · b` is `a · -b`).
pub fn rope(x: Tensor<4>, angles: &Angles) -> Tensor<4> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&x.device(), "rope") {
        use super::kernels::rope::FusedRope;
        let [x, both] = [x, angles.both.clone()].map(Tensor::into_dispatch);
        let y = <burn::backend::Dispatch as FusedRope>::rope(x, both);
        return Tensor::from_dispatch(y);
    }
    rope_composed(x, angles)
}

/// [`rope`] in burn's ops.
pub(super) fn rope_composed(x: Tensor<4>, angles: &Angles) -> Tensor<4> {
    let [b, s, n, hd] = x.dims();
    let swapped = (x.clone().reshape([b, s, n, 2, hd / 2]).flip([3])).reshape([b, s, n, hd]);
    (x * angles.cos.clone() + swapped * angles.sin.clone()).swap_dims(1, 2)
}

/// The Llama MLP's gate, `silu(g) · u`, for the gate and up projections' outputs.
pub fn swiglu(g: Tensor<3>, u: Tensor<3>) -> Tensor<3> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&g.device(), "swiglu") {
        use super::kernels::swiglu::FusedSwiglu;
        let [g, u] = [g, u].map(Tensor::into_dispatch);
        return Tensor::from_dispatch(<burn::backend::Dispatch as FusedSwiglu>::swiglu(g, u));
    }
    swiglu_composed(g, u)
}

/// [`swiglu`] in burn's ops.
pub(super) fn swiglu_composed(g: Tensor<3>, u: Tensor<3>) -> Tensor<3> {
    silu(g) * u
}

/// The log-probabilities `[n]` of `targets` `[n]` under `logits` `[n, vocab]`:
/// `log_softmax(logits)[row, targets[row]]`, the scored positions' cross-entropy negated.
pub fn target_logprobs(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    if own_kernel(&logits.device(), "logprob") {
        use super::kernels::logprob::FusedLogprob;
        let (logits, targets) = (logits.into_dispatch(), targets.into_dispatch());
        let out = <burn::backend::Dispatch as FusedLogprob>::target_logprobs(logits, targets);
        return Tensor::from_dispatch(out);
    }
    target_logprobs_composed(logits, targets)
}

/// [`target_logprobs`] in burn's ops.
pub(super) fn target_logprobs_composed(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let logp = log_softmax(logits, 1); // [n, vocab]
    logp.gather(1, targets.reshape([n, 1])).reshape([n]) // [n, 1] -> [n]
}
