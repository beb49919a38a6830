//! Products with frozen weights kept in their file's 2-byte precision (bf16, f16) on the CPU
//! backend: each weight is widened to f32 a block at a time, inside the product, and the block
//! freed before the next, so a model holds 2 bytes a weight instead of 4 and the arithmetic is
//! the f32 arithmetic of before (widening bf16 or f16 to f32 is exact: a weight widened whole
//! gives results bit-identical to loading the same file as f32; one widened in blocks, a large
//! head, may differ by an ulp, as gemm picks its kernel by the block's width and `x · w` adds
//! its blocks' products).
//!
//! A custom op with its own backward because burn's autodiff would keep every widened copy for
//! the backward pass (a matmul stores its right-hand side), which is more memory than f32 weights.
//! This op stores the 2-byte weight (shared, not copied) and computes only the input's gradient:
//! the weights are frozen, so none flows to them.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, bf16, f16};

/// `x · w`, or `x · wᵀ` when `transposed`, for a 2-D `x` `[m, k]` and a frozen `w` of any float
/// type (`[k, n]`, or `[n, k]` when transposed); f32 out `[m, n]`.
#[backend_extension(Flex, Autodiff)]
pub trait FrozenMatmul: Backend {
    fn frozen_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self>;
}

/// Values widened at a time (4 MB of f32): the largest transient a product adds. A 135M model's
/// tied head (49,152 × 576) is widened in 28 blocks of 1,820 rows; its other matrices whole.
const WIDEN_BLOCK: usize = 1 << 20;

impl FrozenMatmul for Flex {
    fn frozen_matmul(x: FlexTensor, w: FlexTensor, transposed: bool) -> FlexTensor {
        let dims = w.layout().shape();
        let (rows, cols) = (dims[0], dims[1]);
        // Blocks of w's rows, so each block is contiguous in the file's order (a block of
        // columns is a strided copy: the tied head's backward spent ~9% of a 135M step there).
        let per = (WIDEN_BLOCK / cols.max(1)).clamp(1, rows.max(1));
        let blocks = (0..rows)
            .step_by(per)
            .map(|start| (start, per.min(rows - start)));
        match transposed {
            // x·wᵀ: w's rows are the output's columns; the blocks' products side by side.
            true => {
                let mut parts: Vec<FlexTensor> = blocks
                    .map(|(start, n)| {
                        let block = widen(&w.narrow(0, start, n)).transpose(0, 1);
                        Flex::float_matmul(x.clone(), block)
                    })
                    .collect();
                match parts.len() {
                    1 => parts.pop().expect("one part"),
                    _ => Flex::float_cat(parts, 1),
                }
            }
            // x·w: w's rows meet x's columns; the blocks' products add up, in w's order.
            // (A narrow is a view: the whole of x, when one block, stays contiguous.)
            false => blocks
                .map(|(start, n)| {
                    Flex::float_matmul(x.narrow(1, start, n), widen(&w.narrow(0, start, n)))
                })
                .reduce(Flex::float_add)
                .expect("a weight has rows"),
        }
    }
}

/// A contiguous f32 copy of `w` (a view of a frozen weight).
fn widen(w: &FlexTensor) -> FlexTensor {
    let w = w.to_contiguous();
    let shape = w.layout().shape().clone();
    let values: Vec<f32> = match w.dtype() {
        DType::F32 => return w,
        DType::BF16 => crate::backend::bf16_to_f32(w.storage::<bf16>()),
        DType::F16 => w.storage::<f16>().iter().map(|v| v.to_f32()).collect(),
        other => unreachable!("the loader keeps weights as f32, bf16 or f16, not {other:?}"),
    };
    FlexTensor::new(
        burn::backend::Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

#[derive(Debug)]
struct FrozenMatmulBackward;

impl<B: FrozenMatmul> Backward<B, 1> for FrozenMatmulBackward {
    /// The frozen weight (its storage shared) and whether the forward used it transposed.
    type State = (FloatTensor<B>, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (w, transposed) = ops.state;
        // y = x·w  =>  dx = dy·wᵀ (and the other way round): the same product, flipped.
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::frozen_matmul(grad, w, !transposed)
        });
    }
}

impl<B: FrozenMatmul, C: CheckpointStrategy> FrozenMatmul for Autodiff<B, C> {
    fn frozen_matmul(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self> {
        assert!(!w.is_tracked(), "a frozen weight takes no gradient");
        let w = w.into_primitive();
        let node = x.node();
        let x = x.into_primitive();
        match FrozenMatmulBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::frozen_matmul(x, w.clone(), transposed);
                prep.finish((w, transposed), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::frozen_matmul(x, w, transposed)),
        }
    }
}

/// `x · w` (`transposed`: `x · wᵀ`) for `x` `[m, k]`: f32 weights through burn's own matmul
/// (every backend, and gradients to the weights where a copy of the model is trained), 2-byte
/// ones through [`FrozenMatmul`] (the CPU backend, where the loader keeps them).
pub fn matmul(x: Tensor<2>, w: Tensor<2>, transposed: bool) -> Tensor<2> {
    if w.dtype() == DType::F32 {
        return x.matmul(if transposed { w.transpose() } else { w });
    }
    Tensor::from_dispatch(<Dispatch as FrozenMatmul>::frozen_matmul(
        x.into_dispatch(),
        w.into_dispatch(),
        transposed,
    ))
}

/// `nn.Linear` with the weight `[in, out]`: `x · w + b` for `x` `[b, s, in]`.
pub fn linear(x: Tensor<3>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<3> {
    if w.dtype() == DType::F32 {
        return burn::tensor::module::linear(x, w, bias);
    }
    let [b, s, d_in] = x.dims();
    let y = matmul(x.reshape([b * s, d_in]), w, false); // [b*s, out]
    let y = match bias {
        Some(bias) => y + bias.unsqueeze::<2>(),
        None => y,
    };
    let d_out = y.dims()[1];
    y.reshape([b, s, d_out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::assert_close;
    use burn::tensor::{Distribution, FloatDType};

    /// Products with a bf16 weight big enough to be widened in several blocks, both ways round,
    /// and the input's gradient, against burn's matmul on the whole widened weight. The same f32
    /// sums, but gemm picks its kernels by the matrix's width, so a block's columns may be summed
    /// in another order than the whole matrix's: 13 of 98,000 outputs differed by an ulp or two
    /// here. 1e-6 relative to the largest output is ~10 ulps; a wrong block (an offset, a
    /// transpose) is off by O(1).
    #[test]
    fn blocked_products_and_their_gradient_equal_the_whole_f32_product() {
        let device = crate::backend::cpu();
        let (k, n) = (64, WIDEN_BLOCK / 64 * 2 + 5); // two full blocks and a ragged one
        for transposed in [false, true] {
            let shape = if transposed { [n, k] } else { [k, n] };
            let w: Tensor<2> = Tensor::random(shape, Distribution::Default, &device);
            let half = w.cast(FloatDType::BF16);
            let wide = half.clone().cast(FloatDType::F32);
            let x: Tensor<2> =
                Tensor::random([3, k], Distribution::Default, &device).require_grad();
            let mix: Tensor<2> = Tensor::random([3, n], Distribution::Default, &device);
            let run = |w: Tensor<2>| {
                let y = matmul(x.clone(), w, transposed);
                let grads = (y.clone() * mix.clone()).sum().backward();
                let dx = x.grad(&grads).expect("x's gradient");
                [y.into_data(), dx.into_data()].map(|d| d.try_to_vec::<f32>().unwrap())
            };
            let [y_half, dx_half] = run(half);
            let [y_wide, dx_wide] = run(wide);
            for (what, a, b) in [("product", y_half, y_wide), ("gradient", dx_half, dx_wide)] {
                assert_close(&format!("transposed {transposed}: {what}"), &a, &b, 1e-6);
            }
        }
    }
}
