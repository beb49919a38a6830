//! The norms as one GPU kernel each way: RMSNorm and LayerNorm over each row's last
//! dimension, and the input's gradient. burn's ops cost a norm six to ten kernels with its
//! backward (a reduction or two each way, the element-wise work around them, the gradient's sums
//! over the broadcast row statistics): fusion does not join work across a reduction. Here a
//! cube reads a row and writes it, each thread a share of its values, the sums joined by
//! [`super::cube_sum`]. Weight and bias are frozen: no gradient flows to them.
//!
//! Both norms are `y = x̂ · w (+ b)` with `x̂ = (x - μ) · r`, `r = 1 / sqrt(mean((x - μ)²) +
//! eps)`; LayerNorm centres (`μ` the row's mean), RMSNorm does not (`μ = 0`, no bias). The input's
//! gradient, with `g = dy · w`: `dx = r · (g - mean(g) - x̂ · mean(g · x̂))`, `mean(g)` only
//! when centred.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::{cube_sum, rows_out};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedNorm: Backend {
    /// RMSNorm of `x` with the weight `w` `[d]`.
    #[fusion(dtype = x, shape = x)]
    fn rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
    /// LayerNorm of `x` with the weight `w` and bias `b` `[d]`.
    #[fusion(dtype = x, shape = x)]
    fn layer_norm(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;
    /// The input's gradient of either norm (`centred`: LayerNorm) given the output's, `dy`.
    #[fusion(dtype = x, shape = x)]
    fn norm_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f32,
        centred: bool,
    ) -> FloatTensor<Self>;
}

/// A row's `μ` (zero unless `centred`) and `r`, in every thread of its cube (each thread sums
/// the values `i ≡ UNIT_POS_X` mod `threads`, then [`cube_sum`]).
#[cube]
fn row_stats<F: Float>(
    x: &Tensor<F>,
    at: usize,
    d: usize,
    eps: f32,
    shared: &mut Shared<[F]>,
    #[comptime] centred: bool,
    #[comptime] threads: usize,
) -> (F, F) {
    let n = F::cast_from(d);
    let mut mean = F::new(0.0);
    if centred {
        let mut part = F::new(0.0);
        for i in range_stepped(UNIT_POS_X as usize, d, threads) {
            part += x[at + i];
        }
        mean = cube_sum(part, shared, threads) / n;
    }
    let mut squares = F::new(0.0);
    for i in range_stepped(UNIT_POS_X as usize, d, threads) {
        let v = x[at + i] - mean;
        squares += v * v;
    }
    let squares = cube_sum(squares, shared, threads);
    (mean, F::new(1.0) / F::sqrt(squares / n + F::cast_from(eps)))
}

/// One row of a norm, a cube a row. `b` is read only when `centred` (RMSNorm passes `w`).
#[cube(launch)]
fn norm_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    b: &Tensor<F>,
    y: &mut Tensor<F>,
    eps: f32,
    #[comptime] centred: bool,
    #[comptime] threads: usize,
    #[define(F)] _dtype: ElemType,
) {
    let d = w.len();
    let at = CUBE_POS * d;
    if at >= y.len() {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let (mean, r) = row_stats(x, at, d, eps, &mut shared, centred, threads);
    for i in range_stepped(UNIT_POS_X as usize, d, threads) {
        let v = (x[at + i] - mean) * r * w[i];
        if centred {
            y[at + i] = v + b[i];
        } else {
            y[at + i] = v;
        }
    }
}

/// One row of a norm's input gradient, a cube a row.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn norm_backward_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    eps: f32,
    #[comptime] centred: bool,
    #[comptime] threads: usize,
    #[define(F)] _dtype: ElemType,
) {
    let d = w.len();
    let at = CUBE_POS * d;
    if at >= dx.len() {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let n = F::cast_from(d);
    let (mean, r) = row_stats(x, at, d, eps, &mut shared, centred, threads);
    let mut g_part = F::new(0.0);
    let mut gx_part = F::new(0.0);
    for i in range_stepped(UNIT_POS_X as usize, d, threads) {
        let g = dy[at + i] * w[i];
        g_part += g;
        gx_part += g * (x[at + i] - mean) * r;
    }
    let mut g_mean = F::new(0.0);
    if centred {
        g_mean = cube_sum(g_part, &mut shared, threads) / n;
    }
    let gx_mean = cube_sum(gx_part, &mut shared, threads) / n;
    for i in range_stepped(UNIT_POS_X as usize, d, threads) {
        let g = dy[at + i] * w[i];
        dx[at + i] = r * (g - g_mean - (x[at + i] - mean) * r * gx_mean);
    }
}

/// [`norm_kernel`] on `x` (`b`: LayerNorm's bias; none for RMSNorm).
fn launch_norm(x: CubeTensor, w: CubeTensor, b: Option<CubeTensor>, eps: f32) -> CubeTensor {
    let centred = b.is_some();
    let b = b.unwrap_or_else(|| w.clone());
    let [x, w, b] = [x, w, b].map(into_contiguous);
    let (y, (threads, count, dim)) = rows_out(&x);
    let dtype = dtype_to_storage_type(x.dtype);
    let client = x.client.clone();
    let [x, w, b] = [x, w, b].map(CubeTensor::into_tensor_arg);
    let out = y.clone().into_tensor_arg();
    norm_kernel::launch(
        &client, count, dim, x, w, b, out, eps, centred, threads, dtype,
    );
    y
}

impl FusedNorm for CubeBackend {
    fn rms_norm(x: CubeTensor, w: CubeTensor, eps: f32) -> CubeTensor {
        launch_norm(x, w, None, eps)
    }

    fn layer_norm(x: CubeTensor, w: CubeTensor, b: CubeTensor, eps: f32) -> CubeTensor {
        launch_norm(x, w, Some(b), eps)
    }

    fn norm_backward(
        x: CubeTensor,
        w: CubeTensor,
        dy: CubeTensor,
        eps: f32,
        centred: bool,
    ) -> CubeTensor {
        let [x, w, dy] = [x, w, dy].map(into_contiguous);
        let (dx, (threads, count, dim)) = rows_out(&x);
        let dtype = dtype_to_storage_type(x.dtype);
        let client = x.client.clone();
        let [x, w, dy] = [x, w, dy].map(CubeTensor::into_tensor_arg);
        let out = dx.clone().into_tensor_arg();
        norm_backward_kernel::launch(
            &client, count, dim, x, w, dy, out, eps, centred, threads, dtype,
        );
        dx
    }
}

#[derive(Debug)]
struct NormBackward;

impl<B: FusedNorm> Backward<B, 1> for NormBackward {
    /// The norm's input, its (frozen) weight, epsilon and whether it centres (LayerNorm).
    type State = (FloatTensor<B>, FloatTensor<B>, f32, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, eps, centred) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            <B as FusedNorm>::norm_backward(x, w, dy, eps, centred)
        });
    }
}

/// A norm of `x` on autodiff (`b`: LayerNorm's bias; none for RMSNorm): the forward on the inner
/// backend, [`NormBackward`] recorded when `x` is tracked. Weight and bias take no gradient.
fn tracked<B: FusedNorm, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    w: FloatTensor<Autodiff<B, C>>,
    b: Option<FloatTensor<Autodiff<B, C>>>,
    eps: f32,
) -> FloatTensor<Autodiff<B, C>> {
    let frozen = !w.is_tracked() && b.as_ref().is_none_or(|b| !b.is_tracked());
    assert!(frozen, "a frozen weight takes no gradient");
    let (w, b) = (w.into_primitive(), b.map(|b| b.into_primitive()));
    let centred = b.is_some();
    let forward = |x, w| match b {
        Some(b) => <B as FusedNorm>::layer_norm(x, w, b, eps),
        None => <B as FusedNorm>::rms_norm(x, w, eps),
    };
    let node = x.node();
    let x = x.into_primitive();
    match NormBackward.prepare::<C>([node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.clone(), w.clone());
            prep.finish((x, w, eps, centred), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x, w)),
    }
}

impl<B: FusedNorm, C: CheckpointStrategy> FusedNorm for Autodiff<B, C> {
    fn rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        tracked::<B, C>(x, w, None, eps)
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(x, w, Some(b), eps)
    }

    /// Only a norm's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn norm_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f32,
        centred: bool,
    ) -> FloatTensor<Self> {
        let [x, w, dy] = [x, w, dy].map(|t| t.into_primitive());
        FloatTensor::<Self>::new(<B as FusedNorm>::norm_backward(x, w, dy, eps, centred))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use crate::model::ops::{layer_norm, layer_norm_composed, rms_norm, rms_norm_composed};
    use crate::model::tests::assert_close;

    /// A norm with its weights bound.
    type Norm<'a> = dyn Fn(Tensor<3>) -> Tensor<3> + 'a;

    /// Each norm's kernels against burn's ops on the same wgpu device (lavapipe where there is no
    /// GPU; `./build.sh test-gpu`): rows as long as a 135M model's (576), an input that is not
    /// contiguous (the kernel copies it first), the output and the input's gradient. The same f32
    /// arithmetic summed in another order (one thread's loop against a tree reduction): 1e-5 of
    /// the largest value is ~100 ulps; a wrong index or formula is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (b, s, d) = (3, 5, 576);
        let x: Tensor<3> = Tensor::random([s, b, d], Distribution::Normal(0.5, 2.0), device);
        let x = x.swap_dims(0, 1); // [b, s, d], strided
        let w: Tensor<1> = Tensor::random([d], Distribution::Normal(1.0, 0.5), device);
        let bias: Tensor<1> = Tensor::random([d], Distribution::Normal(0.0, 0.5), device);
        let mix: Tensor<3> = Tensor::random([b, s, d], Distribution::Default, device);
        let run = |norm: &Norm<'_>| {
            let x = x.clone().require_grad();
            let y = norm(x.clone());
            let grads = (y.clone() * mix.clone()).sum().backward();
            let dx = x.grad(&grads).expect("the input's gradient");
            [y.into_data(), dx.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let rms = |x| rms_norm(x, w.clone(), 1e-5);
        let rms_ops = |x| rms_norm_composed(x, w.clone(), 1e-5);
        let layer = |x| layer_norm(x, w.clone(), bias.clone(), 1e-5);
        let layer_ops = |x| layer_norm_composed(x, w.clone(), bias.clone(), 1e-5);
        let pairs: [(&str, &Norm<'_>, &Norm<'_>); 2] = [
            ("rms_norm", &rms, &rms_ops),
            ("layer_norm", &layer, &layer_ops),
        ];
        for (name, kernel, ops) in pairs {
            let [y_kernel, dx_kernel] = run(kernel);
            let [y_ops, dx_ops] = run(ops);
            for (what, got, want) in [("output", y_kernel, y_ops), ("gradient", dx_kernel, dx_ops)]
            {
                assert_close(&format!("{name} kernel: {what}"), &got, &want, 1e-5);
            }
        }
    }
}
