//! What both benches share: the bundled model's folder and model shapes with random weights,
//! written in Hugging Face layout at bench time (no hub). Each bench uses some of them.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use soft_prompt_lab::batch::{Sampler, ScoredBatch};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::settings::Settings;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, TaskSpec, parse_jsonl};
use soft_prompt_lab::train::Trainer;

/// The step both benches take: antonyms, batch 16, 8 virtual tokens.
pub const BATCH: usize = 16;
pub const N_VIRTUAL: usize = 8;

/// A built-in task's training and held-out examples, with its spec.
pub fn task(name: &str) -> (Vec<Example>, Vec<Example>, TaskSpec) {
    let dir = root().join("www/tasks").join(name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let spec = TaskSpec::parse(read("task.json").as_bytes()).unwrap();
    (
        parse_jsonl(&read(&spec.train)).unwrap(),
        parse_jsonl(&read(&spec.test)).unwrap(),
        spec,
    )
}

/// The benches' trainer: 8 virtual tokens sampled from the vocabulary (seed 0), default settings.
pub fn fresh_trainer(lm: &LoadedModel) -> Trainer {
    let prompt =
        SoftPrompt::init(lm, N_VIRTUAL, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    Trainer::new(prompt, Settings::default().train_config())
}

/// `n` training batches of antonyms, the same in every process (seed 0).
pub fn batches(lm: &LoadedModel, n: usize) -> Vec<ScoredBatch> {
    let (train, _, _) = task("antonyms");
    let mut sampler = Sampler::for_examples(&lm.tokenizer, &train, 0).unwrap();
    let pad = lm.tokenizer.pad_id();
    (0..n)
        .map(|_| sampler.next_batch(BATCH, N_VIRTUAL, pad).unwrap())
        .collect()
}

/// The value after `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// SmolLM2-135M's shape (`HuggingFaceTB/SmolLM2-135M`'s config.json).
pub const SMOLLM2_135M: Synthetic = Synthetic::Llama {
    d: 576,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    ffn: 1536,
    vocab: 49152,
};
/// GPT-2 small's shape.
pub const GPT2_SMALL: Synthetic = Synthetic::Gpt2 {
    d: 768,
    layers: 12,
    heads: 12,
    vocab: 50257,
};

/// SmolLM2-360M's shape (`HuggingFaceTB/SmolLM2-360M`'s config.json).
pub const SMOLLM2_360M: Synthetic = Synthetic::Llama {
    d: 960,
    layers: 32,
    heads: 15,
    kv_heads: 5,
    ffn: 2560,
    vocab: 49152,
};

pub fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
}

pub fn bundled_dir() -> PathBuf {
    root().join("www/models/wordnet-gpt")
}

/// A model shape for random weights.
pub enum Synthetic {
    Gpt2 {
        d: usize,
        layers: usize,
        heads: usize,
        vocab: usize,
    },
    Llama {
        d: usize,
        layers: usize,
        heads: usize,
        kv_heads: usize,
        ffn: usize,
        vocab: usize,
    },
}

impl Synthetic {
    /// `config.json` and every weight's name and shape (`nn.Linear`'s `[out, in]` for Llama,
    /// `Conv1D`'s `[in, out]` for GPT-2; Llama's head tied, as SmolLM2's).
    fn layout(&self) -> (String, Vec<(String, Vec<usize>)>) {
        match *self {
            Synthetic::Gpt2 {
                d,
                layers,
                heads,
                vocab,
            } => {
                let config = format!(
                    r#"{{"model_type":"gpt2","vocab_size":{vocab},"n_positions":1024,"n_embd":{d},"n_layer":{layers},"n_head":{heads},"eos_token_id":0}}"#
                );
                let mut shapes = vec![
                    ("wte.weight".into(), vec![vocab, d]),
                    ("wpe.weight".into(), vec![1024, d]),
                    ("ln_f.weight".into(), vec![d]),
                    ("ln_f.bias".into(), vec![d]),
                ];
                for i in 0..layers {
                    for (name, shape) in [
                        ("ln_1.weight", vec![d]),
                        ("ln_1.bias", vec![d]),
                        ("ln_2.weight", vec![d]),
                        ("ln_2.bias", vec![d]),
                        ("attn.c_attn.weight", vec![d, 3 * d]),
                        ("attn.c_attn.bias", vec![3 * d]),
                        ("attn.c_proj.weight", vec![d, d]),
                        ("attn.c_proj.bias", vec![d]),
                        ("mlp.c_fc.weight", vec![d, 4 * d]),
                        ("mlp.c_fc.bias", vec![4 * d]),
                        ("mlp.c_proj.weight", vec![4 * d, d]),
                        ("mlp.c_proj.bias", vec![d]),
                    ] {
                        shapes.push((format!("h.{i}.{name}"), shape));
                    }
                }
                (config, shapes)
            }
            Synthetic::Llama {
                d,
                layers,
                heads,
                kv_heads,
                ffn,
                vocab,
            } => {
                let config = format!(
                    r#"{{"model_type":"llama","architectures":["LlamaForCausalLM"],"vocab_size":{vocab},"max_position_embeddings":8192,"hidden_size":{d},"intermediate_size":{ffn},"num_hidden_layers":{layers},"num_attention_heads":{heads},"num_key_value_heads":{kv_heads},"rms_norm_eps":1e-5,"rope_theta":100000.0,"hidden_act":"silu","tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0}}"#
                );
                let kv = d / heads * kv_heads;
                let mut shapes = vec![
                    ("model.embed_tokens.weight".into(), vec![vocab, d]),
                    ("model.norm.weight".into(), vec![d]),
                ];
                for i in 0..layers {
                    for (name, shape) in [
                        ("input_layernorm.weight", vec![d]),
                        ("post_attention_layernorm.weight", vec![d]),
                        ("self_attn.q_proj.weight", vec![d, d]),
                        ("self_attn.k_proj.weight", vec![kv, d]),
                        ("self_attn.v_proj.weight", vec![kv, d]),
                        ("self_attn.o_proj.weight", vec![d, d]),
                        ("mlp.gate_proj.weight", vec![ffn, d]),
                        ("mlp.up_proj.weight", vec![ffn, d]),
                        ("mlp.down_proj.weight", vec![d, ffn]),
                    ] {
                        shapes.push((format!("model.layers.{i}.{name}"), shape));
                    }
                }
                (config, shapes)
            }
        }
    }

    /// Writes the model in Hugging Face layout under the temp folder (seeded weights, uniform in
    /// ±0.02, norms' scales 1; BF16 for Llama as the Hub has SmolLM2, F32 for GPT-2) with the
    /// bundled tokenizer (4,096 tokens, which fits either vocabulary, so the batches are the
    /// bundled model's).
    pub fn write(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spl-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (config, shapes) = self.layout();
        let bf16 = matches!(self, Synthetic::Llama { .. });
        let mut seed = 1u32;
        let bytes: Vec<Vec<u8>> = shapes
            .iter()
            .map(|(key, shape)| {
                let n: usize = shape.iter().product();
                let values = (0..n).map(|_| {
                    if key.contains("norm") || key.starts_with("ln_") || key.contains(".ln_") {
                        return 1.0f32;
                    }
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 * 0.04 - 0.02
                });
                if bf16 {
                    values
                        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                        .collect()
                } else {
                    values.flat_map(f32::to_le_bytes).collect()
                }
            })
            .collect();
        let dtype = if bf16 { Dtype::BF16 } else { Dtype::F32 };
        let views: Vec<(String, TensorView<'_>)> = shapes
            .iter()
            .zip(&bytes)
            .map(|((k, s), b)| (k.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
            .collect();
        let metadata = Some(std::collections::HashMap::from([(
            "format".into(),
            "pt".into(),
        )]));
        safetensors::serialize_to_file(views, metadata, &dir.join("model.safetensors")).unwrap();
        std::fs::write(dir.join("config.json"), config).unwrap();
        std::fs::copy(
            bundled_dir().join("tokenizer.json"),
            dir.join("tokenizer.json"),
        )
        .unwrap();
        dir
    }
}
