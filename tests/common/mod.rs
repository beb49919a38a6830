//! Fixture access for the integration tests (fixtures made by tests/reference/make_fixtures.py).
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;

use burn::tensor::Tensor;
use safetensors::SafeTensors;
use serde_json::Value;
use soft_prompt_lab::adapter::{self, AdapterFiles};
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::{Padded, ScoredBatch, Sequence};
use soft_prompt_lab::loader::{LoadedModel, ModelFiles};
use soft_prompt_lab::soft_prompt::{SoftPrompt, prompted_hidden};

/// Every fixture model: two GPT-2 (f32 with old-style keys, f16 with `transformer.` keys and an
/// odd head size), a Llama (grouped-query attention, llama3 RoPE scaling, untied head, f32), a
/// Qwen2 (q/k/v biases, one key/value head, tied head, bf16), all with a byte-level BPE
/// tokenizer, and a Llama with a Metaspace (SentencePiece-style) tokenizer that adds `<s>` (f16).
pub const MODELS: [&str; 5] = [
    "tiny-a",
    "tiny-b",
    "tiny-llama",
    "tiny-qwen2",
    "tiny-llama-sp",
];
/// The GPT-2 fixtures (their config fields are GPT-2's).
pub const GPT2_MODELS: [&str; 2] = ["tiny-a", "tiny-b"];

/// Logits: both sides compute in f32 with different summation orders (matmul blocking, softmax);
/// observed differences are ~1e-6 on the tiny models and ~1e-5 on the bundled one, so 1e-4 leaves
/// room for other CPUs while catching any real error (a transposed c_proj or a wrong mask moves
/// logits by > 1e-2).
pub const LOGITS_ATOL: f32 = 1e-4;

/// The checkout under test, read at run time: with one target folder shared by two checkouts,
/// cargo may reuse a test binary built in the other, whose compile-time path points there.
pub fn root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR")
            .expect("run by cargo, which sets CARGO_MANIFEST_DIR"),
    )
}

/// A file or folder of the checkout's `www/`.
pub fn www(path: &str) -> PathBuf {
    root().join("www").join(path)
}

/// A built-in task of the page (`www/tasks/{name}`).
pub fn builtin(name: &str) -> soft_prompt_lab::tasks::Task {
    let dir = www(&format!("tasks/{name}"));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    soft_prompt_lab::tasks::Task::builtin(
        read("task.json").as_bytes(),
        &read("train.jsonl"),
        &read("test.jsonl"),
    )
    .unwrap()
}

pub fn fixture_dir(name: &str) -> PathBuf {
    root().join("tests/reference/fixtures").join(name)
}

pub fn read(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixture_dir(name).join(file))
        .unwrap_or_else(|e| panic!("fixture {name}/{file}: {e}"))
}

pub fn load(name: &str) -> LoadedModel {
    load_on(name, &backend::cpu())
}

pub fn load_on(name: &str, device: &burn::tensor::Device) -> LoadedModel {
    let files = ModelFiles {
        config_json: &read(name, "config.json"),
        safetensors: &read(name, "model.safetensors"),
        tokenizer_json: &read(name, "tokenizer.json"),
    };
    LoadedModel::from_bytes(files, device).expect("fixture model loads")
}

/// Loads from bytes with one file replaced, for the bad-input tests.
pub fn load_with(
    name: &str,
    config: Option<&[u8]>,
    weights: Option<&[u8]>,
    tokenizer: Option<&[u8]>,
) -> soft_prompt_lab::Result<LoadedModel> {
    let (c, w, t) = (
        read(name, "config.json"),
        read(name, "model.safetensors"),
        read(name, "tokenizer.json"),
    );
    let files = ModelFiles {
        config_json: config.unwrap_or(&c),
        safetensors: &weights.unwrap_or(&w),
        tokenizer_json: tokenizer.unwrap_or(&t),
    };
    LoadedModel::from_bytes(files, &backend::cpu())
}

pub type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// The fixture's weights as editable entries, and back to bytes.
pub fn tensors(name: &str) -> Tensors {
    let bytes = read(name, "model.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect()
}

pub fn serialize(t: &Tensors) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = t
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

pub struct Reference {
    pub json: Value,
    bytes: Vec<u8>,
}

impl Reference {
    pub fn new(name: &str) -> Self {
        let json = serde_json::from_slice(&read(name, "reference.json")).expect("reference.json");
        Self {
            json,
            bytes: read(name, "reference.safetensors"),
        }
    }

    /// A reference tensor as (shape, f32 values).
    pub fn tensor(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("reference.safetensors");
        let view = st
            .tensor(key)
            .unwrap_or_else(|_| panic!("reference tensor {key}"));
        let values = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::I32 => view
                .data()
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            other => panic!("unexpected dtype {other:?}"),
        };
        (view.shape().to_vec(), values)
    }

    pub fn ids(&self, key: &str) -> Vec<u32> {
        self.json[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect()
    }

    pub fn f32s(&self, key: &str) -> Vec<f32> {
        self.json[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect()
    }

    pub fn examples(&self) -> Vec<soft_prompt_lab::tasks::Example> {
        self.json["examples"]
            .as_array()
            .expect("examples")
            .iter()
            .map(|p| soft_prompt_lab::tasks::Example {
                input: p[0].as_str().unwrap().into(),
                output: p[1].as_str().unwrap().into(),
            })
            .collect()
    }
}

/// Max |logit difference| against the reference's padded batch, over the real (unpadded) positions.
pub fn logits_max_abs_diff(lm: &LoadedModel, r: &Reference) -> f32 {
    let (shape, expected) = r.tensor("logits");
    let (_, mask) = r.tensor("logits_mask");
    let rows: Vec<Vec<u32>> = r.json["logit_texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| lm.tokenizer.encode_start(t.as_str().unwrap()).unwrap())
        .collect();
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let padded = Padded::new(&refs, lm.tokenizer.pad_id());
    assert_eq!([padded.rows(), padded.width], [shape[0], shape[1]]);
    let hidden = prompted_hidden(&lm.model, None, &padded).unwrap();
    let all: Vec<usize> = (0..padded.rows() * padded.width).collect();
    let got = values(lm.model.logits_at(hidden, &all));
    let vocab = shape[2];
    // Padding positions are not compared: their values are meaningless on both sides.
    (0..mask.len())
        .filter(|&p| mask[p] == 1.0)
        .map(|p| {
            max_abs_diff(
                &got[p * vocab..(p + 1) * vocab],
                &expected[p * vocab..(p + 1) * vocab],
            )
        })
        .fold(0f32, f32::max)
}

/// The reference's tokenizer cases: (text, Hugging Face's ids).
/// `(text, ids, the ids decoded)` as the reference tokenizer gives them.
pub fn token_id_cases(reference: &Value) -> Vec<(String, Vec<u32>, String)> {
    let cases = reference["token_ids"].as_array().expect("token_ids");
    assert!(cases.len() >= 8, "all tokenizer cases present");
    cases
        .iter()
        .map(|c| {
            let ids = c["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_u64().expect("id") as u32)
                .collect();
            let text = |key: &str| c[key].as_str().expect(key).to_string();
            (text("text"), ids, text("decoded"))
        })
        .collect()
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    pollster::block_on(backend::read_f32(t)).expect("read")
}

/// max |a - b| / max |b|: relative to the reference's scale, so tiny entries do not dominate.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    let scale = b
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// PEFT's own initial prompt for fixture `name` (`adapter_init/`).
pub fn initial_prompt(lm: &LoadedModel, name: &str) -> SoftPrompt {
    let dir = fixture_dir(name).join("adapter_init");
    let files = AdapterFiles {
        config_json: std::fs::read(dir.join(adapter::CONFIG_FILE)).unwrap(),
        safetensors: std::fs::read(dir.join(adapter::WEIGHTS_FILE)).unwrap(),
    };
    adapter::load(&files, &lm.model)
        .expect("PEFT's own adapter files load")
        .0
}

/// The batch the reference trained on, as ours builds it.
pub fn reference_batch(lm: &LoadedModel, r: &Reference, n_virtual: usize) -> ScoredBatch {
    let seqs: Vec<Sequence> = r
        .examples()
        .iter()
        .map(|ex| Sequence::for_example(&lm.tokenizer, "", ex).unwrap())
        .collect();
    let batch =
        ScoredBatch::new(&seqs, n_virtual, r.json["eos_id"].as_u64().unwrap() as u32).unwrap();
    // The batch the reference trained on, token for token (padding and labels included).
    let ids: Vec<u32> = r.json["batch_ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
        })
        .collect();
    assert_eq!(batch.padded.ids, ids, "batch ids");
    batch
}

/// The prompt-tuning loss and prompt gradient on the reference batch from PEFT's initial prompt,
/// with the graph's gradients (to check that no base weight received one).
pub fn first_loss_and_grad(
    lm: &LoadedModel,
    name: &str,
    r: &Reference,
) -> (f32, Vec<f32>, burn::tensor::Gradients) {
    let prompt = initial_prompt(lm, name);
    let batch = reference_batch(lm, r, prompt.n_virtual());
    let p = prompt.embeddings.val();
    let l = soft_prompt_lab::soft_prompt::loss(&lm.model, Some(p.clone()), &batch).unwrap();
    let grads = l.backward();
    let grad = values(p.grad(&grads).expect("prompt has a gradient"));
    (values(l)[0], grad, grads)
}

/// Greedy decoding of `n` tokens that stops for nothing else: the reference's own generation.
pub fn greedy_tokens(n: usize) -> soft_prompt_lab::generate::GenerateOptions {
    soft_prompt_lab::generate::GenerateOptions {
        max_new_tokens: n,
        stop_at_newline: false,
        stop_at_eos: false,
        ..Default::default()
    }
}
