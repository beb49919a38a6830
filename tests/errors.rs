//! Every bad input gives its named error (one test each), never a panic.

mod common;

use common::*;
use safetensors::{Dtype, SafeTensors};
use soft_prompt_lab::Error;
use soft_prompt_lab::adapter::{self, AdapterFiles};
use soft_prompt_lab::batch::{ScoredBatch, Sequence};
use soft_prompt_lab::generate::{GenerateOptions, Prompting, generate};
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, parse_jsonl};
use soft_prompt_lab::train::{OptimizerKind, TrainConfig, Trainer};

fn load_err(
    name: &str,
    config: Option<&[u8]>,
    weights: Option<&[u8]>,
    tokenizer: Option<&[u8]>,
) -> Error {
    load_with(name, config, weights, tokenizer).expect_err("must be rejected")
}

fn config_with(name: &str, key: &str, value: serde_json::Value) -> Vec<u8> {
    let mut c: serde_json::Value = serde_json::from_slice(&read(name, "config.json")).unwrap();
    c[key] = value;
    serde_json::to_vec(&c).unwrap()
}

#[test]
fn config_that_is_not_json() {
    let e = load_err("tiny-a", Some(b"{ not json"), None, None);
    assert!(matches!(e, Error::ConfigInvalid { .. }), "{e}");
}

#[test]
fn config_missing_a_field() {
    let mut c: serde_json::Value = serde_json::from_slice(&read("tiny-a", "config.json")).unwrap();
    c.as_object_mut().unwrap().remove("n_embd");
    let e = load_err("tiny-a", Some(&serde_json::to_vec(&c).unwrap()), None, None);
    assert!(
        matches!(&e, Error::ConfigInvalid { detail } if detail.contains("n_embd")),
        "{e}"
    );
}

#[test]
fn config_of_another_architecture() {
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "activation_function", "silu".into())),
        None,
        None,
    );
    assert!(
        matches!(
            e,
            Error::ConfigUnsupported {
                field: "activation_function",
                ..
            }
        ),
        "{e}"
    );
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "model_type", "gpt_neox".into())),
        None,
        None,
    );
    assert!(
        matches!(
            e,
            Error::ConfigUnsupported {
                field: "model_type",
                ..
            }
        ),
        "{e}"
    );
}

/// Llama-family variants the engine does not compute are refused by name, before any weight is
/// read; a file that does not match its config names the tensor.
#[test]
fn llama_family_configs_and_weights_that_do_not_fit() {
    let refused = [
        ("use_sliding_window", serde_json::json!(true)),
        ("hidden_act", serde_json::json!("gelu")),
        ("mlp_bias", serde_json::json!(true)),
        ("attention_bias", serde_json::json!(true)),
        (
            "rope_parameters",
            serde_json::json!({"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}),
        ),
    ];
    for (key, value) in refused {
        let e = load_err(
            "tiny-llama",
            Some(&config_with("tiny-llama", key, value)),
            None,
            None,
        );
        assert!(matches!(e, Error::ConfigUnsupported { .. }), "{key}: {e}");
    }
    let e = load_err(
        "tiny-llama",
        Some(&config_with("tiny-llama", "num_key_value_heads", 3.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::ConfigInvalid { detail } if detail.contains("num_key_value_heads")),
        "{e}"
    );
    // Untied: lm_head is required.
    let tied_model_untied_config = config_with("tiny-qwen2", "tie_word_embeddings", false.into());
    let e = load_err("tiny-qwen2", Some(&tied_model_untied_config), None, None);
    assert!(
        matches!(&e, Error::WeightMissing { key, .. } if key == "lm_head.weight"),
        "{e}"
    );
    // Qwen2's biases are expected; a Llama config over Qwen2 weights leaves them over.
    let e = load_err(
        "tiny-qwen2",
        Some(&config_with("tiny-qwen2", "model_type", "llama".into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::WeightUnexpected { keys, .. } if keys.contains("q_proj.bias")),
        "{e}"
    );
}

#[test]
fn weights_truncated() {
    let w = read("tiny-a", "model.safetensors");
    let e = load_err("tiny-a", None, Some(&w[..w.len() - 1000]), None);
    assert!(matches!(e, Error::WeightsCorrupt { .. }), "{e}");
}

#[test]
fn weights_not_safetensors() {
    let e = load_err("tiny-a", None, Some(b"<html>404 Not Found</html>"), None);
    assert!(matches!(e, Error::WeightsCorrupt { .. }), "{e}");
}

#[test]
fn weights_missing_a_tensor() {
    let mut t = tensors("tiny-a");
    t.retain(|(k, ..)| k != "ln_f.bias");
    let e = load_err("tiny-a", None, Some(&serialize(&t)), None);
    assert!(
        matches!(&e, Error::WeightMissing { key, .. } if key == "ln_f.bias"),
        "{e}"
    );
}

#[test]
fn weights_with_an_extra_tensor() {
    let mut t = tensors("tiny-a");
    t.push(("score.weight".into(), Dtype::F32, vec![2], vec![0; 8]));
    let e = load_err("tiny-a", None, Some(&serialize(&t)), None);
    assert!(
        matches!(&e, Error::WeightUnexpected { keys, .. } if keys.contains("score.weight")),
        "{e}"
    );
}

#[test]
fn weights_with_a_misshapen_tensor() {
    let mut t = tensors("tiny-a");
    let entry = t
        .iter_mut()
        .find(|(k, ..)| k == "h.1.attn.c_proj.weight")
        .unwrap();
    entry.2 = vec![32, 128]; // same element count, wrong shape
    let e = load_err("tiny-a", None, Some(&serialize(&t)), None);
    assert!(
        matches!(&e, Error::WeightShape { key, found, .. } if key == "h.1.attn.c_proj.weight" && *found == vec![32, 128]),
        "{e}"
    );
}

#[test]
fn weights_in_an_unsupported_dtype() {
    let mut t = tensors("tiny-a");
    let entry = t.iter_mut().find(|(k, ..)| k == "ln_f.weight").unwrap();
    entry.1 = Dtype::I32;
    let e = load_err("tiny-a", None, Some(&serialize(&t)), None);
    assert!(
        matches!(&e, Error::WeightDtype { key, .. } if key == "ln_f.weight"),
        "{e}"
    );
}

#[test]
fn bf16_weights_load_and_compute_in_f32() {
    let mut t = tensors("tiny-a");
    for (k, d, _, b) in t.iter_mut().filter(|(k, ..)| !k.ends_with("attn.bias")) {
        assert_eq!(*d, Dtype::F32, "{k}");
        *b = b
            .chunks_exact(4)
            .flat_map(|c| {
                half::bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()
            })
            .collect();
        *d = Dtype::BF16;
    }
    let lm = load_with("tiny-a", None, Some(&serialize(&t)), None).expect("bf16 checkpoint loads");
    let wte = values(lm.model.embedding().whole());
    let original = values(load("tiny-a").model.embedding().whole());
    // bf16 keeps 8 significant bits: a relative rounding error of at most 2^-8.
    assert!(rel_err(&wte, &original) <= 1.0 / 256.0);
    assert!(
        wte.iter().zip(&original).any(|(a, b)| a != b),
        "values were really rounded"
    );
}

#[test]
fn config_that_does_not_fit_the_weights() {
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "n_embd", 32.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::WeightShape { key, .. } if key == "wte.weight"),
        "{e}"
    );
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "n_layer", 3.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::WeightMissing { key, .. } if key.starts_with("h.2.")),
        "{e}"
    );
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "n_layer", 1.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::WeightUnexpected { keys, .. } if keys.contains("h.1.")),
        "{e}"
    );
}

#[test]
fn config_with_a_huge_layer_count_is_named_before_allocating() {
    // Beyond any GPT-2-family model: refused by the config's own bounds.
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "n_layer", 1_000_000_000.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::ConfigInvalid { detail } if detail.contains("`n_layer` must be an integer from 1 to 1024")),
        "{e}"
    );
    // Plausible, but more layers than the weights file holds: named by the first missing one.
    let e = load_err(
        "tiny-a",
        Some(&config_with("tiny-a", "n_layer", 1000.into())),
        None,
        None,
    );
    assert!(
        matches!(&e, Error::WeightMissing { key, expected } if key == "h.999.ln_1.weight" && expected.contains("n_layer = 1000")),
        "{e}"
    );
}

/// A NaN or infinity in any weight is named with its tensor and count (f32 and f16 files).
#[test]
fn weights_with_non_finite_values() {
    for (value, dtype) in [(f32::NAN, Dtype::F32), (f32::INFINITY, Dtype::F16)] {
        let mut t = tensors("tiny-a");
        let wte = t.iter_mut().find(|(k, ..)| k == "wte.weight").unwrap();
        if dtype == Dtype::F16 {
            let n = wte.3.len() / 4;
            wte.1 = Dtype::F16;
            wte.3 = (0..n)
                .flat_map(|_| half::f16::from_f32(0.5).to_le_bytes())
                .collect();
            wte.3[2..4].copy_from_slice(&half::f16::from_f32(value).to_le_bytes());
        } else {
            wte.3[8..12].copy_from_slice(&value.to_le_bytes());
            wte.3[12..16].copy_from_slice(&value.to_le_bytes());
        }
        let e = load_err("tiny-a", None, Some(&serialize(&t)), None);
        let want = if dtype == Dtype::F16 { 1 } else { 2 };
        assert!(
            matches!(&e, Error::WeightNotFinite { key, count, .. } if key == "wte.weight" && *count == want),
            "{e}"
        );
        assert!(e.to_string().contains("non-finite"), "{e}");
    }
}

#[test]
fn adapter_with_non_finite_values() {
    let lm = load("tiny-a");
    let mut files = adapter_files("tiny-a");
    let st = SafeTensors::deserialize(&files.safetensors).unwrap();
    let view = st.tensor("prompt_embeddings").unwrap();
    let mut data = view.data().to_vec();
    data[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let t: Tensors = vec![(
        "prompt_embeddings".into(),
        Dtype::F32,
        view.shape().to_vec(),
        data,
    )];
    files.safetensors = serialize(&t);
    let e = adapter::load(&files, &lm.model).unwrap_err();
    assert!(
        matches!(&e, Error::AdapterInvalid { detail } if detail.contains("1 non-finite")),
        "{e}"
    );
}

#[test]
fn tokenizer_that_is_not_valid() {
    let e = load_err("tiny-a", None, None, Some(b"{\"model\": 3}"));
    assert!(matches!(e, Error::TokenizerInvalid { .. }), "{e}");
}

#[test]
fn tokenizer_larger_than_the_model_vocabulary() {
    // tiny-b has exactly 300 rows; one more added token no longer fits.
    let mut t: serde_json::Value =
        serde_json::from_slice(&read("tiny-b", "tokenizer.json")).unwrap();
    t["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
        "id": 300, "content": "<|extra|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true
    }));
    let e = load_err("tiny-b", None, None, Some(&serde_json::to_vec(&t).unwrap()));
    assert_eq!(
        e,
        Error::TokenizerMismatch {
            tokenizer_vocab: 301,
            model_vocab: 300
        }
    );
}

fn adapter_files(name: &str) -> AdapterFiles {
    AdapterFiles {
        config_json: read(name, "adapter_init/adapter_config.json"),
        safetensors: read(name, "adapter_init/adapter_model.safetensors"),
    }
}

#[test]
fn adapter_for_another_model() {
    let lm = load("tiny-b");
    let e = adapter::load(&adapter_files("tiny-a"), &lm.model).unwrap_err();
    assert_eq!(
        e,
        Error::AdapterMismatch {
            adapter: 64,
            model: 36
        }
    );
}

/// Same width, another model: refused by the name the adapter gives its base model (tiny-llama's
/// adapter says "tiny-llama"); folder addresses and unnamed models are not compared.
#[test]
fn adapter_named_for_another_model_of_the_same_width() {
    let lm = load("tiny-llama");
    let (_, config) = adapter::load(&adapter_files("tiny-llama"), &lm.model).unwrap();
    let e = adapter::check_base(&config, "HuggingFaceTB/SmolLM2-135M").unwrap_err();
    assert_eq!(
        e,
        Error::AdapterForAnotherModel {
            adapter: "tiny-llama".into(),
            model: "HuggingFaceTB/SmolLM2-135M".into()
        }
    );
    assert!(e.to_string().contains("Load tiny-llama first"));
    for fine in ["tiny-llama", "", "http://127.0.0.1:8080/models/x/"] {
        adapter::check_base(&config, fine).unwrap();
    }
}

#[test]
fn adapter_of_another_peft_type() {
    let lm = load("tiny-a");
    let mut files = adapter_files("tiny-a");
    let mut c: serde_json::Value = serde_json::from_slice(&files.config_json).unwrap();
    c["peft_type"] = "LORA".into();
    files.config_json = serde_json::to_vec(&c).unwrap();
    let e = adapter::load(&files, &lm.model).unwrap_err();
    assert!(
        matches!(&e, Error::AdapterInvalid { detail } if detail.contains("LORA")),
        "{e}"
    );
}

#[test]
fn adapter_weights_without_prompt_embeddings() {
    let lm = load("tiny-a");
    let mut files = adapter_files("tiny-a");
    files.safetensors = serialize(&vec![("lora_A".into(), Dtype::F32, vec![1], vec![0; 4])]);
    let e = adapter::load(&files, &lm.model).unwrap_err();
    assert!(
        matches!(&e, Error::AdapterInvalid { detail } if detail.contains("prompt_embeddings")),
        "{e}"
    );
}

#[test]
fn task_file_with_a_malformed_line() {
    let text = "{\"input\": \"hot ->\", \"output\": \" cold\"}\n\n{\"input\": \"big ->\" \"output\": \" small\"}\n";
    assert!(matches!(
        parse_jsonl(text),
        Err(Error::TaskLine { line: 3, .. })
    ));
}

#[test]
fn task_file_missing_a_field() {
    let e = parse_jsonl("{\"input\": \"hot ->\"}").unwrap_err();
    assert!(
        matches!(&e, Error::TaskLine { line: 1, detail } if detail.contains("output")),
        "{e}"
    );
}

#[test]
fn task_file_that_is_empty() {
    assert!(matches!(
        parse_jsonl("\n  \n"),
        Err(Error::TaskInvalid { .. })
    ));
}

#[test]
fn input_longer_than_the_context() {
    let lm = load("tiny-b");
    let long = "hot -> ".repeat(40);
    let e = pollster::block_on(generate(
        &lm,
        &Prompting::default(),
        &[long.as_str()],
        &GenerateOptions::default(),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::SequenceTooLong { max: 48, .. }), "{e}");
}

#[test]
fn loss_that_turns_non_finite() {
    let lm = load("tiny-a");
    // A diverged prompt (an overflowed value) makes the loss NaN; the step reports it by name.
    let mut values = vec![0.1f32; 4 * 64];
    values[5] = f32::INFINITY;
    let prompt = SoftPrompt::from_tensor(burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(values, [4, 64]),
        &lm.model.device(),
    ));
    let ex = Example {
        input: "hot ->".into(),
        output: " cold".into(),
    };
    let batch = ScoredBatch::new(
        &[Sequence::for_example(&lm.tokenizer, "", &ex).unwrap()],
        4,
        0,
    )
    .unwrap();
    let config = TrainConfig {
        optimizer: OptimizerKind::Sgd,
        lr: 0.1,
        max_grad_norm: None,
    };
    let mut trainer = Trainer::new(prompt, config);
    let e = pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap_err();
    assert!(
        matches!(e, Error::LossNotFinite { step: 1, value } if value.is_nan()),
        "{e}"
    );
}

#[test]
fn settings_out_of_range() {
    let lm = load("tiny-a");
    assert!(matches!(
        SoftPrompt::init(&lm, 0, &PromptInit::RandomNormal, 0),
        Err(Error::Setting { .. })
    ));
    assert!(matches!(
        SoftPrompt::init(
            &lm,
            4,
            &PromptInit::SampleVocab {
                first_k: Some(10_000)
            },
            0
        ),
        Err(Error::Setting { .. })
    ));
    let settings = soft_prompt_lab::settings::Settings {
        lr: -1.0,
        ..Default::default()
    };
    assert!(matches!(settings.check(), Err(Error::Setting { .. })));
}

#[test]
fn gpu_buffer_limit_smaller_than_a_weight_matrix() {
    use soft_prompt_lab::backend::check_buffer_limit;
    use soft_prompt_lab::model::Arch;
    // GPT-2 small's shape on WebGPU's default 128 MiB binding: its 148 MiB embedding loads in
    // parts (`model::Table`); its largest layer matrix, the MLP's [768, 3072], is 9 MiB.
    let mut config = load("tiny-a").model.config.clone();
    (config.vocab_size, config.d_model, config.n_positions) = (50257, 768, 1024);
    let Arch::Gpt2(g) = &mut config.arch else {
        panic!("tiny-a is GPT-2")
    };
    g.n_inner = 3072;
    assert_eq!(config.largest_matrix_bytes(), 3072 * 768 * 4);
    assert!(check_buffer_limit(config.largest_matrix_bytes(), 128 << 20).is_ok());
    // A layer wider than one binding cannot be split: refused, and what to do said.
    let Arch::Gpt2(g) = &mut config.arch else {
        unreachable!()
    };
    g.n_inner = 48 * 1024;
    let err = check_buffer_limit(config.largest_matrix_bytes(), 128 << 20).unwrap_err();
    assert!(
        matches!(&err, Error::Device { detail } if detail.contains("at most 128 MiB") && detail.contains("largest weight matrix needs 144 MiB") && detail.contains("CPU backend")),
        "{err}"
    );
}
