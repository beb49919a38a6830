//! A vocabulary-sized matrix `[vocab, d]` (the token embedding, a separate output head), held in
//! row parts where one GPU binding cannot hold it whole (WebGPU's default binding limit is 128
//! MiB; GPT-2 small's embedding is 147 MiB in f32, Qwen2.5-0.5B's 519 MiB). What the model asks
//! of the table (rows by token id, the logits' product) works part by part; on the CPU, and on a
//! GPU whose binding holds it, there is one part and each is the plain op.

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::frozen_matmul;

#[derive(Module, Debug)]
pub struct Table {
    /// Consecutive rows, in order.
    pub parts: Vec<Param<Tensor<2>>>,
}

impl Table {
    pub fn device(&self) -> Device {
        self.parts[0].val().device()
    }

    /// The whole `[vocab, d]` matrix (one part: the same tensor; in parts, joined, which only a
    /// device that holds it whole can do: for the tests).
    pub fn whole(&self) -> Tensor<2> {
        Tensor::cat(self.parts.iter().map(Param::val).collect(), 0)
    }

    /// Rows at `ids` `[b, s]`: `[b, s, d]` (`nn.Embedding`). In parts: each part's rows where an
    /// id falls in it, zero elsewhere, summed (every id falls in one part).
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        if let [one] = self.parts.as_slice() {
            return embedding(one.val(), ids);
        }
        let mut first = 0;
        let mut sum = None;
        for part in &self.parts {
            let part = part.val();
            let rows = part.dims()[0] as i64;
            let local = ids.clone().sub_scalar(first);
            let inside = local.clone().greater_equal_elem(0);
            let inside = inside.bool_and(local.clone().lower_elem(rows));
            let mine = embedding(part, local.clamp(0, rows - 1)) * inside.float().unsqueeze_dim(2);
            sum = Some(match sum {
                None => mine,
                Some(s) => s + mine,
            });
            first += rows;
        }
        sum.expect("a table has a part")
    }

    /// Rows at token ids `ids` (on the host): `[n, d]`.
    pub fn rows(&self, ids: &[u32]) -> Tensor<2> {
        let n = ids.len();
        let ids = ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &self.device());
        let rows = self.embed(ids);
        let [_, _, d] = rows.dims();
        rows.reshape([n, d])
    }

    /// `x · tableᵀ` for `x` `[n, d]`: `[n, vocab]` (the logits), the parts' products side by side.
    pub fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        let mut products: Vec<Tensor<2>> = self
            .parts
            .iter()
            .map(|part| frozen_matmul::matmul(x.clone(), part.val(), true))
            .collect();
        match products.len() {
            1 => products.pop().expect("one part"),
            _ => Tensor::cat(products, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};

    use super::Table;

    /// A table in three uneven parts against the same table whole, on the CPU: rows by id
    /// (repeated, out of order, at each part's edges), the embedding of `[b, s]` ids and the
    /// logits' product. The same values are picked and the same products made: equal, exactly.
    #[test]
    fn parts_give_what_the_whole_gives() {
        let device = crate::backend::host();
        let (vocab, d) = (11, 4);
        let matrix: Tensor<2> = Tensor::random([vocab, d], Distribution::Default, &device);
        let whole = Table {
            parts: vec![Param::from_tensor(matrix.clone())],
        };
        let cut = |from: usize, n: usize| Param::from_tensor(matrix.clone().narrow(0, from, n));
        let parts = Table {
            parts: vec![cut(0, 3), cut(3, 5), cut(8, 3)],
        };
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let ids = [10u32, 0, 3, 2, 7, 8, 3];
        assert_eq!(values(parts.rows(&ids)), values(whole.rows(&ids)));
        assert_eq!(values(parts.whole()), values(matrix));
        let grid = vec![0i64, 2, 3, 7, 8, 10];
        let grid = Tensor::<2, Int>::from_data(TensorData::new(grid, [2, 3]), &device);
        let flat = |t: Tensor<3>| values(t.reshape([6, d]));
        assert_eq!(flat(parts.embed(grid.clone())), flat(whole.embed(grid)));
        let x: Tensor<2> = Tensor::random([5, d], Distribution::Default, &device);
        assert_eq!(values(parts.logits(x.clone())), values(whole.logits(x)));
    }
}
