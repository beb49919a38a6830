//! Rotary position embedding as one kernel each way, the heads' layout change included: `x`
//! `[b, s, n, hd]` (a projection's rows split into heads) in, `y` `[b, n, s, hd]` (attention's
//! layout) out, `y = x · cos + swap(x) · sin`, where `swap` exchanges each head's halves and the
//! first half of `sin` holds the minus of `rotate_half` (`llama::Angles`). burn's ops cost a
//! rotation a flip and the element-wise work each way, and the layout change a copy each way.
//! Angles are `[1|b, s|1, 1, hd]` (a run of positions, or one per row when decoding).
//!
//! The input's gradient (`swap` is its own inverse): `dx_j = dy_j · cos_j + dy_σ(j) · sin_σ(j)`,
//! back in `[b, s, n, hd]`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::{angle_at, empty, grid, swap_1_2};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedRope: Backend {
    /// `x` `[b, s, n, hd]` rotated, as `[b, n, s, hd]`.
    #[fusion(dtype = x, shape = swap_1_2(x))]
    fn rope(x: FloatTensor<Self>, angles: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The input's gradient `[b, s, n, hd]` from the output's `dy` `[b, n, s, hd]`.
    #[fusion(dtype = dy, shape = swap_1_2(dy))]
    fn rope_backward(dy: FloatTensor<Self>, angles: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// One output value `y[bi, h, t, i]` a thread, `x` `[b, s, n, hd]`.
#[cube(launch)]
fn rope_kernel<F: Float>(
    x: &Tensor<F>,
    angles: &Tensor<F>,
    y: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= y.len() {
        terminate!();
    }
    let (s, n, hd) = (x.shape(1), x.shape(2), x.shape(3));
    let i = ABSOLUTE_POS % hd;
    let t = ABSOLUTE_POS / hd % s;
    let h = ABSOLUTE_POS / (hd * s) % n;
    let bi = ABSOLUTE_POS / (hd * s * n);
    let row = ((bi * s + t) * n + h) * hd;
    let swapped = (i + hd / 2) % hd;
    let a = angle_at(angles, bi, t, i);
    y[ABSOLUTE_POS] = x[row + i] * angles[a] + x[row + swapped] * angles[a + angles.len() / 2];
}

/// One input gradient value `dx[bi, t, h, j]` a thread, `dy` `[b, n, s, hd]`.
#[cube(launch)]
fn rope_backward_kernel<F: Float>(
    dy: &Tensor<F>,
    angles: &Tensor<F>,
    dx: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= dx.len() {
        terminate!();
    }
    let (n, s, hd) = (dy.shape(1), dy.shape(2), dy.shape(3));
    let j = ABSOLUTE_POS % hd;
    let h = ABSOLUTE_POS / hd % n;
    let t = ABSOLUTE_POS / (hd * n) % s;
    let bi = ABSOLUTE_POS / (hd * n * s);
    let row = ((bi * n + h) * s + t) * hd;
    let swapped = (j + hd / 2) % hd;
    let sin = angles.len() / 2;
    let direct = dy[row + j] * angles[angle_at(angles, bi, t, j)];
    dx[ABSOLUTE_POS] = direct + dy[row + swapped] * angles[angle_at(angles, bi, t, swapped) + sin];
}

/// `kernel` on `input` and the angles, one thread an output value, the output `[a, c, b, d]`
/// for an input `[a, b, c, d]`.
fn launch(
    input: CubeTensor,
    angles: CubeTensor,
    kernel: impl FnOnce(&CubeTensor, CubeCount, CubeDim, [TensorArg; 3], ElemType),
) -> CubeTensor {
    let [input, angles] = [input, angles].map(into_contiguous);
    let shape = swap_1_2(&input.shape());
    let (count, cube_dim) = grid(&input, shape.num_elements());
    let out = empty(&input, shape);
    let dtype = dtype_to_storage_type(input.dtype);
    let args = [input, angles, out.clone()].map(CubeTensor::into_tensor_arg);
    kernel(&out, count, cube_dim, args, dtype);
    out
}

impl FusedRope for CubeBackend {
    fn rope(x: CubeTensor, angles: CubeTensor) -> CubeTensor {
        launch(x, angles, |out, count, dim, [x, angles, y], dtype| {
            rope_kernel::launch(&out.client, count, dim, x, angles, y, dtype)
        })
    }

    fn rope_backward(dy: CubeTensor, angles: CubeTensor) -> CubeTensor {
        launch(dy, angles, |out, count, dim, [dy, angles, dx], dtype| {
            rope_backward_kernel::launch(&out.client, count, dim, dy, angles, dx, dtype)
        })
    }
}

#[derive(Debug)]
struct RopeBackward;

impl<B: FusedRope> Backward<B, 1> for RopeBackward {
    /// The angles (constants: no gradient).
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let angles = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            <B as FusedRope>::rope_backward(dy, angles)
        });
    }
}

impl<B: FusedRope, C: CheckpointStrategy> FusedRope for Autodiff<B, C> {
    fn rope(x: FloatTensor<Self>, angles: FloatTensor<Self>) -> FloatTensor<Self> {
        assert!(!angles.is_tracked(), "the angles take no gradient");
        let angles = angles.into_primitive();
        let node = x.node();
        let x = x.into_primitive();
        match RopeBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = <B as FusedRope>::rope(x, angles.clone());
                prep.finish(angles, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedRope>::rope(x, angles)),
        }
    }

    /// Only the rotation's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn rope_backward(dy: FloatTensor<Self>, angles: FloatTensor<Self>) -> FloatTensor<Self> {
        let [dy, angles] = [dy, angles].map(|t| t.into_primitive());
        FloatTensor::<Self>::new(<B as FusedRope>::rope_backward(dy, angles))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use crate::model::ops::{Angles, rope, rope_composed};
    use crate::model::tests::assert_close;

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): angles for a run of positions (`[1, s, 1, hd]`) and one per row
    /// (`[b, 1, 1, hd]`, decoding), a strided input; the rotated heads and the input's gradient.
    /// One product and one sum a value on either side: within 1e-6 of the largest value; a
    /// wrong index is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (b, n, hd) = (2, 3, 8);
        for (s, angles) in [(4, [1, 4, 1, hd]), (1, [b, 1, 1, hd])] {
            let x: Tensor<4> = Tensor::random([b, n, s, hd], Distribution::Default, device);
            let x = x.swap_dims(1, 2); // [b, s, n, hd], strided
            let both = [2 * angles[0], angles[1], angles[2], angles[3]]; // cos, then sin
            let angles = Angles::new(Tensor::random(both, Distribution::Default, device));
            let mix: Tensor<4> = Tensor::random([b, n, s, hd], Distribution::Default, device);
            let run = |rotate: fn(Tensor<4>, &Angles) -> Tensor<4>| {
                let x = x.clone().require_grad();
                let y = rotate(x.clone(), &angles);
                let grads = (y.clone() * mix.clone()).sum().backward();
                let dx = x.grad(&grads).expect("the input's gradient");
                [y.into_data(), dx.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
            };
            let [y_kernel, dx_kernel] = run(rope);
            let [y_ops, dx_ops] = run(rope_composed);
            for (what, got, want) in [("output", y_kernel, y_ops), ("gradient", dx_kernel, dx_ops)]
            {
                assert_close(&format!("rope kernel (s {s}): {what}"), &got, &want, 1e-6);
            }
        }
    }
}
