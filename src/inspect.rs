//! What a checkpoint will cost before its weights are fetched. `config.json`, the safetensors
//! header (the page reads it with Range requests: 8 bytes of length, then the header) and the
//! file's size give the parameter count, the stored dtype, the download and the memory a session
//! needs; a model that cannot fit the engine's 32-bit address space is refused here, by name.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{ModelConfig, parse_config};

/// wasm32's linear memory: 4 GiB, everything the engine holds included.
pub const WASM_MEMORY_LIMIT: u64 = 1 << 32;
/// The longest safetensors header read before the weights (the format's own bound is 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Tokens a batch's row is assumed to hold for the activation estimate when no task says (the
/// built-in tasks' rows are 5-20 tokens; a batch is as wide as its longest); else the task's
/// typical width (`Engine::typical_row_tokens`). The virtual tokens come on top.
pub const TYPICAL_ROW_TOKENS: usize = 16;
/// What an engine holds whatever the model: its tokenizer, tables and the allocator's slack
/// (`benches/memory.rs`: the bundled model's engine held 30 MiB after 5 steps, 23 MiB by the
/// other terms).
const ENGINE_BASE: u64 = 8 << 20;

/// The safetensors header: `{name: {dtype, shape, data_offsets}, "__metadata__": {...}}`.
#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<u64>,
}

/// What the header says: the dtype most weights are stored in, and how many tensors.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSummary {
    pub dtype: String,
    pub tensors: usize,
}

/// The header's length from a safetensors file's first 8 bytes (little-endian u64), checked
/// against the format's bound before anything that long is requested.
pub fn header_length(first: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = first
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::WeightsCorrupt {
            detail: format!(
                "the file is {} bytes long, too short for a header",
                first.len()
            ),
        })?;
    let n = u64::from_le_bytes(bytes);
    if n == 0 || n > MAX_HEADER_BYTES {
        return Err(Error::WeightsCorrupt {
            detail: format!(
                "its header length reads {n} bytes (at most {MAX_HEADER_BYTES}): this is not a safetensors file"
            ),
        });
    }
    Ok(n)
}

/// Reads a safetensors header (the JSON after the 8-byte length).
pub fn read_header(json: &[u8]) -> Result<HeaderSummary> {
    let corrupt = |detail: String| Error::WeightsCorrupt {
        detail: format!("its header {detail}"),
    };
    let entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| corrupt(format!("is not valid JSON ({e})")))?;
    let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
    let mut tensors = 0;
    for (name, value) in entries.into_iter().filter(|(k, _)| k != "__metadata__") {
        let entry: HeaderEntry = serde_json::from_value(value)
            .map_err(|e| corrupt(format!("describes `{name}` wrongly ({e})")))?;
        let elements = entry
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| corrupt(format!("gives `{name}` an impossible shape")))?;
        *by_dtype.entry(entry.dtype).or_default() += elements;
        tensors += 1;
    }
    let dtype = by_dtype
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(d, _)| d)
        .ok_or_else(|| corrupt("lists no tensors".into()))?;
    Ok(HeaderSummary { dtype, tensors })
}

/// The memory a session on the model needs, in bytes, by what holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryEstimate {
    /// The weights as the CPU engine keeps them: a large model's 2-byte matrices as stored (they
    /// are widened inside each product, `model::frozen_matmul`), f32 otherwise.
    pub weights: u64,
    /// The downloaded file while the engine reads it (held by the page, outside the engine).
    pub file: u64,
    /// The host copy of the token embedding (the map and the nearest tokens read it).
    pub embedding_copy: u64,
    /// One training step's activations at the batch size (kept for backward) and its logits.
    pub activations: u64,
    /// The prompt, its gradient and Adam's two moments.
    pub optimizer: u64,
    /// The tokenizer, the engine's tables and the allocator's slack: about the same for any model.
    pub base: u64,
    /// The engine's own memory (wasm's, which never shrinks and holds at most 4 GiB): the
    /// weights, the embedding copy, a step, the prompt's state and the base. `benches/memory.rs`
    /// measures it.
    pub engine: u64,
    /// The engines the page starts: the lab's and its CPU helpers (`Step::engines`).
    pub engines: u64,
    /// Each helper engine's memory: the weights, its share of a step and the base (no
    /// embedding copy: only the lab engine draws the prompt's views); 0 with one engine.
    pub helper: u64,
    /// The page's high-water mark: every engine's memory, or an engine's file beside its
    /// weights while they load (the file is freed once they are built), whichever is more.
    pub total: u64,
    /// The high-water mark while every engine loads at once (the page starts a large model's
    /// helpers beside the lab engine's load: `www/engine/lab-pool.js`): each one's file beside
    /// its weights and tables, and the lab's embedding copy.
    pub together: u64,
    /// Every engine's memory beside the downloaded file: the page holds a large model's file,
    /// whose helpers load beside the lab engine, until its copy for the next visit is stored
    /// once the engine is idle (`www/engine/cache-later.js`).
    pub with_file: u64,
}

impl MemoryEstimate {
    /// `weight_bytes`: 2 or 4, from [`stored_width`].
    fn new(c: &ModelConfig, file: u64, weight_bytes: u64, step: Step) -> Self {
        let engines = step.engines.max(1) as u64;
        let weights = c.num_params() * weight_bytes;
        let embedding_copy = c.embedding_bytes();
        let activations = step_activations(c, step, step.batch as u64);
        let optimizer = 4 * step.n_virtual as u64 * c.d_model as u64 * 4;
        let engine = weights + embedding_copy + activations + optimizer + ENGINE_BASE;
        // A helper computes its share of each batch (`pool`); the lab engine computes the whole
        // batch until a helper has joined.
        let share = (step.batch as u64).div_ceil(engines);
        let helper = match engines {
            1 => 0,
            _ => weights + step_activations(c, step, share) + ENGINE_BASE,
        };
        let all = engine + (engines - 1) * helper;
        // While an engine loads, the file (outside wasm's memory) sits beside its weights; a
        // helper loads beside the lab engine.
        let loading = weights + file + if engines > 1 { engine } else { 0 };
        Self {
            weights,
            file,
            embedding_copy,
            activations,
            optimizer,
            base: ENGINE_BASE,
            engine,
            engines,
            helper,
            total: all.max(loading),
            together: engines * (weights + file + ENGINE_BASE) + embedding_copy,
            with_file: all + file,
        }
    }
}

/// A training step's stored activations on `rows` rows: what backward keeps, and the logits.
fn step_activations(c: &ModelConfig, step: Step, rows: u64) -> u64 {
    let (d, layers) = (c.d_model as u64, c.n_layer as u64);
    let (n_virtual, row_tokens) = (step.n_virtual as u64, step.row_tokens as u64);
    // The prompt's positions are computed once for the whole batch (`forward_prefixed`).
    let tokens = rows * row_tokens + n_virtual;
    let ffn = match &c.arch {
        crate::model::Arch::Gpt2(g) => g.n_inner as u64,
        crate::model::Arch::Llama(l) => l.intermediate_size as u64,
    };
    // Per token and layer: about ten d-wide and three ffn-wide f32 tensors are kept for
    // backward; per row and layer, the attention weights (heads × keys × queries).
    let row = row_tokens + n_virtual;
    let per_layer = tokens * (10 * d + 3 * ffn) * 4 + rows * c.n_head as u64 * row * row * 4;
    // Logits at the scored positions (a few per row), with their gradient.
    let logits = rows * 4 * c.vocab_size as u64 * 4 * 2;
    layers * per_layer + logits
}

/// Bytes a weight takes in the CPU engine: 4 for a small model (`KEEP_HALF_FROM_PARAMS`); else
/// the header's dtype when it was read, or what the file's size per parameter says (a
/// safetensors file is its weights and a short header).
fn stored_width(header: Option<&HeaderSummary>, file: u64, params: u64) -> u64 {
    match header {
        _ if params < crate::model::KEEP_HALF_FROM_PARAMS => 4,
        Some(h) if matches!(h.dtype.as_str(), "BF16" | "F16") => 2,
        Some(_) => 4,
        None if file > 0 && file < 3 * params => 2,
        None => 4,
    }
}

/// A checkpoint's cost, read before its weights are fetched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSummary {
    /// `gpt2`, `llama` or `qwen2`.
    pub family: &'static str,
    pub params: u64,
    pub n_layer: usize,
    pub d_model: usize,
    pub vocab_size: usize,
    /// From the header, when it was read.
    pub header: Option<HeaderSummary>,
    /// `model.safetensors`'s size (0 when the server did not say).
    pub download_bytes: u64,
    pub memory: MemoryEstimate,
    /// The largest weight matrix in f32: what one GPU binding must hold (the vocabulary tables
    /// load in parts, `model::Table`).
    pub largest_matrix_bytes: u64,
    /// Why the engine cannot run it at all, in words (none when it can).
    pub refusal: Option<String>,
}

/// The training an estimate is for: a step's shape and the engines that share it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub batch: usize,
    pub n_virtual: usize,
    /// Tokens in a batch's row (padded), the virtual tokens not counted.
    pub row_tokens: usize,
    /// The lab engine and its helpers (the page's CPU pool), at least 1.
    pub engines: usize,
}

impl Step {
    /// A step on one engine, on rows of [`TYPICAL_ROW_TOKENS`] (for when no task says how long
    /// its rows are).
    pub fn typical(batch: usize, n_virtual: usize) -> Self {
        Self {
            batch,
            n_virtual,
            row_tokens: TYPICAL_ROW_TOKENS,
            engines: 1,
        }
    }
}

/// Reads `config.json` (and the header, when given) and estimates what a session on the model
/// needs for training steps of this shape.
pub fn inspect(
    config_json: &[u8],
    header_json: Option<&[u8]>,
    download_bytes: u64,
    step: Step,
) -> Result<CheckpointSummary> {
    let c = parse_config(config_json)?;
    let header = header_json.map(read_header).transpose()?;
    let width = stored_width(header.as_ref(), download_bytes, c.num_params());
    let estimate =
        |batch: usize| MemoryEstimate::new(&c, download_bytes, width, Step { batch, ..step });
    let batch = step.batch;
    let memory = estimate(batch);
    let refusal = (memory.engine >= WASM_MEMORY_LIMIT).then(|| {
        let need = format!(
            "at batch {batch} it needs about {:.1} GiB, more than the 4 GiB a WebAssembly page can address",
            memory.engine as f64 / (1u64 << 30) as f64
        );
        // The model may fit with a smaller step.
        let fits = (1..batch)
            .rev()
            .find(|&b| estimate(b).engine < WASM_MEMORY_LIMIT);
        match fits {
            Some(b) => format!("{need}: set the batch size to {b} or less and check again"),
            None => format!("{need}: choose a smaller model"),
        }
    });
    Ok(CheckpointSummary {
        family: c.family(),
        params: c.num_params(),
        n_layer: c.n_layer,
        d_model: c.d_model,
        vocab_size: c.vocab_size,
        header,
        download_bytes,
        memory,
        largest_matrix_bytes: c.largest_matrix_bytes(),
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M), with its header's two dtypes.
    const SMOLLM2: &str = r#"{"model_type":"llama","vocab_size":49152,"max_position_embeddings":8192,"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"rms_norm_eps":1e-5,"rope_theta":100000,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0}"#;

    #[test]
    fn smollm2_135m_costs_what_its_shapes_say() {
        let header = br#"{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"BF16","shape":[49152,576],"data_offsets":[0,56623104]},"model.norm.weight":{"dtype":"F32","shape":[576],"data_offsets":[56623104,56625408]}}"#;
        let s = inspect(
            SMOLLM2.as_bytes(),
            Some(header),
            269_060_552,
            Step::typical(16, 8),
        )
        .unwrap();
        // 134,515,008 parameters, as transformers counts SmolLM2-135M.
        assert_eq!(s.params, 134_515_008);
        let h = s.header.unwrap();
        assert_eq!((h.dtype.as_str(), h.tensors), ("BF16", 2));
        // The MLP's `[1536, 576]`, not the 49,152-row embedding (which loads in parts).
        assert_eq!(s.largest_matrix_bytes, 1536 * 576 * 4);
        // The BF16 file's weights stay 2 bytes each in the engine.
        assert_eq!(s.memory.weights, 134_515_008 * 2);
        assert!(s.refusal.is_none());
        let m = &s.memory;
        assert_eq!(
            m.engine,
            m.weights + m.embedding_copy + m.activations + m.optimizer + m.base
        );
        assert_eq!(m.total, m.engine.max(m.weights + m.file));
        // A helper holds the weights and its half of the step, not the embedding copy.
        let two = |engines| Step {
            engines,
            ..Step::typical(16, 8)
        };
        let pool = inspect(SMOLLM2.as_bytes(), Some(header), 269_060_552, two(2)).unwrap();
        let (p, half) = (&pool.memory, Step::typical(8, 8));
        let helper_step = inspect(SMOLLM2.as_bytes(), Some(header), 269_060_552, half).unwrap();
        assert_eq!(p.engine, m.engine);
        assert_eq!(
            p.helper,
            helper_step.memory.engine - m.embedding_copy - m.optimizer
        );
        assert_eq!(
            p.total,
            (m.engine + p.helper).max(m.engine + m.weights + m.file)
        );
        // Both loading at once: two files beside two copies of the weights.
        assert_eq!(
            p.together,
            2 * (m.weights + m.file + m.base) + m.embedding_copy
        );
        // Training on both while the page holds the file for the cache.
        assert_eq!(p.with_file, m.engine + p.helper + m.file);
    }

    #[test]
    fn a_model_beyond_wasm_memory_is_refused_and_bad_headers_are_named() {
        // Qwen2.5-7B's shape: 7.6 B parameters, 30 GB in f32.
        let big = r#"{"model_type":"qwen2","vocab_size":152064,"max_position_embeddings":32768,"hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,"num_key_value_heads":4,"rope_theta":1000000,"tie_word_embeddings":false}"#;
        let s = inspect(big.as_bytes(), None, 15_000_000_000, Step::typical(16, 8)).unwrap();
        assert!(s.refusal.unwrap().ends_with("choose a smaller model"));
        // Qwen2.5-0.5B (vocabulary 151,936, a BF16 file): the model fits, a step at batch 128 does not.
        let qwen = r#"{"model_type":"qwen2","vocab_size":151936,"max_position_embeddings":32768,"hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"rope_theta":1000000,"tie_word_embeddings":true}"#;
        let s = inspect(qwen.as_bytes(), None, 988_097_824, Step::typical(128, 8)).unwrap();
        let refusal = s.refusal.unwrap();
        assert!(refusal.contains("set the batch size to"), "{refusal}");
        assert!(
            inspect(qwen.as_bytes(), None, 988_097_824, Step::typical(4, 8))
                .unwrap()
                .refusal
                .is_none()
        );
        assert!(matches!(
            header_length(&[1, 2]),
            Err(Error::WeightsCorrupt { .. })
        ));
        assert!(matches!(
            header_length(&u64::MAX.to_le_bytes()),
            Err(Error::WeightsCorrupt { .. })
        ));
        assert_eq!(header_length(&100u64.to_le_bytes()).unwrap(), 100);
        for bad in [&b"[1]"[..], b"{}", br#"{"a":{"dtype":"F32"}}"#, b"not json"] {
            assert!(
                matches!(read_header(bad), Err(Error::WeightsCorrupt { .. })),
                "{bad:?}"
            );
        }
    }
}
