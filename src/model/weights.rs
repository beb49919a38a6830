//! Reading `model.safetensors`: every key, shape and dtype checked against the config before
//! anything is built, F32/F16/BF16 decoded to f32, non-finite values refused, and anything left
//! over named. The file is read by byte range ([`WeightBytes`]), one tensor at a time.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData, bf16, f16};
use safetensors::tensor::{Metadata, TensorView};
use safetensors::{Dtype, SafeTensorError};

use super::{Arch, ModelConfig, Table};
use crate::error::{Error, Result};

/// How many values are NaN or infinite.
pub fn non_finite(values: &[f32]) -> usize {
    values.iter().filter(|v| !v.is_finite()).count()
}

/// Decodes a checked tensor to f32, whatever its stored float type.
pub fn to_f32(key: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    let out: Vec<f32> = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| crate::backend::widen_bf16(bf16::from_le_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(Error::WeightDtype {
                key: key.into(),
                found: format!("{other:?}"),
            });
        }
    };
    Ok(out)
}

/// A checkpoint's bytes, read by range: the whole file in memory, or (in the page) a file kept
/// outside the engine's heap and copied in one tensor at a time, so the heap, which never
/// shrinks, does not hold the file beside the weights built from it (a 135M model's 270 MB).
pub trait WeightBytes {
    /// The file's size in bytes.
    fn size(&self) -> usize;
    /// Bytes `range`, within `size`.
    fn read(&self, range: Range<usize>) -> Cow<'_, [u8]>;
}

/// The whole file in memory.
impl<T: AsRef<[u8]>> WeightBytes for T {
    fn size(&self) -> usize {
        self.as_ref().len()
    }

    fn read(&self, range: Range<usize>) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.as_ref()[range])
    }
}

/// The header of a safetensors file: its tensors and where their data starts, checked as
/// `SafeTensors::deserialize` checks it (the data contiguous and filling the rest of the file).
fn read_metadata(bytes: &dyn WeightBytes) -> Result<(Metadata, usize)> {
    let corrupt = |e: SafeTensorError| Error::WeightsCorrupt {
        detail: e.to_string(),
    };
    let len = bytes.size();
    let n = crate::inspect::header_length(&bytes.read(0..len.min(8)))?;
    let start = 8 + n as usize;
    if start > len {
        return Err(corrupt(SafeTensorError::InvalidHeaderLength));
    }
    let metadata: Metadata = serde_json::from_slice(&bytes.read(8..start))
        .map_err(|e| corrupt(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    let mut end = 0;
    for key in metadata.offset_keys() {
        let (s, e) = metadata.info(&key).expect("a listed key").data_offsets;
        if s != end || e < s {
            return Err(corrupt(SafeTensorError::InvalidOffset(key)));
        }
        end = e;
    }
    if start + end != len {
        return Err(corrupt(SafeTensorError::MetadataIncompleteBuffer));
    }
    Ok((metadata, start))
}

/// Reads tensors by name (under the file's key prefix), remembering which it read.
pub(crate) struct WeightReader<'a> {
    bytes: &'a dyn WeightBytes,
    metadata: Metadata,
    /// Where the tensors' data begins (after the header).
    data_start: usize,
    /// `transformer.` (GPT-2 as `save_pretrained` writes it) or `model.` (Llama family), or none.
    prefix: &'static str,
    seen: BTreeSet<String>,
    device: Device,
}

impl<'a> WeightReader<'a> {
    /// Opens `model.safetensors`. Keys may carry the family's prefix (`transformer.`, `model.`)
    /// as `save_pretrained` writes them, or not (the original GPT-2 files).
    pub(crate) fn open(
        config: &ModelConfig,
        bytes: &'a dyn WeightBytes,
        device: &Device,
    ) -> Result<Self> {
        let (metadata, data_start) = read_metadata(bytes)?;
        let wanted = match config.arch {
            Arch::Gpt2(_) => "transformer.",
            Arch::Llama(_) => "model.",
        };
        let prefix = if metadata.offset_keys().iter().any(|n| n.starts_with(wanted)) {
            wanted
        } else {
            ""
        };
        Ok(WeightReader {
            bytes,
            metadata,
            data_start,
            prefix,
            seen: BTreeSet::new(),
            device: device.clone(),
        })
    }

    /// The tensor `name` (under the prefix), of `shape` (`why`: where the shape comes from), in
    /// f32: norms, biases, position embeddings.
    pub(crate) fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        why: &str,
    ) -> Result<Param<Tensor<D>>> {
        self.tensor_at(self.key(name), shape, why)
    }

    /// The tensor at the full `key` (outside the prefix: a Llama file's `lm_head.weight`).
    pub(crate) fn tensor_at<const D: usize>(
        &mut self,
        key: String,
        shape: [usize; D],
        why: &str,
    ) -> Result<Param<Tensor<D>>> {
        let values = self.values(key, shape, why, false)?;
        Ok(self.param(values, shape))
    }

    /// A weight matrix only ever multiplied (`model::frozen_matmul`): on the CPU backend kept in
    /// the file's precision when that is 2 bytes (half the memory of f32, the same products).
    pub(crate) fn matrix(
        &mut self,
        key: String,
        shape: [usize; 2],
        why: &str,
    ) -> Result<Param<Tensor<2>>> {
        let values = self.values(key, shape, why, keeps_half(&self.device))?;
        Ok(self.param(values, shape))
    }

    /// A vocabulary table `[vocab, d]` (the token embedding, a separate output head): a
    /// [`Self::matrix`] in row parts no larger than one binding of the device holds
    /// ([`crate::backend::binding_limit`]; one part where it fits, and on the CPU).
    pub(crate) fn table(&mut self, key: String, shape: [usize; 2], why: &str) -> Result<Table> {
        let values = self.values(key, shape, why, keeps_half(&self.device))?;
        let [rows, d] = shape;
        let row_bytes = (d * values.width()) as u64;
        // As few parts as the limit allows, of even size.
        let parts = match crate::backend::binding_limit(&self.device) {
            Some(limit) if row_bytes * rows as u64 > limit => {
                rows.div_ceil((limit / row_bytes).max(1) as usize)
            }
            _ => 1,
        };
        if parts == 1 {
            // Whole, not copied: a copy would raise the wasm heap's high-water mark for good.
            return Ok(Table {
                parts: vec![self.param(values, shape)],
            });
        }
        let per = rows.div_ceil(parts);
        let parts = (0..rows)
            .step_by(per)
            .map(|first| {
                let n = per.min(rows - first);
                self.param(values.slice(first * d, n * d), [n, d])
            })
            .collect();
        Ok(Table { parts })
    }

    /// `nn.Linear`'s weight, stored `[out, in]`, as `[in, out]`: the layout burn's `linear` takes.
    pub(crate) fn linear_weight(
        &mut self,
        key: String,
        d_in: usize,
        d_out: usize,
        why: &str,
    ) -> Result<Param<Tensor<2>>> {
        let half = keeps_half(&self.device);
        let stored = self.values(key, [d_out, d_in], why, half)?;
        Ok(self.param(stored.transposed(d_out, d_in), [d_in, d_out]))
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn param<const D: usize>(&self, values: Values, shape: [usize; D]) -> Param<Tensor<D>> {
        let data = values.into_data(shape);
        let dtype = data.dtype();
        Param::from_tensor(Tensor::from_data(data, (&self.device, dtype)))
    }

    fn values<const D: usize>(
        &mut self,
        key: String,
        shape: [usize; D],
        why: &str,
        keep_half: bool,
    ) -> Result<Values> {
        let info = self
            .metadata
            .info(&key)
            .ok_or_else(|| Error::WeightMissing {
                key: key.clone(),
                expected: format!("shape {shape:?}: {why}"),
            })?;
        if info.shape != shape {
            return Err(Error::WeightShape {
                key,
                expected: shape.to_vec(),
                found: info.shape.clone(),
                why: why.into(),
            });
        }
        let (start, end) = info.data_offsets;
        let data = self
            .bytes
            .read(self.data_start + start..self.data_start + end);
        let view = TensorView::new(info.dtype, info.shape.clone(), &data).map_err(|e| {
            Error::WeightsCorrupt {
                detail: e.to_string(),
            }
        })?;
        let values = Values::decode(&key, &view, keep_half)?;
        let bad = values.non_finite();
        if bad > 0 {
            return Err(Error::WeightNotFinite {
                key,
                count: bad,
                total: values.len(),
            });
        }
        self.seen.insert(key);
        Ok(values)
    }

    /// The last layer `config.json` promises must be in the file's header before any layer is
    /// built: a huge layer count is a named error, not an allocation that aborts.
    pub(crate) fn require_layers(&self, config: &ModelConfig) -> Result<()> {
        let (last, field) = match config.arch {
            Arch::Gpt2(_) => (format!("h.{}.ln_1.weight", config.n_layer - 1), "n_layer"),
            Arch::Llama(_) => (
                format!("layers.{}.input_layernorm.weight", config.n_layer - 1),
                "num_hidden_layers",
            ),
        };
        let last = self.key(&last);
        if self.metadata.info(&last).is_none() {
            return Err(Error::WeightMissing {
                key: last,
                expected: format!("config.json has {field} = {}", config.n_layer),
            });
        }
        Ok(())
    }

    /// A tied head may still be stored; it must at least have the embedding's shape.
    pub(crate) fn tied_head(&mut self, config: &ModelConfig) -> Result<()> {
        let key = "lm_head.weight";
        let Some(info) = self.metadata.info(key) else {
            return Ok(());
        };
        let expected = vec![config.vocab_size, config.d_model];
        if info.shape != expected {
            return Err(Error::WeightShape {
                key: key.into(),
                expected,
                found: info.shape.clone(),
                why: "[vocab_size, d_model], tied to the token embedding".into(),
            });
        }
        self.seen.insert(key.into());
        Ok(())
    }

    /// Every tensor of the file was read (or is a known buffer): anything else means the config
    /// describes another model.
    pub(crate) fn no_others(&self, config: &ModelConfig) -> Result<()> {
        let keys = self.metadata.offset_keys();
        let unexpected: BTreeSet<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|n| !self.seen.contains(*n) && !is_buffer(n))
            .collect();
        if unexpected.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = unexpected.iter().take(5).copied().collect();
        let more = match unexpected.len() {
            n if n > 5 => format!(" and {} more", n - 5),
            _ => String::new(),
        };
        Err(Error::WeightUnexpected {
            keys: format!("{}{more}", shown.join(", ")),
            config: format!(
                "{}, {} layers, d_model {}",
                config.family(),
                config.n_layer,
                config.d_model
            ),
        })
    }
}

/// Whether the backend on `device` keeps 2-byte weight matrices as they are stored: the CPU
/// backend does (its products widen them block by block); a GPU gets f32. A small model is
/// widened after loading all the same (`Model::widened_if_small`).
fn keeps_half(device: &Device) -> bool {
    *device == crate::backend::cpu() || *device == crate::backend::host()
}

/// A tensor's values as the model keeps them: f32, or the file's own 2-byte float type.
enum Values {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl Values {
    /// `view`'s values: kept as stored when `keep_half` and they are bf16 or f16, else in f32.
    fn decode(key: &str, view: &TensorView<'_>, keep_half: bool) -> Result<Self> {
        let pairs = || view.data().chunks_exact(2).map(|c| [c[0], c[1]]);
        Ok(match (view.dtype(), keep_half) {
            (Dtype::BF16, true) => Values::Bf16(pairs().map(bf16::from_le_bytes).collect()),
            (Dtype::F16, true) => Values::F16(pairs().map(f16::from_le_bytes).collect()),
            _ => Values::F32(to_f32(key, view)?),
        })
    }

    /// Bytes a value.
    fn width(&self) -> usize {
        match self {
            Values::F32(_) => 4,
            Values::Bf16(_) | Values::F16(_) => 2,
        }
    }

    /// `n` values from `start`, copied.
    fn slice(&self, start: usize, n: usize) -> Self {
        let range = start..start + n;
        match self {
            Values::F32(v) => Values::F32(v[range].to_vec()),
            Values::Bf16(v) => Values::Bf16(v[range].to_vec()),
            Values::F16(v) => Values::F16(v[range].to_vec()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::Bf16(v) => v.len(),
            Values::F16(v) => v.len(),
        }
    }

    fn non_finite(&self) -> usize {
        match self {
            Values::F32(v) => non_finite(v),
            Values::Bf16(v) => v.iter().filter(|x| !x.is_finite()).count(),
            Values::F16(v) => v.iter().filter(|x| !x.is_finite()).count(),
        }
    }

    /// The `[rows, cols]` matrix as `[cols, rows]`.
    fn transposed(self, rows: usize, cols: usize) -> Self {
        match self {
            Values::F32(v) => Values::F32(transpose(&v, rows, cols)),
            Values::Bf16(v) => Values::Bf16(transpose(&v, rows, cols)),
            Values::F16(v) => Values::F16(transpose(&v, rows, cols)),
        }
    }

    fn into_data<const D: usize>(self, shape: [usize; D]) -> TensorData {
        match self {
            Values::F32(v) => TensorData::new(v, shape),
            Values::Bf16(v) => TensorData::new(v, shape),
            Values::F16(v) => TensorData::new(v, shape),
        }
    }
}

fn transpose<T: Copy + Default>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::default(); values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, x) in row.iter().enumerate() {
            t[c * rows + r] = *x;
        }
    }
    t
}

/// Constants some checkpoints carry beside the weights, skipped: old GPT-2 files' causal-mask
/// buffers (`h.{i}.attn.bias`, `attn.masked_bias`), and RoPE's `rotary_emb.inv_freq`.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}
