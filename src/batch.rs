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
    /// The rows in at most `parts` batches, shortest rows first, so that each part is padded
    /// only to its own longest row, cut where the parts' work is most even (`balanced_cuts`):
    /// halves by count gave the part of the longest rows 0.1-0.5 s more to do a step than the
    /// other (a real 135M model in the page's pool of two, rows 4-5 against 5-7 tokens wide).
    /// Every target lands in exactly one part.
    pub fn split(&self, parts: usize) -> Vec<ScoredBatch> {
        let parts = parts.clamp(1, self.seqs.len().max(1));
        if parts == 1 {
            return vec![self.clone()];
        }
        let mut seqs = self.seqs.clone();
        seqs.sort_by_key(|s| s.ids.len());
        let lengths: Vec<usize> = seqs.iter().map(|s| s.ids.len()).collect();
        balanced_cuts(&lengths, parts)
            .windows(2)
            .map(|w| {
                Self::new(&seqs[w[0]..w[1]], self.n_virtual, self.pad_id)
                    .expect("rows of a valid batch")
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

/// Where rows of `lengths` (ascending, at least `parts` of them) split into `parts` non-empty
/// runs whose largest work is least, a run's work being its rows times its longest row (what
/// its padded forward and backward passes compute): the runs' bounds, `0` first and
/// `lengths.len()` last. Exact, by dynamic programming over the cut points (a batch has tens of
/// rows).
fn balanced_cuts(lengths: &[usize], parts: usize) -> Vec<usize> {
    let n = lengths.len();
    let work = |from: usize, to: usize| (to - from) * lengths[to - 1];
    // least[p][i]: the least largest work of rows 0..i in p runs; start[p][i]: its last run's start.
    let mut least = vec![vec![usize::MAX; n + 1]; parts + 1];
    let mut start = vec![vec![0; n + 1]; parts + 1];
    least[0][0] = 0;
    for p in 1..=parts {
        for i in p..=n {
            for j in p - 1..i {
                if least[p - 1][j] == usize::MAX {
                    continue;
                }
                let w = least[p - 1][j].max(work(j, i));
                if w < least[p][i] {
                    (least[p][i], start[p][i]) = (w, j);
                }
            }
        }
    }
    let mut cuts = vec![n];
    for p in (1..=parts).rev() {
        cuts.push(start[p][cuts[cuts.len() - 1]]);
    }
    cuts.reverse();
    cuts
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
    fn parts_are_cut_where_their_padded_work_is_most_even() {
        // Ten rows of 3 tokens and six of 6: halves by count would pad two short rows to 6
        // (work 24 and 48); ten and six rows make 30 and 36.
        let lengths = [[3; 10].as_slice(), &[6; 6]].concat();
        assert_eq!(balanced_cuts(&lengths, 2), [0, 10, 16]);
        // Equal rows: equal counts. As many parts as rows: one row each.
        assert_eq!(balanced_cuts(&[5; 16], 2), [0, 8, 16]);
        assert_eq!(balanced_cuts(&[1, 2, 3], 3), [0, 1, 2, 3]);
        let seqs: Vec<Sequence> = lengths
            .iter()
            .rev()
            .map(|&len| Sequence {
                ids: (1..=len as u32).collect(),
                n_context: 1,
            })
            .collect();
        let batch = ScoredBatch::new(&seqs, 2, 0).unwrap();
        let parts = batch.split(2);
        let rows: Vec<usize> = parts.iter().map(|p| p.padded.rows()).collect();
        assert_eq!(rows, [10, 6]);
        let targets: usize = parts.iter().map(|p| p.targets.len()).sum();
        assert_eq!(targets, batch.targets.len());
    }

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
