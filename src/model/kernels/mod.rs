//! The GPU path's own kernels (#34), in cubecl, each wired into burn's autodiff as a backend
//! extension with its own backward: where burn's ops cost a step many small launches (fusion
//! does not join work across a reduction), one kernel each way. `model::ops` chooses them on a
//! GPU ([`crate::backend::own_kernel`]); the CPU keeps burn's ops. A row's work is a cube's (a
//! workgroup's): its threads share the row and join their parts in tree sums in workgroup memory
//! ([`cube_sum`]; no subgroup operations, which not every browser offers). A thread a row left an
//! H200 nearly idle: attention's kernels cost a 135M step 150 ms more than burn's ops.

pub mod attention;
pub mod logprob;
pub mod norm;
pub mod rope;
pub mod swiglu;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::CubeTensor;
use burn::backend::{Backend, Shape, TensorMetadata};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::permute;
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// A contiguous empty tensor shaped `shape`, of `like`'s type, on its device.
fn empty(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, like.dtype)
}

/// An empty tensor shaped as `like` with its dimensions in the same memory order (its strides'
/// order), so that a gradient is laid out as its input: the gradient of a view of a projection's
/// rows is a view of rows again, which the projection's backward reads without a copy.
fn empty_like(like: &CubeTensor) -> CubeTensor {
    let (shape, strides) = (like.shape(), like.meta.strides());
    let mut order: Vec<usize> = (0..shape.num_dims()).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(strides[d])); // outermost first
    let stored = empty(
        like,
        Shape::from(order.iter().map(|&d| shape[d]).collect::<Vec<_>>()),
    );
    let mut axes = vec![0; order.len()];
    for (at, &d) in order.iter().enumerate() {
        axes[d] = at;
    }
    permute(stored, &axes)
}

/// `[a, b, c, d]` -> `[a, c, b, d]` (heads before positions, or positions before heads).
fn swap_1_2(shape: &Shape) -> Shape {
    Shape::new([shape[0], shape[2], shape[1], shape[3]])
}

/// The offset of `t[a, b, c, d]`, through `t`'s strides.
#[cube]
fn at<E: CubePrimitive>(t: &Tensor<E>, a: usize, b: usize, c: usize, d: usize) -> usize {
    a * t.stride(0) + b * t.stride(1) + c * t.stride(2) + d * t.stride(3)
}

/// Where RoPE's `cos` for batch row `bi`, position `t` and dimension `i` is in `angles`
/// (`model::ops::Angles::both`: contiguous `[2 · (1|b), s|1, 1, hd]`, `cos` then `sin`, a run of
/// positions or one per row); its `sin` is half the tensor further on.
#[cube]
fn angle_at<F: Float>(angles: &Tensor<F>, bi: usize, t: usize, i: usize) -> usize {
    let (rows, positions) = (angles.shape(0) / 2, angles.shape(1));
    ((bi % rows) * positions + t % positions) * angles.shape(3) + i
}

/// The sum of every thread's `part` (a tree over `shared`, one value a thread), in every thread.
#[cube]
fn cube_sum<F: Float>(part: F, shared: &mut Shared<[F]>, #[comptime] threads: usize) -> F {
    cube_tree(part, shared, false, threads)
}

/// The maximum of every thread's `part`, in every thread.
#[cube]
fn cube_max<F: Float>(part: F, shared: &mut Shared<[F]>, #[comptime] threads: usize) -> F {
    cube_tree(part, shared, true, threads)
}

/// Every thread's `part` joined (added, or the larger kept when `max`) in a tree over `shared`,
/// in every thread: `threads` a power of two, every thread of the cube taking part.
#[cube]
fn cube_tree<F: Float>(
    part: F,
    shared: &mut Shared<[F]>,
    #[comptime] max: bool,
    #[comptime] threads: usize,
) -> F {
    let i = UNIT_POS_X as usize;
    shared[i] = part;
    sync_cube();
    let steps = comptime!(threads.trailing_zeros() as usize);
    let mut step = 0usize;
    while step < steps {
        let half = (threads / 2) >> step;
        if i < half {
            let (a, b) = (shared[i], shared[i + half]);
            let mut joined = a + b;
            if max {
                joined = a;
                if b > a {
                    joined = b;
                }
            }
            shared[i] = joined;
        }
        sync_cube();
        step += 1usize;
    }
    let joined = shared[0];
    sync_cube();
    joined
}

/// The most threads a cube: WebGPU's default limit. Attention takes a thread a dimension of a
/// head: wider heads keep burn's ops (`model::ops`; every family here has 64 or 128).
pub const MAX_THREADS: usize = 256;

/// Threads a cube for rows `width` wide (a power of two, for [`cube_sum`]'s tree; at most
/// [`MAX_THREADS`], each thread then taking several of a row's values), and the launch grid of `n`
/// cubes (past a dimension's 65,535, over a second).
fn cubes(width: usize, n: usize) -> (usize, CubeCount, CubeDim) {
    let threads = width.next_power_of_two().min(MAX_THREADS);
    let x = n.clamp(1, 65_535);
    let count = CubeCount::Static(x as u32, n.div_ceil(x) as u32, 1);
    (threads, count, CubeDim::new_1d(threads as u32))
}

/// The launch grid of one thread for each of `n` items.
fn grid(like: &CubeTensor, n: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&like.client, n);
    (
        calculate_cube_count_elemwise(&like.client, n, cube_dim),
        cube_dim,
    )
}

/// A contiguous output shaped as `x`, and the launch grid of a cube for each of its rows (its
/// last dimension, [`cubes`]).
fn rows_out(x: &CubeTensor) -> (CubeTensor, (usize, CubeCount, CubeDim)) {
    let shape = x.shape();
    let width = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / width.max(1);
    (empty(x, shape), cubes(width, rows))
}

/// Hands each tracked parent (its node's id; none when untracked) its gradient, in order: for a
/// backward pass that computes several inputs' gradients in one kernel (burn's `unary` and
/// `binary` take one closure a parent).
fn register_grads<B: Backend, const N: usize>(
    parents: [Option<NodeId>; N],
    grads: &mut Gradients,
    each: [FloatTensor<B>; N],
) {
    for (parent, grad) in parents.into_iter().zip(each) {
        if let Some(id) = parent {
            grads.register::<B>(id, grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use burn::tensor::Device;

    /// The wgpu device the kernels' tests share (a process initialises wgpu once): the GPU, or
    /// lavapipe where there is none.
    pub fn gpu() -> &'static Device {
        static GPU: OnceLock<Device> = OnceLock::new();
        GPU.get_or_init(|| {
            Device::wgpu_options()
                .init()
                .expect("a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers)")
                .autodiff()
        })
    }
}
