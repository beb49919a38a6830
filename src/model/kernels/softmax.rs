//! Attention's masked softmax as one kernel each way: `p = softmax(fill(scores / divisor))` over
//! each row of keys, a masked key's score replaced by `f32::MIN` first (as transformers fills:
//! a fully masked row stays finite, uniform). burn's ops cost it a scale, a mask fill and a
//! softmax of two reductions forward, and as many pieces back. The gradient of the scores, from
//! the probabilities' `dp`: `p · (dp - Σ p · dp) / divisor`, zero where masked.
//!
//! Scores are `[b, g, q, keys]`; the mask `[b, 1, q, keys]` serves every key/value head `g`
//! (grouped-query attention's layout, `model::attend`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::rows_out;

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedSoftmax: Backend {
    /// The probabilities of `scores` `[b, g, q, keys]` with `masked` `[b, 1, q, keys]`.
    #[fusion(dtype = scores, shape = scores)]
    fn masked_softmax(
        scores: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self>;
    /// The scores' gradient given the probabilities `p` and their gradient `dp`.
    #[fusion(dtype = p, shape = p)]
    fn masked_softmax_backward(
        p: FloatTensor<Self>,
        dp: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self>;
}

/// The start of row `row`'s mask (`[b, g, q]` rows over `[b, 1, q]` masks).
#[cube]
fn mask_row<F: Float>(scores: &Tensor<F>, row: usize) -> usize {
    let q = scores.shape(2);
    let per_batch = scores.shape(1) * q;
    ((row / per_batch) * q + row % q) * scores.shape(3)
}

/// Key `k`'s scaled score in the row at `at`, `F::min_value()` when masked.
#[cube]
fn logit<F: Float, M: Int>(
    scores: &Tensor<F>,
    masked: &Tensor<M>,
    at: usize,
    mask_at: usize,
    k: usize,
    divisor: f32,
) -> F {
    let mut v = scores[at + k] / F::cast_from(divisor);
    if masked[mask_at + k] != M::from_int(0) {
        v = F::min_value();
    }
    v
}

#[cube(launch)]
fn masked_softmax_kernel<F: Float, M: Int>(
    scores: &Tensor<F>,
    masked: &Tensor<M>,
    p: &mut Tensor<F>,
    divisor: f32,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    let keys = scores.shape(3);
    let at = ABSOLUTE_POS * keys;
    if at >= p.len() {
        terminate!();
    }
    let mask_at = mask_row(scores, ABSOLUTE_POS);
    let mut max = F::min_value();
    for k in 0..keys {
        let v = logit(scores, masked, at, mask_at, k, divisor);
        if v > max {
            max = v;
        }
    }
    let mut sum = F::new(0.0);
    for k in 0..keys {
        let e = F::exp(logit(scores, masked, at, mask_at, k, divisor) - max);
        p[at + k] = e;
        sum += e;
    }
    for k in 0..keys {
        p[at + k] = p[at + k] / sum;
    }
}

#[cube(launch)]
fn masked_softmax_backward_kernel<F: Float, M: Int>(
    p: &Tensor<F>,
    dp: &Tensor<F>,
    masked: &Tensor<M>,
    ds: &mut Tensor<F>,
    divisor: f32,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    let keys = p.shape(3);
    let at = ABSOLUTE_POS * keys;
    if at >= ds.len() {
        terminate!();
    }
    let mask_at = mask_row(p, ABSOLUTE_POS);
    let mut dot = F::new(0.0);
    for k in 0..keys {
        dot += p[at + k] * dp[at + k];
    }
    for k in 0..keys {
        let mut v = p[at + k] * (dp[at + k] - dot) / F::cast_from(divisor);
        if masked[mask_at + k] != M::from_int(0) {
            v = F::new(0.0);
        }
        ds[at + k] = v;
    }
}

impl FusedSoftmax for CubeBackend {
    fn masked_softmax(scores: CubeTensor, masked: CubeTensor, divisor: f32) -> CubeTensor {
        let [scores, masked] = [scores, masked].map(into_contiguous);
        let (p, count, dim) = rows_out(&scores);
        let dtypes = [scores.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = scores.client.clone();
        let [scores, masked] = [scores, masked].map(CubeTensor::into_tensor_arg);
        let out = p.clone().into_tensor_arg();
        masked_softmax_kernel::launch(&client, count, dim, scores, masked, out, divisor, dtypes);
        p
    }

    fn masked_softmax_backward(
        p: CubeTensor,
        dp: CubeTensor,
        masked: CubeTensor,
        divisor: f32,
    ) -> CubeTensor {
        let [p, dp, masked] = [p, dp, masked].map(into_contiguous);
        let (ds, count, dim) = rows_out(&p);
        let dtypes = [p.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = p.client.clone();
        let [p, dp, masked] = [p, dp, masked].map(CubeTensor::into_tensor_arg);
        let out = ds.clone().into_tensor_arg();
        masked_softmax_backward_kernel::launch(
            &client, count, dim, p, dp, masked, out, divisor, dtypes,
        );
        ds
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl<B: FusedSoftmax> Backward<B, 1> for SoftmaxBackward {
    /// The probabilities, the mask and the divisor.
    type State = (FloatTensor<B>, BoolTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (p, masked, divisor) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dp| {
            <B as FusedSoftmax>::masked_softmax_backward(p, dp, masked, divisor)
        });
    }
}

impl<B: FusedSoftmax, C: CheckpointStrategy> FusedSoftmax for Autodiff<B, C> {
    fn masked_softmax(
        scores: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self> {
        let node = scores.node();
        let scores = scores.into_primitive();
        match SoftmaxBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let p = <B as FusedSoftmax>::masked_softmax(scores, masked.clone(), divisor);
                prep.finish((p.clone(), masked, divisor), p)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(<B as FusedSoftmax>::masked_softmax(scores, masked, divisor))
            }
        }
    }

    /// Only the softmax's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn masked_softmax_backward(
        p: FloatTensor<Self>,
        dp: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self> {
        let [p, dp] = [p, dp].map(|t| t.into_primitive());
        let ds = <B as FusedSoftmax>::masked_softmax_backward(p, dp, masked, divisor);
        FloatTensor::<Self>::new(ds)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Bool, Distribution, Tensor, TensorData};

    use crate::model::ops::{masked_softmax, masked_softmax_composed};

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): two key/value heads sharing each row's mask, a causal pattern with
    /// padding and one fully masked row (uniform, as transformers' fill gives), strided scores;
    /// the probabilities and the scores' gradient. Sums in another order: 1e-5 of the largest
    /// value is ~100 ulps; a wrong mask row or formula is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (b, g, q, keys) = (2, 2, 3, 5);
        let scores: Tensor<4> =
            Tensor::random([b, g, keys, q], Distribution::Normal(0.0, 3.0), device);
        let scores = scores.swap_dims(2, 3); // [b, g, q, keys], strided
        // Row 0 causal after two shared keys; row 1 sees two keys, its last query none.
        let flags: Vec<bool> = (0..b * q * keys)
            .map(|i| {
                let (row, query, key) = (i / (q * keys), i / keys % q, i % keys);
                match row {
                    0 => key > 2 + query,
                    _ => query == q - 1 || key >= 2,
                }
            })
            .collect();
        let masked: Tensor<4, Bool> =
            Tensor::from_data(TensorData::new(flags, [b, 1, q, keys]), device);
        let mix: Tensor<4> = Tensor::random([b, g, q, keys], Distribution::Default, device);
        let run = |softmax: fn(Tensor<4>, Tensor<4, Bool>, f64) -> Tensor<4>| {
            let scores = scores.clone().require_grad();
            let p = softmax(scores.clone(), masked.clone(), 8.0);
            let grads = (p.clone() * mix.clone()).sum().backward();
            let ds = scores.grad(&grads).expect("the scores' gradient");
            [p.into_data(), ds.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let [p_kernel, ds_kernel] = run(masked_softmax);
        let [p_ops, ds_ops] = run(masked_softmax_composed);
        // Batch row 1's last query sees no key: uniform over the keys, in both heads.
        for head in 0..g {
            let at = ((g + head) * q + q - 1) * keys;
            let row = &p_kernel[at..at + keys];
            assert!(
                row.iter().all(|&v| (v - 1.0 / keys as f32).abs() < 1e-6),
                "{row:?}"
            );
        }
        for (what, a, b) in [
            ("probabilities", p_kernel, p_ops),
            ("gradient", ds_kernel, ds_ops),
        ] {
            let largest = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = (a.iter().zip(&b)).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("masked_softmax kernel: {what} off by {worst:e} of {largest}");
            assert!(
                worst <= 1e-5 * largest,
                "{what} off by {worst:e} of {largest}"
            );
        }
    }
}
