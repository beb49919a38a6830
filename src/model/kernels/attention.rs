//! Attention as one kernel forward and two back: `y = softmax(fill(q · kᵀ / divisor)) · v`, a
//! masked key's score `f32::MIN` (transformers' fill: a fully masked row stays finite, uniform).
//! burn's ops cost it two products and a softmax forward and four products and the softmax's
//! backward. The scores are recomputed, never stored between the passes (flash attention's
//! trade): a thread holds one query row's, in three passes over the keys (the maximum, the sum,
//! the output), and the backward pass computes them again from `q` and `k`.
//!
//! Queries `[b, g, R, hd]` (grouped-query attention's layout: the `R = r · s` query rows of key/
//! value head `g`, `model::attend`), keys and values `[b, g, K, hd]`, the mask `[b, 1, R, K]`
//! shared by the `g` heads. The gradients, with `p` the probabilities and `dy` the output's:
//! `dp = dy · vᵀ`, `ds = p · (dp - Σ p · dp) / divisor` (zero where masked), `dq = ds · k`, `dk =
//! dsᵀ · q`, `dv = pᵀ · dy`: the first kernel a thread a query row (`dq`, and `ds`, `p` for the
//! second), the second a thread a key's value (`dk`, `dv`: sums over the query rows).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Autodiff, Backend, Shape, TensorMetadata, backend_extension};
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

use super::{empty, grid, register_grads, rows_out};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedAttention: Backend {
    /// The attention of `q` over `k`, `v` with `masked`: `[b, g, R, hd]`.
    #[fusion(dtype = q, shape = q)]
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self>;
    /// The gradients of `q`, `k` and `v` given the output's, `dy`.
    #[fusion(meta = |q, k, v, _masked, _dy, _divisor| (q.clone(), k.clone(), v.clone()))]
    fn attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        dy: FloatTensor<Self>,
        divisor: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Where a query row's tensors start: its own (`q`, `y`: `· hd`; `p`, `ds`: `· keys`), its head's
/// keys and values, and its mask row.
#[derive(CubeType)]
struct RowAt {
    row: usize,
    kv: usize,
    mask: usize,
}

#[cube]
fn row_at<F: Float>(q: &Tensor<F>, keys: usize, row: usize) -> RowAt {
    let (g, rows, hd) = (q.shape(1), q.shape(2), q.shape(3));
    let head = row / rows; // b · g + g's index
    RowAt {
        row,
        kv: head * keys * hd,
        mask: ((head / g) * rows + row % rows) * keys,
    }
}

/// The scaled score of the query row at `at` for key `key`, `F::min_value()` when masked.
#[cube]
fn score<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    masked: &Tensor<M>,
    at: &RowAt,
    key: usize,
    divisor: f32,
) -> F {
    let hd = q.shape(3);
    let (q_at, k_at) = (at.row * hd, at.kv + key * hd);
    let mut dot = F::new(0.0);
    for i in 0..hd {
        dot += q[q_at + i] * k[k_at + i];
    }
    let mut v = dot / F::cast_from(divisor);
    if masked[at.mask + key] != M::from_int(0) {
        v = F::min_value();
    }
    v
}

/// The softmax's maximum and sum over a row's scores.
#[cube]
fn max_and_sum<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    masked: &Tensor<M>,
    at: &RowAt,
    divisor: f32,
) -> (F, F) {
    let keys = k.shape(2);
    let mut max = F::min_value();
    for key in 0..keys {
        let s = score(q, k, masked, at, key, divisor);
        if s > max {
            max = s;
        }
    }
    let mut sum = F::new(0.0);
    for key in 0..keys {
        sum += F::exp(score(q, k, masked, at, key, divisor) - max);
    }
    (max, sum)
}

#[cube(launch)]
fn attention_kernel<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    masked: &Tensor<M>,
    y: &mut Tensor<F>,
    divisor: f32,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    let (keys, hd) = (k.shape(2), q.shape(3));
    if ABSOLUTE_POS * hd >= y.len() {
        terminate!();
    }
    let at = row_at(q, keys, ABSOLUTE_POS);
    let (max, sum) = max_and_sum(q, k, masked, &at, divisor);
    let y_at = at.row * hd;
    for j in 0..hd {
        y[y_at + j] = F::new(0.0);
    }
    for key in 0..keys {
        let p = F::exp(score(q, k, masked, &at, key, divisor) - max) / sum;
        let v_at = at.kv + key * hd;
        for j in 0..hd {
            y[y_at + j] += p * v[v_at + j];
        }
    }
}

/// A query row's `p`, `ds` and `dq`.
#[cube(launch)]
fn attention_backward_rows<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    masked: &Tensor<M>,
    dy: &Tensor<F>,
    p: &mut Tensor<F>,
    ds: &mut Tensor<F>,
    dq: &mut Tensor<F>,
    divisor: f32,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    let (keys, hd) = (k.shape(2), q.shape(3));
    if ABSOLUTE_POS * hd >= dq.len() {
        terminate!();
    }
    let at = row_at(q, keys, ABSOLUTE_POS);
    let (max, sum) = max_and_sum(q, k, masked, &at, divisor);
    let (q_at, p_at) = (at.row * hd, at.row * keys);
    let mut dot = F::new(0.0);
    for key in 0..keys {
        let prob = F::exp(score(q, k, masked, &at, key, divisor) - max) / sum;
        let v_at = at.kv + key * hd;
        let mut dp = F::new(0.0);
        for j in 0..hd {
            dp += dy[q_at + j] * v[v_at + j];
        }
        p[p_at + key] = prob;
        ds[p_at + key] = dp;
        dot += prob * dp;
    }
    for key in 0..keys {
        let mut d = p[p_at + key] * (ds[p_at + key] - dot) / F::cast_from(divisor);
        if masked[at.mask + key] != M::from_int(0) {
            d = F::new(0.0);
        }
        ds[p_at + key] = d;
    }
    for i in 0..hd {
        let mut acc = F::new(0.0);
        for key in 0..keys {
            acc += ds[p_at + key] * k[at.kv + key * hd + i];
        }
        dq[q_at + i] = acc;
    }
}

/// A key's `dk` and `dv` at one dimension: sums over its head's query rows.
#[cube(launch)]
fn attention_backward_keys<F: Float>(
    q: &Tensor<F>,
    dy: &Tensor<F>,
    p: &Tensor<F>,
    ds: &Tensor<F>,
    dk: &mut Tensor<F>,
    dv: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= dk.len() {
        terminate!();
    }
    let (rows, hd, keys) = (q.shape(2), q.shape(3), dk.shape(2));
    let i = ABSOLUTE_POS % hd;
    let key = ABSOLUTE_POS / hd % keys;
    let head = ABSOLUTE_POS / (hd * keys);
    let mut dk_sum = F::new(0.0);
    let mut dv_sum = F::new(0.0);
    for r in 0..rows {
        let row = head * rows + r;
        dk_sum += ds[row * keys + key] * q[row * hd + i];
        dv_sum += p[row * keys + key] * dy[row * hd + i];
    }
    dk[ABSOLUTE_POS] = dk_sum;
    dv[ABSOLUTE_POS] = dv_sum;
}

impl FusedAttention for CubeBackend {
    fn attention(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        masked: CubeTensor,
        divisor: f32,
    ) -> CubeTensor {
        let [q, k, v, masked] = [q, k, v, masked].map(into_contiguous);
        let (y, count, dim) = rows_out(&q); // a thread a query row
        let dtypes = [q.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = q.client.clone();
        let [q, k, v, masked, out] = [q, k, v, masked, y.clone()].map(CubeTensor::into_tensor_arg);
        attention_kernel::launch(&client, count, dim, q, k, v, masked, out, divisor, dtypes);
        y
    }

    fn attention_backward(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        masked: CubeTensor,
        dy: CubeTensor,
        divisor: f32,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let [q, k, v, masked, dy] = [q, k, v, masked, dy].map(into_contiguous);
        let [b, g, rows, _] = q.shape().dims();
        let keys = k.shape()[2];
        let (p, ds) = (
            empty(&q, Shape::new([b, g, rows, keys])),
            empty(&q, Shape::new([b, g, rows, keys])),
        );
        let (dq, dk, dv) = (
            empty(&q, q.shape()),
            empty(&k, k.shape()),
            empty(&v, v.shape()),
        );
        let dtypes = [q.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = q.client.clone();
        let arg = |t: &CubeTensor| t.clone().into_tensor_arg();
        let (count, dim) = grid(&q, b * g * rows);
        attention_backward_rows::launch(
            &client,
            count,
            dim,
            arg(&q),
            arg(&k),
            arg(&v),
            arg(&masked),
            arg(&dy),
            arg(&p),
            arg(&ds),
            arg(&dq),
            divisor,
            dtypes,
        );
        let (count, dim) = grid(&k, k.shape().num_elements());
        attention_backward_keys::launch(
            &client,
            count,
            dim,
            arg(&q),
            arg(&dy),
            arg(&p),
            arg(&ds),
            arg(&dk),
            arg(&dv),
            dtypes[0],
        );
        (dq, dk, dv)
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: FusedAttention> Backward<B, 3> for AttentionBackward {
    /// The inputs (the scores are recomputed from them), the mask and the divisor.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        BoolTensor<B>,
        f32,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (q, k, v, masked, divisor) = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let (dq, dk, dv) = <B as FusedAttention>::attention_backward(q, k, v, masked, dy, divisor);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        register_grads::<B, 3>(parents, grads, [dq, dk, dv]);
    }
}

impl<B: FusedAttention, C: CheckpointStrategy> FusedAttention for Autodiff<B, C> {
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
    ) -> FloatTensor<Self> {
        let nodes = [q.node(), k.node(), v.node()];
        let [q, k, v] = [q, k, v].map(|t| t.into_primitive());
        match AttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (qc, kc, vc, mc) = (q.clone(), k.clone(), v.clone(), masked.clone());
                let y = <B as FusedAttention>::attention(q, k, v, masked, divisor);
                prep.finish((qc, kc, vc, mc, divisor), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(<B as FusedAttention>::attention(q, k, v, masked, divisor))
            }
        }
    }

    /// Only attention's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        dy: FloatTensor<Self>,
        divisor: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [q, k, v, dy] = [q, k, v, dy].map(|t| t.into_primitive());
        let (dq, dk, dv) = <B as FusedAttention>::attention_backward(q, k, v, masked, dy, divisor);
        let wrap = FloatTensor::<Self>::new;
        (wrap(dq), wrap(dk), wrap(dv))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Bool, Distribution, Tensor, TensorData};

    use crate::model::ops::{attention, attention_composed};
    use crate::model::tests::assert_close;

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): two key/value heads sharing each row's mask, a causal pattern with
    /// padding and one fully masked row (uniform, as transformers' fill gives), strided queries;
    /// the output and the gradients of `q`, `k` and `v`. Sums in other orders: 1e-5 of the
    /// largest value is ~100 ulps; a wrong row, head or mask is off by O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (b, g, rows, keys, hd) = (2, 2, 3, 5, 8);
        let random = |shape: [usize; 4]| -> Tensor<4> {
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
        };
        let q = random([b, g, hd, rows]).swap_dims(2, 3); // [b, g, rows, hd], strided
        let (k, v) = (random([b, g, keys, hd]), random([b, g, keys, hd]));
        // Row 0 causal after two shared keys; row 1 sees two keys, its last query none.
        let flags: Vec<bool> = (0..b * rows * keys)
            .map(|i| {
                let (row, query, key) = (i / (rows * keys), i / keys % rows, i % keys);
                match row {
                    0 => key > 2 + query,
                    _ => query == rows - 1 || key >= 2,
                }
            })
            .collect();
        let masked: Tensor<4, Bool> =
            Tensor::from_data(TensorData::new(flags, [b, 1, rows, keys]), device);
        let mix = random([b, g, rows, hd]);
        type Attention = fn(Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4, Bool>, f64) -> Tensor<4>;
        let run = |attend: Attention| {
            let [q, k, v] = [&q, &k, &v].map(|t| t.clone().require_grad());
            let y = attend(q.clone(), k.clone(), v.clone(), masked.clone(), 8f64.sqrt());
            let grads = (y.clone() * mix.clone()).sum().backward();
            let grad = |t: &Tensor<4>| t.grad(&grads).expect("a gradient").into_data();
            [y.into_data(), grad(&q), grad(&k), grad(&v)].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        let kernel = run(attention);
        let ops = run(attention_composed);
        // Batch row 1's last query sees no key: the mean of its head's values.
        let values: Vec<f32> = v.clone().into_data().try_to_vec().unwrap();
        for head in 0..g {
            let at = ((g + head) * rows + rows - 1) * hd;
            let got = &kernel[0][at..at + hd];
            for (j, got) in got.iter().enumerate() {
                let of_key = |key| values[((g + head) * keys + key) * hd + j];
                let mean = (0..keys).map(of_key).sum::<f32>() / keys as f32;
                assert!((got - mean).abs() < 1e-5, "{got} against the mean {mean}");
            }
        }
        let names = ["output", "q's gradient", "k's gradient", "v's gradient"];
        for ((what, got), want) in names.into_iter().zip(kernel).zip(ops) {
            assert_close(&format!("attention kernel: {what}"), &got, &want, 1e-5);
        }
    }
}
