//! The scored positions' log-probabilities, `log_softmax(logits)[target]` for each row, as one
//! kernel each way: a cube a row, its threads sharing the vocabulary (the maximum and the sum of
//! the exponentials as cube-wide tree reductions). burn's ops cost it a log-softmax (its
//! reductions over the vocabulary took 4.5 ms each on an H200 for a batch's 64 scored rows of a
//! 135M model's 49,152 logits: too few rows to fill the GPU), a gather, and their backward
//! passes.
//! The logits' gradient, from the output's `dl`: `dl · (onehot(target) - softmax(logits))`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, Shape, TensorMetadata, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::{cube_max, cube_sum, cubes, empty};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedLogprob: Backend {
    /// `log_softmax(logits)[row, targets[row]]` for `logits` `[n, vocab]`: `[n]`.
    #[fusion(dtype = logits, shape = first(logits))]
    fn target_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
    /// The logits' gradient given the output's, `dl` `[n]`.
    #[fusion(dtype = logits, shape = logits)]
    fn target_logprobs_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        dl: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `[n, vocab]` -> `[n]`.
fn first(shape: &Shape) -> Shape {
    Shape::new([shape[0]])
}

/// Row `row`'s maximum and the sum of its exponentials under it, in every thread of its cube.
#[cube]
fn row_softmax<F: Float>(
    logits: &Tensor<F>,
    row: usize,
    shared: &mut Shared<[F]>,
    #[comptime] threads: usize,
) -> (F, F) {
    let vocab = logits.shape(1);
    let at = row * vocab;
    let mut max = F::min_value();
    for j in range_stepped(UNIT_POS_X as usize, vocab, threads) {
        let x = logits[at + j];
        if x > max {
            max = x;
        }
    }
    let max = cube_max(max, shared, threads);
    let mut sum = F::new(0.0);
    for j in range_stepped(UNIT_POS_X as usize, vocab, threads) {
        sum += F::exp(logits[at + j] - max);
    }
    (max, cube_sum(sum, shared, threads))
}

#[cube(launch)]
fn logprob_kernel<F: Float, I: Int>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    out: &mut Tensor<F>,
    #[comptime] threads: usize,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    if CUBE_POS >= out.len() {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let (max, sum) = row_softmax(logits, CUBE_POS, &mut shared, threads);
    if UNIT_POS_X == 0 {
        let target = u32::cast_from(targets[CUBE_POS]) as usize;
        out[CUBE_POS] = logits[CUBE_POS * logits.shape(1) + target] - max - F::ln(sum);
    }
}

#[cube(launch)]
fn logprob_backward_kernel<F: Float, I: Int>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    dl: &Tensor<F>,
    dx: &mut Tensor<F>,
    #[comptime] threads: usize,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    if CUBE_POS >= dl.len() {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let (max, sum) = row_softmax(logits, CUBE_POS, &mut shared, threads);
    let (vocab, d) = (logits.shape(1), dl[CUBE_POS]);
    let target = u32::cast_from(targets[CUBE_POS]) as usize;
    let at = CUBE_POS * vocab;
    for j in range_stepped(UNIT_POS_X as usize, vocab, threads) {
        let mut g = -F::exp(logits[at + j] - max) / sum;
        if j == target {
            g += F::new(1.0);
        }
        dx[at + j] = d * g;
    }
}

impl FusedLogprob for CubeBackend {
    fn target_logprobs(logits: CubeTensor, targets: CubeTensor) -> CubeTensor {
        let [logits, targets] = [logits, targets].map(into_contiguous);
        let [n, vocab] = logits.shape().dims();
        let out = empty(&logits, Shape::new([n]));
        let (threads, count, dim) = cubes(vocab, n); // a cube a row
        let dtypes = [logits.dtype, targets.dtype].map(dtype_to_storage_type);
        let client = logits.client.clone();
        let [logits, targets, arg] =
            [logits, targets, out.clone()].map(CubeTensor::into_tensor_arg);
        logprob_kernel::launch(&client, count, dim, logits, targets, arg, threads, dtypes);
        out
    }

    fn target_logprobs_backward(
        logits: CubeTensor,
        targets: CubeTensor,
        dl: CubeTensor,
    ) -> CubeTensor {
        let [logits, targets, dl] = [logits, targets, dl].map(into_contiguous);
        let [n, vocab] = logits.shape().dims();
        let dx = empty(&logits, logits.shape());
        let (threads, count, dim) = cubes(vocab, n);
        let dtypes = [logits.dtype, targets.dtype].map(dtype_to_storage_type);
        let client = logits.client.clone();
        let [logits, targets, dl, arg] =
            [logits, targets, dl, dx.clone()].map(CubeTensor::into_tensor_arg);
        logprob_backward_kernel::launch(
            &client, count, dim, logits, targets, dl, arg, threads, dtypes,
        );
        dx
    }
}

#[derive(Debug)]
struct LogprobBackward;

impl<B: FusedLogprob> Backward<B, 1> for LogprobBackward {
    /// The logits and the targets.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dl| {
            <B as FusedLogprob>::target_logprobs_backward(logits, targets, dl)
        });
    }
}

impl<B: FusedLogprob, C: CheckpointStrategy> FusedLogprob for Autodiff<B, C> {
    fn target_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let node = logits.node();
        let logits = logits.into_primitive();
        match LogprobBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = <B as FusedLogprob>::target_logprobs(logits.clone(), targets.clone());
                prep.finish((logits, targets), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(<B as FusedLogprob>::target_logprobs(logits, targets))
            }
        }
    }

    /// Only the op's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn target_logprobs_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        dl: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [logits, dl] = [logits, dl].map(|t| t.into_primitive());
        let dx = <B as FusedLogprob>::target_logprobs_backward(logits, targets, dl);
        FloatTensor::<Self>::new(dx)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Int, Tensor, TensorData};

    use crate::model::ops::{target_logprobs, target_logprobs_composed};
    use crate::model::tests::assert_close;

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): rows of a vocabulary wider than a cube's 256 threads and not a
    /// multiple of it, logits spread wide (one row's far above the rest); the log-probabilities
    /// and the logits' gradient. Sums of 1,000 exponentials in other orders: 1e-5 of the largest
    /// value; a wrong target or row is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (n, vocab) = (5, 1_000);
        let logits: Tensor<2> = Tensor::random([n, vocab], Distribution::Normal(0.0, 4.0), device);
        let logits = logits
            + Tensor::from_data(
                TensorData::new(vec![0.0, 50.0, 0.0, 0.0, 0.0], [n, 1]),
                device,
            );
        let targets: Tensor<1, Int> =
            Tensor::from_data(TensorData::new(vec![0i64, 999, 17, 256, 511], [n]), device);
        let mix: Tensor<1> = Tensor::random([n], Distribution::Default, device);
        let run = |f: fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1>| {
            let x = logits.clone().require_grad();
            let out = f(x.clone(), targets.clone());
            let grads = (out.clone() * mix.clone()).sum().backward();
            let dx = x.grad(&grads).expect("the logits' gradient");
            [out.into_data(), dx.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let (kernel, ops) = (run(target_logprobs), run(target_logprobs_composed));
        for ((what, got), want) in ["log-probabilities", "gradient"]
            .into_iter()
            .zip(kernel)
            .zip(ops)
        {
            assert_close(&format!("logprob kernel: {what}"), &got, &want, 1e-5);
        }
    }
}
