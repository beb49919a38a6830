//! Parity with Hugging Face transformers and PEFT, step by step (as llm.c's test_gpt2.c):
//! tokens, logits, the prompt-tuning loss and gradient, 20 optimizer steps, greedy generation.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Tensor, bf16, f16};
use common::*;
use safetensors::Dtype;
use soft_prompt_lab::adapter::{self, Precision};
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::Padded;
use soft_prompt_lab::generate::{GenerateOptions, Prompting, generate};
use soft_prompt_lab::model::{Arch, load_weights, parse_config};
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt, loss, prompted_hidden};
use soft_prompt_lab::train::{OptimizerKind, TrainConfig, Trainer};

/// Loss, gradient and trajectories, relative to the reference's largest magnitude: f32 rounding
/// accumulates over 20 steps, but stays ~1e-6 relative.
const REL_TOL: f32 = 1e-4;

/// The number of weight tensors a checkpoint of `c` holds (a tied head once).
fn base_tensors(c: &soft_prompt_lab::model::ModelConfig) -> usize {
    match &c.arch {
        // wte, wpe, ln_f (2); per block: 2 layer norms (4), c_attn, c_proj, c_fc, c_proj (8).
        Arch::Gpt2(_) => 4 + 12 * c.n_layer,
        // embed_tokens, norm, lm_head when untied; per layer: 2 norms, 7 projections, q/k/v biases.
        Arch::Llama(l) => {
            let per_layer = 9 + if l.qkv_bias { 3 } else { 0 };
            2 + usize::from(!l.tie_word_embeddings) + per_layer * c.n_layer
        }
    }
}

#[test]
fn token_ids_match_huggingface_tokenizers() {
    for name in MODELS {
        let lm = load(name);
        let r = Reference::new(name);
        for (text, expected, decoded) in token_id_cases(&r.json) {
            let text = text.as_str();
            assert_eq!(
                lm.tokenizer.encode(text).unwrap(),
                expected,
                "{name}: {text:?}"
            );
            assert_eq!(
                lm.tokenizer.decode(&expected).unwrap(),
                decoded,
                "{name}: decoded as the reference decodes"
            );
        }
    }
}

#[test]
fn logits_match_transformers_on_a_padded_batch() {
    for name in MODELS {
        let lm = load(name);
        let r = Reference::new(name);
        let worst = logits_max_abs_diff(&lm, &r);
        eprintln!("{name}: logits max abs diff {worst:e}");
        assert!(
            worst <= LOGITS_ATOL,
            "{name}: logits max abs diff {worst:e} > {LOGITS_ATOL:e}"
        );
    }
}

#[test]
fn prompt_loss_and_gradient_match_peft() {
    for name in MODELS {
        let lm = load(name);
        let r = Reference::new(name);
        let (loss_value, grad, grads) = first_loss_and_grad(&lm, name, &r);
        let expected_loss = r.json["loss"].as_f64().unwrap() as f32;
        assert!(
            rel_err(&[loss_value], &[expected_loss]) <= REL_TOL,
            "{name}: loss {loss_value} vs {expected_loss}"
        );
        let (_, expected_grad) = r.tensor("prompt_grad");
        let err = rel_err(&grad, &expected_grad);
        eprintln!("{name}: loss {loss_value} vs {expected_loss}, gradient relative error {err:e}");
        assert!(
            err <= REL_TOL,
            "{name}: prompt gradient relative error {err:e}"
        );

        // No base weight is in the graph: none of them has a gradient.
        struct NoGrad<'a>(&'a burn::tensor::Gradients, usize);
        impl ModuleVisitor for NoGrad<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                assert!(
                    !param.val().is_require_grad(),
                    "a base weight requires grad"
                );
                assert!(
                    param.val().grad(self.0).is_none(),
                    "a base weight received a gradient"
                );
                self.1 += 1;
            }
        }
        let mut v = NoGrad(&grads, 0);
        lm.model.visit(&mut v);
        assert_eq!(
            v.1,
            base_tensors(&lm.model.config),
            "{name}: every base tensor visited"
        );
    }
}

#[test]
fn twenty_optimizer_steps_follow_torch() {
    for name in MODELS {
        let lm = load(name);
        let r = Reference::new(name);
        let before = pollster::block_on(lm.model.fingerprint()).unwrap();
        let before_values: Vec<Vec<f32>> = lm.model.parameters().into_iter().map(values).collect();
        for (opt, key, lr) in [
            (OptimizerKind::Adam, "adam", "adam_lr"),
            (OptimizerKind::Sgd, "sgd", "sgd_lr"),
        ] {
            let prompt = initial_prompt(&lm, name);
            let batch = reference_batch(&lm, &r, prompt.n_virtual());
            let config = TrainConfig {
                optimizer: opt,
                lr: r.json[lr].as_f64().unwrap(),
                max_grad_norm: None,
            };
            let mut trainer = Trainer::new(prompt, config);
            let losses: Vec<f32> = (0..20)
                .map(|_| {
                    pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read())
                        .unwrap()
                        .loss
                })
                .collect();
            let expected = r.f32s(&format!("{key}_losses"));
            let err = rel_err(&losses, &expected);
            eprintln!("{name} {key}: 20-step loss trajectory relative error {err:e}");
            assert!(
                err <= REL_TOL,
                "{name} {key}: loss trajectory relative error {err:e}\n ours {losses:?}\n torch {expected:?}"
            );
            let (_, final_prompt) = r.tensor(&format!("{key}_final_prompt"));
            let err = rel_err(&values(trainer.prompt.values()), &final_prompt);
            assert!(
                err <= REL_TOL,
                "{name} {key}: final prompt relative error {err:e}"
            );
        }
        // Every base weight bit-identical after 40 optimizer steps.
        let after_values: Vec<Vec<f32>> = lm.model.parameters().into_iter().map(values).collect();
        for (a, b) in before_values.iter().zip(&after_values) {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name}: a base weight changed"
            );
        }
        assert_eq!(
            pollster::block_on(lm.model.fingerprint()).unwrap(),
            before,
            "{name}: fingerprint"
        );
    }
}

#[test]
fn greedy_generation_matches_the_reference() {
    for name in MODELS {
        let lm = load(name);
        let r = Reference::new(name);
        let prompt = initial_prompt(&lm, name).values();
        let input = r.json["gen_prompt"].as_str().unwrap();
        // The reference ran without stop conditions, so ours runs without them too.
        let opts = greedy_tokens(10);
        let with =
            pollster::block_on(generate(&lm, &Prompting::soft(prompt), &[input], &opts)).unwrap();
        assert_eq!(
            with[0].ids,
            r.ids("greedy_with_prompt"),
            "{name}: with prompt"
        );
        let without =
            pollster::block_on(generate(&lm, &Prompting::default(), &[input], &opts)).unwrap();
        assert_eq!(
            without[0].ids,
            r.ids("greedy_no_prompt"),
            "{name}: without prompt"
        );
    }
}

/// Batched, cached generation against one row at a time (padding must not change a row, nor
/// rows that finish earlier and leave the cache) and against reading the whole sequence again
/// for every new token (the KV cache): the same greedy tokens. The cached and recomputed logits
/// are the same sums in other matmul shapes (~1e-6 apart); these rows have no near-ties.
#[test]
fn batched_cached_generation_equals_one_row_recomputed() {
    let lm = load("tiny-a");
    let prompt = initial_prompt(&lm, "tiny-a").values();
    let inputs = ["hot ->", "the cat sat on the mat ->", "a"];
    let opts = greedy_tokens(6);
    let p = Prompting::soft(prompt.clone());
    // The middle row stops first, then the last: the first row's last tokens come from a cache
    // of one row.
    let budgets = vec![6, 2, 4];
    let batched_opts = GenerateOptions {
        budgets: budgets.clone(),
        ..opts.clone()
    };
    let batched = pollster::block_on(generate(&lm, &p, &inputs, &batched_opts)).unwrap();
    for (row, input) in inputs.iter().enumerate() {
        let single = pollster::block_on(generate(&lm, &p, &[input], &opts)).unwrap();
        assert_eq!(
            batched[row].ids,
            single[0].ids[..budgets[row]],
            "row {row}: padding or the rows that left changed it"
        );
        let mut ids = lm.tokenizer.encode_start(input).unwrap();
        for step in 0..budgets[row] {
            let padded = Padded::new(&[ids.as_slice()], 0);
            let hidden = prompted_hidden(&lm.model, Some(prompt.clone()), &padded).unwrap();
            let last = prompt.dims()[0] + ids.len() - 1;
            let logits = lm.model.logits_at(hidden, &[last]);
            let next = logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap()[0];
            assert_eq!(
                batched[row].ids[step], next as u32,
                "row {row}, step {step}: cached and recomputed tokens differ"
            );
            ids.push(next as u32);
        }
    }
}

#[test]
fn adapter_saved_then_loaded_gives_identical_logits() {
    let lm = load("tiny-b");
    let r = Reference::new("tiny-b");
    let prompt = initial_prompt(&lm, "tiny-b");
    let config = adapter::AdapterConfig::new(
        &lm.model,
        prompt.n_virtual(),
        &PromptInit::RandomNormal,
        Some("tiny-b".into()),
    );
    let files = pollster::block_on(adapter::save(&prompt, &config, Precision::F32)).unwrap();
    let (loaded, loaded_config) = adapter::load(&files, &lm.model).unwrap();
    assert_eq!(loaded_config, config);
    let batch = reference_batch(&lm, &r, prompt.n_virtual());
    let logits = |p: &SoftPrompt| {
        let hidden = prompted_hidden(&lm.model, Some(p.values()), &batch.padded).unwrap();
        values(lm.model.logits_at(hidden, &batch.positions))
    };
    let (a, b) = (logits(&prompt), logits(&loaded));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "logits differ after an adapter round trip"
    );
    // In f16 (a prompt in a link) the values come back as f16 rounds them, bit for bit: within
    // half an f16 step (2^-11 relative) of the f32 values.
    let in_f16 = pollster::block_on(adapter::save(&prompt, &config, Precision::F16)).unwrap();
    assert!(in_f16.safetensors.len() < files.safetensors.len() / 2 + 200);
    let (from_half, _) = adapter::load(&in_f16, &lm.model).unwrap();
    let (f32s, f16s) = (values(prompt.values()), values(from_half.values()));
    for (x, y) in f32s.iter().zip(&f16s) {
        assert_eq!(half::f16::from_f32(*x).to_f32().to_bits(), y.to_bits());
        assert!(
            (x - y).abs() <= x.abs() * 2f32.powi(-11) + 6e-8,
            "{x} -> {y}"
        );
    }
    // The saved file is PEFT's format: the same config keys PEFT wrote for the fixture.
    let ours: serde_json::Value = serde_json::from_slice(&files.config_json).unwrap();
    let peft: serde_json::Value =
        serde_json::from_slice(&read("tiny-b", "adapter_init/adapter_config.json")).unwrap();
    for key in [
        "peft_type",
        "task_type",
        "num_virtual_tokens",
        "token_dim",
        "num_transformer_submodules",
        "num_layers",
        "num_attention_heads",
    ] {
        assert_eq!(ours[key], peft[key], "adapter_config.json {key}");
    }
}

/// Ours load in PEFT: the adapter files we write for the reference's trained prompt are byte for
/// byte the ones PEFT loaded when the fixtures were made (`adapter_ours/`, written by this test with
/// `UPDATE=1`, then `make_fixtures.py`), and PEFT's greedy tokens with them are ours.
#[test]
fn our_adapters_load_in_peft() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-llama-sp"] {
        let lm = load(name);
        let r = Reference::new(name);
        let (shape, values) = r.tensor("adam_final_prompt");
        let config = adapter::AdapterConfig::new(
            &lm.model,
            shape[0],
            &PromptInit::RandomNormal,
            Some(name.into()),
        );
        let files =
            adapter::save_values(&values, [shape[0], shape[1]], &config, Precision::F32).unwrap();
        let dir = fixture_dir(name).join("adapter_ours");
        let (config_path, weights_path) = (
            dir.join(adapter::CONFIG_FILE),
            dir.join(adapter::WEIGHTS_FILE),
        );
        if std::env::var_os("UPDATE").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&config_path, &files.config_json).unwrap();
            std::fs::write(&weights_path, &files.safetensors).unwrap();
            continue;
        }
        assert_eq!(
            files.config_json,
            std::fs::read(config_path).unwrap(),
            "{name}: config"
        );
        assert_eq!(
            files.safetensors,
            std::fs::read(weights_path).unwrap(),
            "{name}: weights"
        );
        let (prompt, _) = adapter::load(&files, &lm.model).unwrap();
        let opts = greedy_tokens(10);
        let input = r.json["gen_prompt"].as_str().unwrap();
        let ours = pollster::block_on(generate(
            &lm,
            &Prompting::soft(prompt.values()),
            &[input],
            &opts,
        ))
        .unwrap();
        assert_eq!(ours[0].ids, r.ids("peft_greedy_with_ours"), "{name}");
    }
}

/// The CPU backend keeps a large model's 2-byte weight matrices as stored (half the memory of f32)
/// and widens them inside its products (`model::frozen_matmul`); the fixtures are small, so the
/// loader widens them (`KEEP_HALF_FROM_PARAMS`) and the kept model is built here by
/// `load_weights` itself. Widening bf16 or f16 to f32 is exact, so the same values loaded as f32
/// must compute the same numbers, bit for bit: the prompt's loss and gradient, 20 Adam steps, the
/// greedy tokens. No tolerance: the products are the same f32 sums.
#[test]
fn two_byte_weights_compute_exactly_what_their_f32_values_compute() {
    for name in ["tiny-b", "tiny-qwen2", "tiny-llama-sp"] {
        let config = parse_config(&read(name, "config.json")).unwrap();
        let weights = read(name, "model.safetensors");
        let kept = soft_prompt_lab::loader::LoadedModel {
            model: load_weights(&config, &weights, &backend::cpu()).unwrap(),
            ..load(name)
        };
        assert_eq!(
            load(name).model.embedding().whole().dtype(),
            DType::F32,
            "{name}: small, widened"
        );
        assert_ne!(
            kept.model.embedding().whole().dtype(),
            DType::F32,
            "{name}: as stored"
        );
        let mut wide = tensors(name);
        for (_, dtype, _, bytes) in &mut wide {
            let values: Vec<f32> = match *dtype {
                Dtype::BF16 => bytes
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::F16 => bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                _ => continue,
            };
            *bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            *dtype = Dtype::F32;
        }
        let wide = load_with(name, None, Some(&serialize(&wide)), None).unwrap();
        assert_eq!(
            wide.model.embedding().whole().dtype(),
            DType::F32,
            "{name}: widened"
        );
        let r = Reference::new(name);
        let (loss_kept, grad_kept, _) = first_loss_and_grad(&kept, name, &r);
        let (loss_wide, grad_wide, _) = first_loss_and_grad(&wide, name, &r);
        assert_eq!(
            (loss_kept, grad_kept),
            (loss_wide, grad_wide),
            "{name}: loss and gradient"
        );
        let trained = |lm: &soft_prompt_lab::loader::LoadedModel| {
            let prompt = initial_prompt(lm, name);
            let batch = reference_batch(lm, &r, prompt.n_virtual());
            let config = TrainConfig {
                optimizer: OptimizerKind::Adam,
                lr: r.json["adam_lr"].as_f64().unwrap(),
                max_grad_norm: None,
            };
            let mut trainer = Trainer::new(prompt, config);
            for _ in 0..20 {
                pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap();
            }
            let prompt = trainer.prompt.values();
            let opts = greedy_tokens(8);
            let inputs = [r.json["gen_prompt"].as_str().unwrap(), "a"];
            let p = Prompting::soft(prompt.clone());
            let out = pollster::block_on(generate(lm, &p, &inputs, &opts)).unwrap();
            (
                values(prompt),
                out.into_iter().map(|g| g.ids).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            trained(&kept),
            trained(&wide),
            "{name}: 20 Adam steps, then generation"
        );
    }
}

/// Our weights by checkpoint key: module names mirror the keys (`net.Llama.layers.0.self_attn.
/// q_proj.weight` is `model.layers.0.self_attn.q_proj.weight`), embeddings gain `.weight`, and
/// Llama's projections, which we hold `[in, out]`, are compared transposed; GPT-2's `Conv1D` and
/// both heads (`[vocab, d]`, as the embedding) are stored as we hold them.
struct Keyed<'a> {
    path: Vec<String>,
    grads: &'a burn::tensor::Gradients,
    out: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Keyed<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // A vocabulary table's one part on the CPU (`model::Table`) is the checkpoint's tensor.
        let rest = self.path[2..].join(".").replace(".parts.0", "");
        let family = self.path[1].as_str();
        let (prefix, linear) = match family {
            "Gpt2" => ("transformer.", false),
            _ => ("model.", rest.ends_with("_proj.weight")),
        };
        let key = match rest.as_str() {
            "lm_head" => "lm_head.weight".to_string(),
            r if !r.ends_with(".weight") && !r.ends_with(".bias") => format!("{prefix}{r}.weight"),
            r => format!("{prefix}{r}"),
        };
        let grad = param
            .val()
            .grad(self.grads)
            .expect("every weight has a gradient");
        let grad = match (linear, D) {
            (true, 2) => values(grad.reshape([0, 0]).transpose()),
            _ => values(grad),
        };
        self.out.push((key, grad));
    }
}

/// Model tuning (every weight trained, no prompt): the loss and every weight's gradient against
/// torch's, by checkpoint key, for one fixture of each family. Relative to each tensor's largest
/// gradient, at the optimizer tests' tolerance: the same f32 sums in other orders.
#[test]
fn model_tuning_loss_and_every_weight_gradient_match_torch() {
    for name in ["tiny-a", "tiny-llama"] {
        let lm = load(name);
        let r = Reference::new(name);
        let model = lm.model.clone().set_require_grad(true);
        let batch = reference_batch(&lm, &r, 0);
        let l = loss(&model, None, &batch).unwrap();
        let expected = r.json["model_tuning_loss"].as_f64().unwrap() as f32;
        let got = values(l.clone())[0];
        assert!(
            rel_err(&[got], &[expected]) <= REL_TOL,
            "{name}: loss {got} vs {expected}"
        );
        let grads = l.backward();
        let mut keyed = Keyed {
            path: Vec::new(),
            grads: &grads,
            out: Vec::new(),
        };
        model.visit(&mut keyed);
        assert_eq!(
            keyed.out.len(),
            base_tensors(&model.config),
            "{name}: every weight"
        );
        for (key, grad) in keyed.out {
            let (_, want) = r.tensor(&format!("model_grad/{key}"));
            let err = rel_err(&grad, &want);
            assert!(err <= REL_TOL, "{name}: {key} gradient rel err {err:e}");
        }
    }
}
