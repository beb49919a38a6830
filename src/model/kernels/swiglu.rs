//! The Llama MLP's gate, `h = silu(g) · u`, as one kernel each way (`silu(g) = g · σ(g)`).
//! burn's fusion joins the forward's element-wise work, but the backward's pieces (the sigmoid,
//! its complement, the products of both gradients) fell between matrix products as separate
//! kernels. The gradients, from `dh`: `dg = dh · u · σ(g) · (1 + g · (1 - σ(g)))`, `du = dh ·
//! silu(g)`, both written by one thread a value.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::{empty, grid, register_grads};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedSwiglu: Backend {
    /// `silu(g) · u`, `g` and `u` of one shape.
    #[fusion(dtype = g, shape = g)]
    fn swiglu(g: FloatTensor<Self>, u: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The gradients of `g` and `u` given the output's, `dh`.
    #[fusion(meta = |g, u, _dh| (g.clone(), u.clone()))]
    fn swiglu_backward(
        g: FloatTensor<Self>,
        u: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-x))
}

#[cube(launch)]
fn swiglu_kernel<F: Float>(
    g: &Tensor<F>,
    u: &Tensor<F>,
    h: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= h.len() {
        terminate!();
    }
    let x = g[ABSOLUTE_POS];
    h[ABSOLUTE_POS] = x * sigmoid::<F>(x) * u[ABSOLUTE_POS];
}

#[cube(launch)]
fn swiglu_backward_kernel<F: Float>(
    g: &Tensor<F>,
    u: &Tensor<F>,
    dh: &Tensor<F>,
    dg: &mut Tensor<F>,
    du: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= dg.len() {
        terminate!();
    }
    let (x, d) = (g[ABSOLUTE_POS], dh[ABSOLUTE_POS]);
    let s = sigmoid::<F>(x);
    dg[ABSOLUTE_POS] = d * u[ABSOLUTE_POS] * s * (F::new(1.0) + x * (F::new(1.0) - s));
    du[ABSOLUTE_POS] = d * x * s;
}

/// A contiguous empty tensor shaped and placed as `like`, and the grid of a thread a value.
fn out_and_grid(like: &CubeTensor) -> (CubeTensor, CubeCount, CubeDim) {
    let (count, dim) = grid(like, like.shape().num_elements());
    (empty(like, like.shape()), count, dim)
}

impl FusedSwiglu for CubeBackend {
    fn swiglu(g: CubeTensor, u: CubeTensor) -> CubeTensor {
        let [g, u] = [g, u].map(into_contiguous);
        let (h, count, dim) = out_and_grid(&g);
        let dtype = dtype_to_storage_type(g.dtype);
        let client = g.client.clone();
        let [g, u, out] = [g, u, h.clone()].map(CubeTensor::into_tensor_arg);
        swiglu_kernel::launch(&client, count, dim, g, u, out, dtype);
        h
    }

    fn swiglu_backward(g: CubeTensor, u: CubeTensor, dh: CubeTensor) -> (CubeTensor, CubeTensor) {
        let [g, u, dh] = [g, u, dh].map(into_contiguous);
        let (dg, count, dim) = out_and_grid(&g);
        let (du, _, _) = out_and_grid(&u);
        let dtype = dtype_to_storage_type(g.dtype);
        let client = g.client.clone();
        let [g, u, dh, dg_out, du_out] =
            [g, u, dh, dg.clone(), du.clone()].map(CubeTensor::into_tensor_arg);
        swiglu_backward_kernel::launch(&client, count, dim, g, u, dh, dg_out, du_out, dtype);
        (dg, du)
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl<B: FusedSwiglu> Backward<B, 2> for SwigluBackward {
    /// The gate's and the up projection's outputs.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (g, u) = ops.state;
        let dh = grads.consume::<B>(&ops.node);
        let (dg, du) = <B as FusedSwiglu>::swiglu_backward(g, u, dh);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        register_grads::<B, 2>(parents, grads, [dg, du]);
    }
}

impl<B: FusedSwiglu, C: CheckpointStrategy> FusedSwiglu for Autodiff<B, C> {
    fn swiglu(g: FloatTensor<Self>, u: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [g.node(), u.node()];
        let [g, u] = [g, u].map(|t| t.into_primitive());
        match SwigluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let h = <B as FusedSwiglu>::swiglu(g.clone(), u.clone());
                prep.finish((g, u), h)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedSwiglu>::swiglu(g, u)),
        }
    }

    /// Only the gate's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn swiglu_backward(
        g: FloatTensor<Self>,
        u: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [g, u, dh] = [g, u, dh].map(|t| t.into_primitive());
        let (dg, du) = <B as FusedSwiglu>::swiglu_backward(g, u, dh);
        (FloatTensor::<Self>::new(dg), FloatTensor::<Self>::new(du))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use crate::model::ops::{swiglu, swiglu_composed};
    use crate::model::tests::assert_close;

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): gate values across silu's bend, a strided input; the output and
    /// both gradients. A few operations a value on either side, the sigmoid's `exp` perhaps
    /// another way: 1e-5 of the largest value; a wrong formula is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let shape = [2, 5, 48];
        let g: Tensor<3> = Tensor::random([2, 48, 5], Distribution::Normal(0.0, 3.0), device);
        let g = g.swap_dims(1, 2); // [2, 5, 48], strided
        let u: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), device);
        let mix: Tensor<3> = Tensor::random(shape, Distribution::Default, device);
        let run = |gate: fn(Tensor<3>, Tensor<3>) -> Tensor<3>| {
            let [g, u] = [&g, &u].map(|t| t.clone().require_grad());
            let h = gate(g.clone(), u.clone());
            let grads = (h.clone() * mix.clone()).sum().backward();
            let grad = |t: &Tensor<3>| t.grad(&grads).expect("a gradient").into_data();
            [h.into_data(), grad(&g), grad(&u)].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let kernel = run(swiglu);
        let ops = run(swiglu_composed);
        let names = ["output", "gate's gradient", "up's gradient"];
        for ((what, got), want) in names.into_iter().zip(kernel).zip(ops) {
            assert_close(&format!("swiglu kernel: {what}"), &got, &want, 1e-5);
        }
    }
}
