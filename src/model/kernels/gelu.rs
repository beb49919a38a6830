//! GPT-2's activation (`gelu_new`, the tanh approximation) as one kernel each way: `h = x ·
//! σ(z)`, `z = k · x · (1 + c · x²)` with `k = 2√(2/π)`, `c = 0.044715` (`1 + tanh(z / 2) =
//! 2σ(z)`: the same function as `0.5 · x · (1 + tanh(...))`). burn's fusion joins the forward,
//! but the backward's pieces fell between the MLP's products as separate kernels. The gradient:
//! `dx = dh · (σ(z) + x · σ(z) · (1 - σ(z)) · k · (1 + 3c · x²))`.

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

/// `2√(2/π)` and the cubic term's coefficient.
const K: f32 = 2.0 * 0.797_884_6;
const C: f32 = 0.044_715;

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedGelu: Backend {
    /// `gelu_new(x)`.
    #[fusion(dtype = x, shape = x)]
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x`'s gradient given the output's, `dh`.
    #[fusion(dtype = x, shape = x)]
    fn gelu_tanh_backward(x: FloatTensor<Self>, dh: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `σ(k · x · (1 + c · x²))`.
#[cube]
fn gate<F: Float>(x: F) -> F {
    let z = x * (x * x * F::new(K * C) + F::new(K));
    F::new(1.0) / (F::new(1.0) + F::exp(-z))
}

#[cube(launch)]
fn gelu_kernel<F: Float>(x: &Tensor<F>, h: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    if ABSOLUTE_POS >= h.len() {
        terminate!();
    }
    let v = x[ABSOLUTE_POS];
    h[ABSOLUTE_POS] = v * gate::<F>(v);
}

#[cube(launch)]
fn gelu_backward_kernel<F: Float>(
    x: &Tensor<F>,
    dh: &Tensor<F>,
    dx: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= dx.len() {
        terminate!();
    }
    let v = x[ABSOLUTE_POS];
    let s = gate::<F>(v);
    let dz = F::new(K) + v * v * F::new(3.0 * K * C);
    dx[ABSOLUTE_POS] = dh[ABSOLUTE_POS] * (s + v * s * (F::new(1.0) - s) * dz);
}

/// `kernel` on the contiguous `inputs`, one thread a value, the output shaped as the first.
fn launch<const N: usize>(
    inputs: [CubeTensor; N],
    kernel: impl FnOnce(&CubeTensor, CubeCount, CubeDim, [TensorArg; N], TensorArg, ElemType),
) -> CubeTensor {
    let inputs = inputs.map(into_contiguous);
    let (client, shape) = (inputs[0].client.clone(), inputs[0].shape());
    let n = shape.num_elements();
    let dtype = inputs[0].dtype;
    let out = empty_device_contiguous_dtype(client.clone(), inputs[0].device.clone(), shape, dtype);
    let cube_dim = CubeDim::new(&client, n);
    let count = calculate_cube_count_elemwise(&client, n, cube_dim);
    let args = inputs.map(CubeTensor::into_tensor_arg);
    let storage = dtype_to_storage_type(dtype);
    kernel(
        &out,
        count,
        cube_dim,
        args,
        out.clone().into_tensor_arg(),
        storage,
    );
    out
}

impl FusedGelu for CubeBackend {
    fn gelu_tanh(x: CubeTensor) -> CubeTensor {
        launch([x], |out, count, dim, [x], h, dtype| {
            gelu_kernel::launch(&out.client, count, dim, x, h, dtype)
        })
    }

    fn gelu_tanh_backward(x: CubeTensor, dh: CubeTensor) -> CubeTensor {
        launch([x, dh], |out, count, dim, [x, dh], dx, dtype| {
            gelu_backward_kernel::launch(&out.client, count, dim, x, dh, dx, dtype)
        })
    }
}

#[derive(Debug)]
struct GeluBackward;

impl<B: FusedGelu> Backward<B, 1> for GeluBackward {
    /// The activation's input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dh| {
            <B as FusedGelu>::gelu_tanh_backward(x, dh)
        });
    }
}

impl<B: FusedGelu, C: CheckpointStrategy> FusedGelu for Autodiff<B, C> {
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let x = x.into_primitive();
        match GeluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let h = <B as FusedGelu>::gelu_tanh(x.clone());
                prep.finish(x, h)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedGelu>::gelu_tanh(x)),
        }
    }

    /// Only the activation's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn gelu_tanh_backward(x: FloatTensor<Self>, dh: FloatTensor<Self>) -> FloatTensor<Self> {
        let [x, dh] = [x, dh].map(|t| t.into_primitive());
        FloatTensor::<Self>::new(<B as FusedGelu>::gelu_tanh_backward(x, dh))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use crate::model::ops::{gelu_tanh, gelu_tanh_composed};

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): values across the bend, a strided input; the output and the
    /// gradient. A few operations a value on either side: 1e-5 of the largest value; a wrong
    /// formula is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let x: Tensor<3> = Tensor::random([2, 64, 5], Distribution::Normal(0.0, 3.0), device);
        let x = x.swap_dims(1, 2); // [2, 5, 64], strided
        let mix: Tensor<3> = Tensor::random([2, 5, 64], Distribution::Default, device);
        let run = |activation: fn(Tensor<3>) -> Tensor<3>| {
            let x = x.clone().require_grad();
            let h = activation(x.clone());
            let grads = (h.clone() * mix.clone()).sum().backward();
            let dx = x.grad(&grads).expect("the input's gradient");
            [h.into_data(), dx.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let [h_kernel, dx_kernel] = run(gelu_tanh);
        let [h_ops, dx_ops] = run(gelu_tanh_composed);
        for (what, a, b) in [("output", h_kernel, h_ops), ("gradient", dx_kernel, dx_ops)] {
            let largest = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = (a.iter().zip(&b)).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("gelu_tanh kernel: {what} off by {worst:e} of {largest}");
            assert!(
                worst <= 1e-5 * largest,
                "{what} off by {worst:e} of {largest}"
            );
        }
    }
}
