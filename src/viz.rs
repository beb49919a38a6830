//! What the page draws about the embedding space: a 2-D PCA map of the vocabulary (computed once
//! per model), the soft prompt's vectors placed on it, and each virtual token's nearest vocabulary
//! tokens by cosine similarity (Lester et al. 2021, §7). Host-side arithmetic on a copy of `wte`
//! (the CPU backend for the PCA's one large product): the sizes are small (vocab × d_model) and
//! it keeps the GPU free for training.

use burn::tensor::{Tensor, TensorData};

use crate::backend::read_f32_sliced;
use crate::error::Result;
use crate::loader::LoadedModel;

/// Rows used to fit the PCA: enough for a stable plane, bounded so a 50k-token vocabulary does not
/// stall the page (BPE vocabularies list frequent tokens first).
const PCA_ROWS: usize = 8192;
/// Vocabulary points sent for drawing.
pub const MAP_POINTS: usize = 4096;
/// Power-iteration rounds per component at most: the top eigenvalues of embedding covariances
/// are well separated, and 200 rounds converge to float precision in the tests.
const POWER_ROUNDS: usize = 200;
/// A direction that moves less than this (largest component) in a round has converged: far
/// below what an f32 map shows. (A 135M model's two directions converge in 11 and 71 rounds:
/// 26 ms natively against 126 ms for 200 each.)
const CONVERGED: f64 = 1e-10;

pub struct VocabMap {
    d: usize,
    /// `wte` rows, L2-normalised, `[vocab, d]` row-major: cosine similarity is a dot product.
    unit_rows: Vec<f32>,
    mean: Vec<f32>,
    /// Two orthonormal principal directions, `[2, d]`.
    basis: [Vec<f32>; 2],
    /// Share of the variance (of the fitted rows) along each direction.
    pub explained: [f32; 2],
    /// The first `MAP_POINTS` tokens projected, `[n, 2]` flattened, with their text.
    pub points: Vec<f32>,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub id: u32,
    pub text: String,
    pub cosine: f32,
}

impl VocabMap {
    pub async fn new(lm: &LoadedModel) -> Result<Self> {
        let d = lm.model.config.d_model;
        let mut wte = Vec::with_capacity(lm.model.config.vocab_size * d);
        for part in &lm.model.embedding().parts {
            read_f32_sliced(part.val(), |rows| wte.extend(rows)).await?;
        }
        Ok(Self::from_rows(wte, d, |id| lm.tokenizer.token_text(id)))
    }

    /// From `wte` as `[vocab, d]` row-major, with a function giving each token's text. Its rows
    /// become the unit rows in place: a 135M model's embedding is 108 MiB, held once.
    pub fn from_rows(mut wte: Vec<f32>, d: usize, token_text: impl Fn(u32) -> String) -> Self {
        let vocab = wte.len() / d;
        let fit = &wte[..vocab.min(PCA_ROWS) * d];
        let (mean, basis, explained) = pca2(fit, d);
        let shown = vocab.min(MAP_POINTS);
        let mut map = Self {
            d,
            unit_rows: Vec::new(),
            mean,
            basis,
            explained,
            points: Vec::new(),
            labels: (0..shown as u32).map(&token_text).collect(),
        };
        map.points = map.project(&wte[..shown * d]);
        for row in wte.chunks_mut(d) {
            let n = norm(row).max(1e-12);
            row.iter_mut().for_each(|x| *x /= n);
        }
        map.unit_rows = wte;
        map
    }

    /// Rows `[n, d]` onto the map: `[n, 2]` flattened.
    pub fn project(&self, rows: &[f32]) -> Vec<f32> {
        rows.chunks(self.d)
            .flat_map(|r| {
                self.basis.iter().map(move |b| {
                    r.iter()
                        .zip(&self.mean)
                        .zip(b)
                        .map(|((x, m), v)| (x - m) * v)
                        .sum::<f32>()
                })
            })
            .collect()
    }

    /// For each row of `rows` (`[n, d]`), the `k` vocabulary tokens of highest cosine similarity.
    pub fn nearest(
        &self,
        rows: &[f32],
        k: usize,
        token_text: impl Fn(u32) -> String,
    ) -> Vec<Vec<Neighbour>> {
        rows.chunks(self.d)
            .map(|r| {
                let n = norm(r).max(1e-12);
                let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
                for (id, u) in self.unit_rows.chunks(self.d).enumerate() {
                    let cos = r.iter().zip(u).map(|(a, b)| a * b).sum::<f32>() / n;
                    if best.len() < k || cos > best[best.len() - 1].0 {
                        let at = best.partition_point(|(c, _)| *c >= cos);
                        best.insert(at, (cos, id as u32));
                        best.truncate(k);
                    }
                }
                best.into_iter()
                    .map(|(cosine, id)| Neighbour {
                        id,
                        text: token_text(id),
                        cosine,
                    })
                    .collect()
            })
            .collect()
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Mean, top-2 principal directions and their explained-variance shares of `rows` (`[n, d]`):
/// power iteration with deflation on the `d × d` covariance (d is at most a few thousand).
fn pca2(rows: &[f32], d: usize) -> (Vec<f32>, [Vec<f32>; 2], [f32; 2]) {
    let (mean, mut cov) = covariance(rows, d);
    let total: f64 = (0..d).map(|i| cov[i * d + i]).sum::<f64>().max(1e-30);
    let mut basis: [Vec<f32>; 2] = [vec![0.0; d], vec![0.0; d]];
    let mut explained = [0f32; 2];
    for (c, out) in basis.iter_mut().enumerate() {
        let (v, lambda) = top_direction(&cov, d);
        explained[c] = (lambda / total) as f32;
        *out = v.iter().map(|x| *x as f32).collect();
        // Deflate: remove this component before finding the next.
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] -= lambda * v[i] * v[j];
            }
        }
    }
    (mean.iter().map(|m| *m as f32).collect(), basis, explained)
}

/// The mean of `rows` (`[n, d]`) and their `d × d` covariance, row-major.
fn covariance(rows: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (rows.len() / d).max(1);
    let mut mean = vec![0f64; d];
    for r in rows.chunks(d) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += *x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // The covariance as one matrix product on the CPU backend's SIMD matmul (f32 sums: the map
    // needs no more): the scalar f64 loop it replaces took ~150 ms of the page's model load.
    let centred: Vec<f32> = rows
        .chunks_exact(d)
        .flat_map(|r| r.iter().zip(&mean).map(|(x, m)| (*x as f64 - m) as f32))
        .collect();
    let x = Tensor::<2>::from_data(
        TensorData::new(centred, [rows.len() / d, d]),
        &crate::backend::host(),
    );
    let cov: Vec<f64> = x
        .clone()
        .transpose()
        .matmul(x) // [d, n] x [n, d] -> [d, d]
        .div_scalar(n as f64)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("an f32 tensor")
        .into_iter()
        .map(f64::from)
        .collect();
    (mean, cov)
}

/// The covariance's leading eigenvector (unit length, its largest component positive) and
/// eigenvalue, by power iteration.
fn top_direction(cov: &[f64], d: usize) -> (Vec<f64>, f64) {
    // A fixed start (not random) keeps the map the same on every load; all-ones plus a ramp
    // is not orthogonal to any direction in practice.
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + i as f64 / d as f64).collect();
    let mut lambda = 0.0;
    for _ in 0..POWER_ROUNDS {
        let mut w: Vec<f64> = (0..d)
            .map(|i| {
                cov[i * d..(i + 1) * d]
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        let len = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if len < 1e-30 {
            break;
        }
        w.iter_mut().for_each(|x| *x /= len);
        lambda = len;
        let moved = w
            .iter()
            .zip(&v)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        v = w;
        if moved < CONVERGED {
            break;
        }
    }
    // Sign convention: the largest component positive, so the map does not flip between loads.
    let big = v
        .iter()
        .copied()
        .fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
    if big < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    (v, lambda)
}
