//! Attention as one kernel forward and two back: `y = softmax(fill(q · kᵀ / divisor)) · v`, a
//! masked key's score `f32::MIN` (transformers' fill: a fully masked row stays finite, uniform),
//! RoPE applied to `q` and `k` on the fly when asked (`rope`: the training pass, whose rotated
//! keys nothing keeps). burn's ops cost it two products and a softmax forward and four products
//! and the softmax's backward, and a RoPE kernel each way for `q` and for `k`. A cube
//! computes a query row, a thread each of its head's dimensions: a score is a tree sum of the
//! threads' products ([`super::cube_sum`]), the softmax online (one pass over the keys: a running
//! maximum, the sum under it, each thread's output value under it, as flash attention), and no
//! score is stored; the backward pass computes them again from `q` and `k`.
//!
//! Every tensor is read and written through its strides, so the projections' rows go in and out
//! as they are: queries `[b, h, s, hd]` and keys and values `[b, g, K, hd]` (views of `[b, s,
//! heads, hd]`; each key/value head serves `r = h / g` consecutive query heads), the output `[b,
//! s, h, hd]` (the output projection's rows), each input's gradient laid out as the input (a view
//! of the rows again). Before, a copy each way for the values' and output's layouts, and one for
//! each input the backward read. The mask `[b, 1, r · s, K]` is shared by the key/value heads.
//!
//! The gradients, with `p` the probabilities and `dy` the output's: `dp = dy · vᵀ`,
//! `ds = p · (dp - Σ p · dp) / divisor` (zero where masked), `dq = ds · k`, `dk = dsᵀ · q`,
//! `dv = pᵀ · dy` (with RoPE: of the rotated `q` and `k`, then rotated back, `rope.rs`'s
//! backward), and `Σ p · dp = dy · y`: three kernels, a cube a query row for `p` and `ds` (`[2, b · h · s, K]`), a cube
//! a query row for `dq`, a cube a key for `dk` and `dv` (sums over its head's query rows). Three,
//! not two: a kernel binds at most 7 tensors here (WebGPU's default is 8 storage buffers a
//! stage, one of them cubecl's; SwiftShader allows 10, and a kernel of 10 tensors failed there).
//! For the same reason RoPE's `cos` and `sin` come as one tensor ([`crate::model::ops::Angles`]).

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

use super::{angle_at, at, cube_sum, cubes, empty, empty_like, register_grads, swap_1_2};

#[backend_extension(Cube, Fusion: cfg(any(feature = "fusion", target_arch = "wasm32")), Autodiff)]
pub trait FusedAttention: Backend {
    /// The attention of `q` `[b, h, s, hd]` over `k`, `v` `[b, g, K, hd]` with `masked`, `q`
    /// and `k` rotated by `angles` (`cos` then `sin`, `[2 · (1|b), s|1, 1, hd]`, positions
    /// `0..s`, `K = s`) when `rope` (else the angles are not read): `[b, s, h, hd]`.
    #[fusion(dtype = q, shape = swap_1_2(q))]
    #[allow(clippy::too_many_arguments)]
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
        rope: bool,
    ) -> FloatTensor<Self>;
    /// The gradients of `q`, `k` and `v` given the output's, `dy`.
    #[fusion(meta = |q, k, v, _angles, _masked, _dy, _divisor, _rope| (q.clone(), k.clone(), v.clone()))]
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        dy: FloatTensor<Self>,
        divisor: f32,
        rope: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// A query row: its batch row, head and position, and its key/value head.
#[derive(CubeType)]
struct Row {
    bi: usize,
    head: usize,
    t: usize,
    kv: usize,
}

/// The query row cube `CUBE_POS` computes, of `h` query heads of `s` positions over `kv_heads`
/// key/value heads.
#[cube]
fn row_of(h: usize, s: usize, kv_heads: usize) -> Row {
    let (t, head, bi) = (CUBE_POS % s, CUBE_POS / s % h, CUBE_POS / (s * h));
    Row {
        bi,
        head,
        t,
        kv: head / (h / kv_heads),
    }
}

/// Where `row`'s mask row starts in `masked` `[b, 1, r · s, K]`.
#[cube]
fn mask_at<M: Int>(masked: &Tensor<M>, row: &Row, h: usize, kv_heads: usize, s: usize) -> usize {
    let mask_row = (row.head % (h / kv_heads)) * s + row.t;
    (row.bi % masked.shape(0)) * masked.stride(0) + mask_row * masked.stride(2)
}

/// Value `i` of row `(bi, head, t)` of `x` `[b, heads, s, hd]`, rotated by RoPE when `rope`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn value<F: Float>(
    x: &Tensor<F>,
    angles: &Tensor<F>,
    bi: usize,
    head: usize,
    t: usize,
    i: usize,
    #[comptime] rope: bool,
) -> F {
    let mut v = x[at(x, bi, head, t, i)];
    if rope {
        let hd = x.shape(3);
        let a = angle_at(angles, bi, t, i);
        let swapped = x[at(x, bi, head, t, (i + hd / 2) % hd)];
        v = v * angles[a] + swapped * angles[a + angles.len() / 2];
    }
    v
}

/// A thread's part of a rotated row's gradient, `own` (dimension `i`), rotated back to the
/// input's (RoPE's backward: it needs the part of the swapped dimension, exchanged through
/// `shared`); `own` itself without RoPE. Every thread of the cube calls it.
#[cube]
#[allow(clippy::too_many_arguments)]
fn unrotate<F: Float>(
    own: F,
    shared: &mut Shared<[F]>,
    angles: &Tensor<F>,
    bi: usize,
    t: usize,
    i: usize,
    #[comptime] rope: bool,
) -> F {
    let mut d = own;
    if rope {
        let (hd, sin) = (angles.shape(3), angles.len() / 2);
        shared[i] = own;
        sync_cube();
        if i < hd {
            let swapped = (i + hd / 2) % hd;
            let other = shared[swapped] * angles[angle_at(angles, bi, t, swapped) + sin];
            d = own * angles[angle_at(angles, bi, t, i)] + other;
        }
        sync_cube();
    }
    d
}

/// The scaled score of `row` for key `key` (`F::min_value()` when masked: `mask` where its
/// mask row starts), from each thread's rotated query value `q_i` (zero past the head's
/// dimensions).
#[cube]
#[allow(clippy::too_many_arguments)]
fn score<F: Float, M: Int>(
    q_i: F,
    k: &Tensor<F>,
    angles: &Tensor<F>,
    masked: &Tensor<M>,
    row: &Row,
    mask: usize,
    key: usize,
    divisor: f32,
    shared: &mut Shared<[F]>,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
) -> F {
    let i = UNIT_POS_X as usize;
    let mut part = F::new(0.0);
    if i < k.shape(3) {
        part = q_i * value(k, angles, row.bi, row.kv, key, i, rope);
    }
    let mut s = cube_sum(part, shared, threads) / F::cast_from(divisor);
    if masked[mask + key * masked.stride(3)] != M::from_int(0) {
        s = F::min_value();
    }
    s
}

/// A thread's value of the query row (rotated when `rope`; zero past the head's dimensions).
#[cube]
fn query<F: Float>(q: &Tensor<F>, angles: &Tensor<F>, row: &Row, #[comptime] rope: bool) -> F {
    let i = UNIT_POS_X as usize;
    let mut q_i = F::new(0.0);
    if i < q.shape(3) {
        q_i = value(q, angles, row.bi, row.head, row.t, i, rope);
    }
    q_i
}

/// A value of `t` `[b, heads, s, hd]` at a thread's dimension, zero past the head's.
#[cube]
fn own<F: Float>(t: &Tensor<F>, bi: usize, head: usize, s: usize) -> F {
    let i = UNIT_POS_X as usize;
    let mut v = F::new(0.0);
    if i < t.shape(3) {
        v = t[at(t, bi, head, s, i)];
    }
    v
}

/// What one pass over a query row's keys leaves: the row, where its mask row starts, the
/// thread's (rotated) query value, and the online softmax's running maximum, the sum of the
/// exponentials under it and the thread's output value under it (flash attention's).
#[derive(CubeType)]
struct Pass<F: Float> {
    row: Row,
    mask: usize,
    q_i: F,
    max: F,
    sum: F,
    out: F,
}

/// The online softmax of the cube's query row over its keys, each thread's output value `Σ p ·
/// v`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn softmax_pass<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    angles: &Tensor<F>,
    masked: &Tensor<M>,
    divisor: f32,
    shared: &mut Shared<[F]>,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
) -> Pass<F> {
    let row = row_of(q.shape(1), q.shape(2), k.shape(1));
    let mask = mask_at(masked, &row, q.shape(1), k.shape(1), q.shape(2));
    let q_i = query(q, angles, &row, rope);
    let mut max = F::min_value();
    let mut sum = F::new(0.0);
    let mut out = F::new(0.0);
    for key in 0..k.shape(2) {
        let s = score(
            q_i, k, angles, masked, &row, mask, key, divisor, shared, rope, threads,
        );
        let mut new_max = max;
        if s > max {
            new_max = s;
        }
        let e = F::exp(s - new_max);
        let scale = F::exp(max - new_max);
        sum = sum * scale + e;
        out = out * scale + e * own(v, row.bi, row.kv, key);
        max = new_max;
    }
    Pass::<F> {
        row,
        mask,
        q_i,
        max,
        sum,
        out,
    }
}

/// A cube a query row, a thread a dimension of its head.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn attention_kernel<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    angles: &Tensor<F>,
    masked: &Tensor<M>,
    y: &mut Tensor<F>,
    divisor: f32,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    if CUBE_POS >= q.shape(0) * q.shape(1) * q.shape(2) {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let pass = softmax_pass(q, k, v, angles, masked, divisor, &mut shared, rope, threads);
    let row = &pass.row;
    let (i, hd) = (UNIT_POS_X as usize, q.shape(3));
    if i < hd {
        // y: contiguous [b, s, h, hd]
        let y_at = ((row.bi * q.shape(2) + row.t) * q.shape(1) + row.head) * hd;
        y[y_at + i] = pass.out / pass.sum;
    }
}

/// A query row's `p` and `ds` (`pds` `[2, b · h · s, K]`: `p`, then `ds`), a cube a row.
/// `Σ p · dp` is `dy · y` (flash attention's backward): the first pass recomputes `y`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn attention_backward_scores<F: Float, M: Int>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    angles: &Tensor<F>,
    masked: &Tensor<M>,
    dy: &Tensor<F>,
    pds: &mut Tensor<F>,
    divisor: f32,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
    #[define(F, M)] _dtypes: [ElemType; 2],
) {
    let keys = k.shape(2);
    let rows = q.shape(0) * q.shape(1) * q.shape(2);
    if CUBE_POS >= rows {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let pass = softmax_pass(q, k, v, angles, masked, divisor, &mut shared, rope, threads);
    let row = &pass.row;
    // dy: [b, s, h, hd], read at (bi, t, head)
    let dy_i = own(dy, row.bi, row.t, row.head);
    let dot = cube_sum(dy_i * pass.out / pass.sum, &mut shared, threads);
    let (p_at, ds_at) = (CUBE_POS * keys, (rows + CUBE_POS) * keys);
    for key in 0..keys {
        let (q_i, mask) = (pass.q_i, pass.mask);
        let s = score(
            q_i,
            k,
            angles,
            masked,
            row,
            mask,
            key,
            divisor,
            &mut shared,
            rope,
            threads,
        );
        let prob = F::exp(s - pass.max) / pass.sum;
        let dp = cube_sum(dy_i * own(v, row.bi, row.kv, key), &mut shared, threads);
        let mut d = prob * (dp - dot) / F::cast_from(divisor);
        if masked[mask + key * masked.stride(3)] != M::from_int(0) {
            d = F::new(0.0);
        }
        if UNIT_POS_X == 0 {
            pds[p_at + key] = prob;
            pds[ds_at + key] = d;
        }
    }
}

/// A query row's `dq = ds · k` (rotated back with RoPE), a cube a row, a thread a dimension.
#[cube(launch)]
fn attention_backward_queries<F: Float>(
    k: &Tensor<F>,
    angles: &Tensor<F>,
    pds: &Tensor<F>,
    dq: &mut Tensor<F>,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
    #[define(F)] _dtype: ElemType,
) {
    let keys = k.shape(2);
    let rows = dq.shape(0) * dq.shape(1) * dq.shape(2);
    if CUBE_POS >= rows {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let row = row_of(dq.shape(1), dq.shape(2), k.shape(1));
    let (hd, i) = (dq.shape(3), UNIT_POS_X as usize);
    let ds_at = (rows + CUBE_POS) * keys;
    let mut dq_i = F::new(0.0);
    if i < hd {
        for key in 0..keys {
            dq_i += pds[ds_at + key] * value(k, angles, row.bi, row.kv, key, i, rope);
        }
    }
    let d = unrotate(dq_i, &mut shared, angles, row.bi, row.t, i, rope);
    if i < hd {
        let dq_at = row.bi * dq.stride(0) + row.head * dq.stride(1) + row.t * dq.stride(2);
        let dq_at = dq_at + i * dq.stride(3);
        dq[dq_at] = d;
    }
}

/// A key's `dk` and `dv`, a cube a key, a thread a dimension: sums over its head's query rows.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn attention_backward_keys<F: Float>(
    q: &Tensor<F>,
    angles: &Tensor<F>,
    dy: &Tensor<F>,
    pds: &Tensor<F>,
    dk: &mut Tensor<F>,
    dv: &mut Tensor<F>,
    #[comptime] rope: bool,
    #[comptime] threads: usize,
    #[define(F)] _dtype: ElemType,
) {
    let (g, keys, hd) = (dk.shape(1), dk.shape(2), dk.shape(3));
    if CUBE_POS >= dk.shape(0) * g * keys {
        terminate!();
    }
    let mut shared = Shared::new_slice(threads);
    let (h, s) = (q.shape(1), q.shape(2));
    let (r, rows) = (h / g, q.shape(0) * h * s);
    let i = UNIT_POS_X as usize;
    let key = CUBE_POS % keys;
    let kv = CUBE_POS / keys % g;
    let bi = CUBE_POS / (keys * g);
    let mut dk_i = F::new(0.0);
    let mut dv_i = F::new(0.0);
    if i < hd {
        for j in 0..r {
            let head = kv * r + j;
            for t in 0..s {
                let p_at = ((bi * h + head) * s + t) * keys + key;
                dk_i += pds[rows * keys + p_at] * value(q, angles, bi, head, t, i, rope);
                dv_i += pds[p_at] * dy[at(dy, bi, t, head, i)];
            }
        }
    }
    let d = unrotate(dk_i, &mut shared, angles, bi, key, i, rope);
    if i < hd {
        let dk_at = bi * dk.stride(0) + kv * dk.stride(1) + key * dk.stride(2) + i * dk.stride(3);
        dk[dk_at] = d;
        let dv_at = bi * dv.stride(0) + kv * dv.stride(1) + key * dv.stride(2) + i * dv.stride(3);
        dv[dv_at] = dv_i;
    }
}

impl FusedAttention for CubeBackend {
    fn attention(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        angles: CubeTensor,
        masked: CubeTensor,
        divisor: f32,
        rope: bool,
    ) -> CubeTensor {
        let angles = into_contiguous(angles); // `angle_at` reads them contiguous
        let [b, h, s, hd] = q.shape().dims();
        let y = empty(&q, swap_1_2(&q.shape()));
        let (threads, count, dim) = cubes(hd, b * h * s); // a cube a query row
        let dtypes = [q.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = q.client.clone();
        let [q, k, v, angles, masked, out] =
            [q, k, v, angles, masked, y.clone()].map(CubeTensor::into_tensor_arg);
        attention_kernel::launch(
            &client, count, dim, q, k, v, angles, masked, out, divisor, rope, threads, dtypes,
        );
        y
    }

    fn attention_backward(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        angles: CubeTensor,
        masked: CubeTensor,
        dy: CubeTensor,
        divisor: f32,
        rope: bool,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let angles = into_contiguous(angles);
        let [b, h, s, hd] = q.shape().dims();
        let [_, g, keys, _] = k.shape().dims();
        let pds = empty(&q, Shape::new([2, b * h * s, keys]));
        let (dq, dk, dv) = (empty_like(&q), empty_like(&k), empty_like(&v));
        let dtypes = [q.dtype, masked.dtype].map(dtype_to_storage_type);
        let client = q.client.clone();
        let arg = |t: &CubeTensor| t.clone().into_tensor_arg();
        let (threads, count, dim) = cubes(hd, b * h * s); // a cube a query row
        attention_backward_scores::launch(
            &client,
            count.clone(),
            dim,
            arg(&q),
            arg(&k),
            arg(&v),
            arg(&angles),
            arg(&masked),
            arg(&dy),
            arg(&pds),
            divisor,
            rope,
            threads,
            dtypes,
        );
        let (k_arg, a_arg, pds_arg, dq_arg) = (arg(&k), arg(&angles), arg(&pds), arg(&dq));
        let dtype = dtypes[0];
        attention_backward_queries::launch(
            &client, count, dim, k_arg, a_arg, pds_arg, dq_arg, rope, threads, dtype,
        );
        let (threads, count, dim) = cubes(hd, b * g * keys); // a cube a key
        attention_backward_keys::launch(
            &client,
            count,
            dim,
            arg(&q),
            arg(&angles),
            arg(&dy),
            arg(&pds),
            arg(&dk),
            arg(&dv),
            rope,
            threads,
            dtype,
        );
        (dq, dk, dv)
    }
}

#[derive(Debug)]
struct AttentionBackward;

/// What attention's backward reads: the inputs (the scores are recomputed from them), the
/// angles, the mask, the divisor and whether RoPE is applied.
type AttentionState<B> = ([FloatTensor<B>; 4], BoolTensor<B>, f32, bool);

impl<B: FusedAttention> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([q, k, v, angles], masked, divisor, rope) = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let (dq, dk, dv) =
            <B as FusedAttention>::attention_backward(q, k, v, angles, masked, dy, divisor, rope);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        register_grads::<B, 3>(parents, grads, [dq, dk, dv]);
    }
}

impl<B: FusedAttention, C: CheckpointStrategy> FusedAttention for Autodiff<B, C> {
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        divisor: f32,
        rope: bool,
    ) -> FloatTensor<Self> {
        assert!(!angles.is_tracked(), "the angles take no gradient");
        let nodes = [q.node(), k.node(), v.node()];
        let [q, k, v, angles] = [q, k, v, angles].map(|t| t.into_primitive());
        match AttentionBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inputs = [&q, &k, &v, &angles].map(Clone::clone);
                let state = (inputs, masked.clone(), divisor, rope);
                let y = <B as FusedAttention>::attention(q, k, v, angles, masked, divisor, rope);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(<B as FusedAttention>::attention(
                q, k, v, angles, masked, divisor, rope,
            )),
        }
    }

    /// Only attention's own backward calls this, on the inner backend; here it is a plain
    /// (untracked) function of its inputs.
    fn attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        masked: BoolTensor<Self>,
        dy: FloatTensor<Self>,
        divisor: f32,
        rope: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [q, k, v, angles, dy] = [q, k, v, angles, dy].map(|t| t.into_primitive());
        let (dq, dk, dv) =
            <B as FusedAttention>::attention_backward(q, k, v, angles, masked, dy, divisor, rope);
        let wrap = FloatTensor::<Self>::new;
        (wrap(dq), wrap(dk), wrap(dv))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Bool, Distribution, Tensor, TensorData};

    use crate::model::ops::{Angles, attention, attention_composed};
    use crate::model::tests::assert_close;

    /// The kernels against burn's ops on the same wgpu device (lavapipe where there is no GPU;
    /// `./build.sh test-gpu`): two key/value heads of two query heads each sharing each row's
    /// mask, a causal pattern with padding and one fully masked row (uniform, as transformers'
    /// fill gives), every input a view of rows `[b, s, heads, hd]` as the projections give them;
    /// without and with RoPE; the output and the gradients of `q`, `k` and `v`. Sums in other
    /// orders: 1e-5 of the largest value is ~100 ulps; a wrong row, head, mask or angle is off by
    /// O(1).
    #[test]
    fn kernels_equal_burns_ops() {
        let device = super::super::tests::gpu();
        let (b, g, r, s, hd) = (2, 2, 2, 5, 8);
        let random = |shape: [usize; 4]| -> Tensor<4> {
            Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
        };
        // [b, s, heads, hd] -> [b, heads, s, hd], strided
        let q = random([b, s, g * r, hd]).swap_dims(1, 2);
        let (k, v) = (
            random([b, s, g, hd]).swap_dims(1, 2),
            random([b, s, g, hd]).swap_dims(1, 2),
        );
        // Row 0 causal; row 1 sees two keys, its last query none. Each query head's rows alike.
        let flags: Vec<bool> = (0..b * r * s * s)
            .map(|i| {
                let (row, query, key) = (i / (r * s * s), i / s % s, i % s);
                match row {
                    0 => key > query,
                    _ => query == s - 1 || key >= 2,
                }
            })
            .collect();
        let masked: Tensor<4, Bool> =
            Tensor::from_data(TensorData::new(flags, [b, 1, r * s, s]), device);
        let angles = Angles::new(random([2, s, 1, hd]));
        let mix = random([b, s, g * r, hd]);
        type Attention =
            fn(Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4, Bool>, f64, Option<&Angles>) -> Tensor<4>;
        let run = |attend: Attention, angles: Option<&Angles>| {
            let [q, k, v] = [&q, &k, &v].map(|t| t.clone().require_grad());
            let y = attend(
                q.clone(),
                k.clone(),
                v.clone(),
                masked.clone(),
                8f64.sqrt(),
                angles,
            );
            let grads = (y.clone() * mix.clone()).sum().backward();
            let grad = |t: &Tensor<4>| t.grad(&grads).expect("a gradient").into_data();
            [y.into_data(), grad(&q), grad(&k), grad(&v)].map(|d| d.try_to_vec::<f32>().unwrap())
        };
        // Batch row 1's last query sees no key: the mean of its head's values.
        let plain = run(attention, None);
        let values: Vec<f32> = v.clone().swap_dims(1, 2).into_data().try_to_vec().unwrap();
        for head in 0..g * r {
            let at = ((s + s - 1) * g * r + head) * hd; // y [b, s, h, hd] at (1, s - 1, head)
            for (j, got) in plain[0][at..at + hd].iter().enumerate() {
                let of_key = |key| values[((s + key) * g + head / r) * hd + j];
                let mean = (0..s).map(of_key).sum::<f32>() / s as f32;
                assert!((got - mean).abs() < 1e-5, "{got} against the mean {mean}");
            }
        }
        let names = ["output", "q's gradient", "k's gradient", "v's gradient"];
        for angles in [None, Some(&angles)] {
            let (kernel, ops) = (run(attention, angles), run(attention_composed, angles));
            for ((what, got), want) in names.into_iter().zip(kernel).zip(ops) {
                let what = format!("attention kernel (rope {}): {what}", angles.is_some());
                assert_close(&what, &got, &want, 1e-5);
            }
        }
    }
}
