//! RMSNorm as one GPU kernel each way (#34): `y = w · x / sqrt(mean(x²) + eps)` over each row's
//! last dimension, and the input's gradient. burn's ops cost a norm about eight kernels with its
//! backward (a reduction each way, the element-wise work around them, the gradient's sum over the
//! broadcast row scale): fusion does not join work across a reduction. Here one thread reads a
//! row and writes it: a 135M model's rows are 576 values, and a step pays for launches, not for
//! this arithmetic. The weight is frozen: no gradient flows to it (as in `frozen_matmul`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// RMSNorm over the last dimension of `x` with the weight `w` `[d]`, and its input's gradient
/// given the output's, `dy`.
#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedRmsNorm: Backend {
    #[fusion(dtype = x, shape = x)]
    fn rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
    #[fusion(dtype = x, shape = x)]
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;
}

/// One row: `r = 1 / sqrt(Σx² / d + eps)`, `y = x · r · w`. Summed in order, as one thread.
#[cube(launch)]
fn rms_norm_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    y: &mut Tensor<F>,
    eps: f32,
    #[define(F)] _dtype: ElemType,
) {
    let d = w.len();
    let at = ABSOLUTE_POS * d;
    if at >= y.len() {
        terminate!();
    }
    let mut squares = F::new(0.0);
    for i in 0..d {
        let v = x[at + i];
        squares += v * v;
    }
    let r = F::new(1.0) / F::sqrt(squares / F::cast_from(d) + F::cast_from(eps));
    for i in 0..d {
        y[at + i] = x[at + i] * r * w[i];
    }
}

/// One row's input gradient: `dx = dy · w · r - x · r³ / d · Σ(dy · w · x)` (`r` as above: its
/// own derivative is `-r³ · x / d`).
#[cube(launch)]
fn rms_norm_backward_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    dy: &Tensor<F>,
    dx: &mut Tensor<F>,
    eps: f32,
    #[define(F)] _dtype: ElemType,
) {
    let d = w.len();
    let at = ABSOLUTE_POS * d;
    if at >= dx.len() {
        terminate!();
    }
    let mut squares = F::new(0.0);
    let mut dot = F::new(0.0);
    for i in 0..d {
        let v = x[at + i];
        squares += v * v;
        dot += dy[at + i] * w[i] * v;
    }
    let n = F::cast_from(d);
    let r = F::new(1.0) / F::sqrt(squares / n + F::cast_from(eps));
    let c = dot * r * r * r / n;
    for i in 0..d {
        dx[at + i] = dy[at + i] * w[i] * r - x[at + i] * c;
    }
}

/// A contiguous output shaped as `x`, and the launch grid of one thread a row.
fn rows_out(x: &CubeTensor) -> (CubeTensor, CubeCount, CubeDim) {
    let shape = x.shape();
    let rows = shape.num_elements() / shape[shape.num_dims() - 1].max(1);
    let out =
        empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
    let cube_dim = CubeDim::new(&x.client, rows);
    let cube_count = calculate_cube_count_elemwise(&x.client, rows, cube_dim);
    (out, cube_count, cube_dim)
}

impl FusedRmsNorm for CubeBackend {
    fn rms_norm(x: CubeTensor, w: CubeTensor, eps: f32) -> CubeTensor {
        let (x, w) = (into_contiguous(x), into_contiguous(w));
        let (y, count, dim) = rows_out(&x);
        let dtype = dtype_to_storage_type(x.dtype);
        rms_norm_kernel::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            eps,
            dtype,
        );
        y
    }

    fn rms_norm_backward(x: CubeTensor, w: CubeTensor, dy: CubeTensor, eps: f32) -> CubeTensor {
        let (x, w, dy) = (into_contiguous(x), into_contiguous(w), into_contiguous(dy));
        let (dx, count, dim) = rows_out(&x);
        let dtype = dtype_to_storage_type(x.dtype);
        rms_norm_backward_kernel::launch(
            &x.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            eps,
            dtype,
        );
        dx
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl<B: FusedRmsNorm> Backward<B, 1> for RmsNormBackward {
    /// The norm's input, its (frozen) weight and epsilon.
    type State = (FloatTensor<B>, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, eps) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| {
            B::rms_norm_backward(x, w, dy, eps)
        });
    }
}

impl<B: FusedRmsNorm, C: CheckpointStrategy> FusedRmsNorm for Autodiff<B, C> {
    fn rms_norm(x: FloatTensor<Self>, w: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        assert!(!w.is_tracked(), "a frozen weight takes no gradient");
        let w = w.into_primitive();
        let node = x.node();
        let x = x.into_primitive();
        match RmsNormBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::rms_norm(x.clone(), w.clone(), eps);
                prep.finish((x, w, eps), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rms_norm(x, w, eps)),
        }
    }

    /// Only the norm's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let [x, w, dy] = [x, w, dy].map(|t| t.into_primitive());
        FloatTensor::<Self>::new(B::rms_norm_backward(x, w, dy, eps))
    }
}
