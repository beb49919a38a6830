//! Token-level batches: examples become id sequences with a context part and a target part,
//! padded on the right, with the flat positions where the model's next-token prediction is scored.

use crate::error::{Error, Result};
use crate::tasks::Example;
use crate::text::TextTokenizer;

/// One training or scoring row: `ids[..n_context]` is read, `ids[n_context..]` is predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub n_context: usize,
}

/// The end-of-answer marker the model is trained to emit, so generation knows where to stop.
pub const ANSWER_END: &str = "\n";

impl Sequence {
    /// `prefix` (a text prompt, may be empty) + `input`, then `output` + newline as the target,
    /// joined as the tokenizer's policy says (`TextTokenizer::encode_pair`).
    pub fn for_example(tok: &TextTokenizer, prefix: &str, ex: &Example) -> Result<Self> {
        let (ids, n_context) = tok.encode_pair(
            &format!("{prefix}{}", ex.input),
            &format!("{}{ANSWER_END}", ex.output),
        )?;
        Ok(Self { ids, n_context })
    }

    /// Context only (for generation).
    pub fn context(tok: &TextTokenizer, prefix: &str, input: &str) -> Result<Self> {
        let ids = tok.encode_start(&format!("{prefix}{input}"))?;
        Ok(Self {
            n_context: ids.len(),
            ids,
        })
    }
}

/// Right-padded ids `[rows, width]` with the real length of each row.
#[derive(Debug, Clone)]
pub struct Padded {
    pub ids: Vec<u32>,
    pub lengths: Vec<usize>,
    pub width: usize,
}

impl Padded {
    pub fn new(rows: &[&[u32]], pad_id: u32) -> Self {
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad_id, width - r.len()));
        }
        Self {
            ids,
            lengths: rows.iter().map(|r| r.len()).collect(),
            width,
        }
    }

    pub fn rows(&self) -> usize {
        self.lengths.len()
    }
}

/// A padded batch plus the scored positions: hidden state `positions[k]` (flat index into
/// `[rows, n_virtual + width]`) predicts token `targets[k]`; `row_of[k]` is its row.
#[derive(Debug, Clone)]
pub struct ScoredBatch {
    pub padded: Padded,
    pub positions: Vec<usize>,
    pub targets: Vec<u32>,
    pub row_of: Vec<usize>,
    /// What it was made of, so that it can be split.
    seqs: Vec<Sequence>,
    n_virtual: usize,
    pad_id: u32,
}

impl ScoredBatch {
    /// The rows in at most `parts` batches of near-equal size, shortest rows first, so that each
    /// part is padded only to its own longest row. Every target lands in exactly one part.
    pub fn split(&self, parts: usize) -> Vec<ScoredBatch> {
        let parts = parts.clamp(1, self.seqs.len().max(1));
        if parts == 1 {
            return vec![self.clone()];
        }
        let mut seqs = self.seqs.clone();
        seqs.sort_by_key(|s| s.ids.len());
        let per = seqs.len().div_ceil(parts);
        seqs.chunks(per)
            .map(|chunk| {
                Self::new(chunk, self.n_virtual, self.pad_id).expect("rows of a valid batch")
            })
            .collect()
    }

    /// The rows it was made of.
    pub fn sequences(&self) -> &[Sequence] {
        &self.seqs
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn new(seqs: &[Sequence], n_virtual: usize, pad_id: u32) -> Result<Self> {
        let rows: Vec<&[u32]> = seqs.iter().map(|s| s.ids.as_slice()).collect();
        let padded = Padded::new(&rows, pad_id);
        let stride = n_virtual + padded.width;
        let (mut positions, mut targets, mut row_of) = (Vec::new(), Vec::new(), Vec::new());
        for (r, s) in seqs.iter().enumerate() {
            if s.n_context + n_virtual == 0 {
                return Err(Error::TaskInvalid { detail: "an example has an empty input and there is no prompt to predict its first token from".into() });
            }
            for t in s.n_context..s.ids.len() {
                // The state before token t (prompt included) predicts it.
                positions.push(r * stride + n_virtual + t - 1);
                targets.push(s.ids[t]);
                row_of.push(r);
            }
        }
        Ok(Self {
            padded,
            positions,
            targets,
            row_of,
            seqs: seqs.to_vec(),
            n_virtual,
            pad_id,
        })
    }
}

/// The width (in tokens) a training batch of `batch` rows from `examples` is typically padded
/// to: a batch is as wide as its longest row, and the longest of `batch` draws is about the
/// length only one row in `batch + 1` exceeds. `None` when no example tokenizes.
pub fn typical_width(tok: &TextTokenizer, examples: &[Example], batch: usize) -> Option<usize> {
    let mut lengths: Vec<usize> = examples
        .iter()
        .filter_map(|ex| Some(Sequence::for_example(tok, "", ex).ok()?.ids.len()))
        .collect();
    lengths.sort_unstable();
    let at = lengths.len() * batch / (batch + 1);
    lengths.get(at.min(lengths.len().checked_sub(1)?)).copied()
}

/// Draws training batches: a seeded shuffle of the examples, walked in order, reshuffled each
/// epoch. The same seed gives the same batches on every platform.
pub struct Sampler {
    seqs: Vec<Sequence>,
    order: Vec<usize>,
    next: usize,
    rng: rand::rngs::StdRng,
}

impl Sampler {
    pub fn new(seqs: Vec<Sequence>, seed: u64) -> Result<Self> {
        if seqs.is_empty() {
            return Err(Error::TaskInvalid {
                detail: "no training examples".into(),
            });
        }
        let order = (0..seqs.len()).collect();
        let mut s = Self {
            seqs,
            order,
            next: 0,
            rng: rand::SeedableRng::seed_from_u64(seed),
        };
        s.shuffle();
        Ok(s)
    }

    /// A sampler over `examples` as training rows (no text prefix: the soft prompt is the prompt).
    pub fn for_examples(tok: &TextTokenizer, examples: &[Example], seed: u64) -> Result<Self> {
        let seqs = examples
            .iter()
            .map(|ex| Sequence::for_example(tok, "", ex))
            .collect::<Result<Vec<_>>>()?;
        Self::new(seqs, seed)
    }

    fn shuffle(&mut self) {
        use rand::seq::SliceRandom;
        self.order.shuffle(&mut self.rng);
        self.next = 0;
    }

    /// The next `size` examples (fewer only when there are fewer examples in all).
    pub fn next_batch(
        &mut self,
        size: usize,
        n_virtual: usize,
        pad_id: u32,
    ) -> Result<ScoredBatch> {
        let size = size.clamp(1, self.seqs.len());
        let mut picked: Vec<usize> = Vec::with_capacity(size);
        while picked.len() < size {
            if self.next == self.order.len() {
                self.shuffle();
                // Examples already in this batch wait for later in the new epoch (a stable sort
                // keeps the rest in shuffled order), so no batch holds one example twice.
                self.order.sort_by_key(|i| picked.contains(i));
            }
            picked.push(self.order[self.next]);
            self.next += 1;
        }
        let rows: Vec<Sequence> = picked.iter().map(|&i| self.seqs[i].clone()).collect();
        ScoredBatch::new(&rows, n_virtual, pad_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_never_holds_one_example_twice() {
        // 7 examples in batches of 3: every third batch straddles an epoch boundary.
        let seqs: Vec<Sequence> = (0..7)
            .map(|i| Sequence {
                ids: vec![i, 100],
                n_context: 1,
            })
            .collect();
        for seed in 0..20 {
            let mut sampler = Sampler::new(seqs.clone(), seed).unwrap();
            let mut seen = vec![0usize; 7];
            for _ in 0..70 {
                let batch = sampler.next_batch(3, 0, 0).unwrap();
                let mut firsts: Vec<u32> = batch.padded.ids.chunks(2).map(|r| r[0]).collect();
                firsts.iter().for_each(|&f| seen[f as usize] += 1);
                firsts.sort_unstable();
                firsts.dedup();
                assert_eq!(firsts.len(), 3, "seed {seed}: a repeated example");
            }
            // Every example is still drawn about equally often (210 draws over 7 examples).
            assert!(seen.iter().all(|&n| (27..=33).contains(&n)), "{seen:?}");
        }
    }
}
