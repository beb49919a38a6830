//! The parity fixtures on native wgpu: the page's WebGPU path runs the same cubecl kernels
//! (WGSL), so a wrong kernel, a fusion that changes results (burn#5257) or a shape only the GPU
//! path takes fails here. No GPU needed: in CI the adapter is lavapipe (Mesa's CPU Vulkan
//! driver, Debian's `mesa-vulkan-drivers`). `cargo test --features gpu --test gpu`.
#![cfg(feature = "gpu")]

mod common;

use std::sync::OnceLock;

use burn::tensor::Device;
use common::*;
use soft_prompt_lab::generate::{Prompting, generate};
use soft_prompt_lab::train::{OptimizerKind, TrainConfig, Trainer};

/// Logits: the GPU sums in other orders (tiled matmuls, tree reductions) than the CPU and
/// PyTorch; measured on lavapipe within 1e-6 of the CPU's differences, so the CPU's bound holds.
const GPU_LOGITS_ATOL: f32 = LOGITS_ATOL;
/// Loss, prompt gradient and the 20-step Adam trajectory, relative to the reference's scale: as
/// the CPU parity tests (1e-4), observed ~1e-6 on lavapipe.
const GPU_REL_TOL: f32 = 1e-4;

/// One wgpu runtime per process (it cannot be initialised twice).
fn gpu() -> &'static Device {
    static GPU: OnceLock<Device> = OnceLock::new();
    GPU.get_or_init(|| {
        Device::wgpu_options()
            .init()
            .expect(
                "a wgpu adapter: on a machine without a GPU install Mesa's lavapipe \
                 (apt-get install mesa-vulkan-drivers libvulkan1)",
            )
            .autodiff()
    })
}

#[test]
fn fixtures_match_the_reference_on_wgpu() {
    for name in MODELS {
        let lm = load_on(name, gpu());
        let r = Reference::new(name);

        let worst = logits_max_abs_diff(&lm, &r);
        eprintln!("{name} (wgpu): logits max abs diff {worst:e}");
        assert!(worst <= GPU_LOGITS_ATOL, "{name}: logits {worst:e}");

        let (got, grad, _) = first_loss_and_grad(&lm, name, &r);
        let want = r.json["loss"].as_f64().unwrap() as f32;
        assert!(
            rel_err(&[got], &[want]) <= GPU_REL_TOL,
            "{name}: loss {got} vs {want}"
        );
        let err = rel_err(&grad, &r.tensor("prompt_grad").1);
        eprintln!("{name} (wgpu): prompt gradient relative error {err:e}");
        assert!(err <= GPU_REL_TOL, "{name}: prompt gradient {err:e}");

        let prompt = initial_prompt(&lm, name);
        let batch = reference_batch(&lm, &r, prompt.n_virtual());
        let before = pollster::block_on(lm.model.fingerprint()).unwrap();
        let config = TrainConfig {
            optimizer: OptimizerKind::Adam,
            lr: r.json["adam_lr"].as_f64().unwrap(),
            max_grad_norm: None,
        };
        let mut trainer = Trainer::new(prompt, config);
        let losses: Vec<f32> = (0..20)
            .map(|_| {
                let step = trainer.step(&lm.model, &batch).unwrap();
                pollster::block_on(step.read()).unwrap().loss
            })
            .collect();
        let err = rel_err(&losses, &r.f32s("adam_losses"));
        eprintln!("{name} (wgpu): 20 Adam steps, loss trajectory relative error {err:e}");
        assert!(err <= GPU_REL_TOL, "{name}: Adam trajectory {err:e}");
        let err = rel_err(
            &values(trainer.prompt.values()),
            &r.tensor("adam_final_prompt").1,
        );
        assert!(err <= GPU_REL_TOL, "{name}: final prompt {err:e}");
        assert_eq!(
            pollster::block_on(lm.model.fingerprint()).unwrap(),
            before,
            "{name}: the base changed on the GPU"
        );

        // Greedy decoding through the KV cache on the GPU: the reference's tokens.
        let opts = greedy_tokens(10);
        let soft = Prompting::soft(initial_prompt(&lm, name).values());
        let input = r.json["gen_prompt"].as_str().unwrap();
        let out = pollster::block_on(generate(&lm, &soft, &[input], &opts)).unwrap();
        assert_eq!(out[0].ids, r.ids("greedy_with_prompt"), "{name}: greedy");
    }
}

/// A token embedding larger than one binding of the device (lavapipe's, and WebGPU's default, is
/// 128 MiB) is held in row parts (`model::Table`): tiny-a (GPT-2, its head tied to the
/// embedding) with its vocabulary widened past the limit computes on the GPU, in parts, what the
/// CPU computes with the table whole (the parts are exact on the CPU: `model::table`'s test).
/// Greedy tokens equal (the decoding's logits are the parts' products side by side); loss and
/// prompt gradient within 1e-3 relative: the gradient through the head sums ~800k products an
/// element, in another order on the GPU (f32 rounding grows as its square root: 9.4e-5 observed
/// on lavapipe, against ~1e-6 with the fixtures' 320 rows).
#[test]
fn an_embedding_larger_than_a_binding_loads_in_parts() {
    let limit = soft_prompt_lab::backend::binding_limit(gpu()).expect("a GPU's binding limit");
    if limit > 512 << 20 {
        eprintln!(
            "this adapter binds {} MiB: too large a table to make here",
            limit >> 20
        );
        return;
    }
    let name = "tiny-a";
    let mut t = tensors(name);
    let (_, _, shape, bytes) = t.iter_mut().find(|(k, ..)| k == "wte.weight").unwrap();
    let d = shape[1];
    let rows = (limit as usize / (d * 4)) * 3 / 2; // one and a half bindings
    let mut seed = 7u32;
    while bytes.len() < rows * d * 4 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = (seed >> 8) as f32 / (1u32 << 24) as f32 * 0.04 - 0.02;
        bytes.extend(v.to_le_bytes());
    }
    shape[0] = rows;
    let mut config: serde_json::Value = serde_json::from_slice(&read(name, "config.json")).unwrap();
    config["vocab_size"] = rows.into();
    let (config, weights) = (serde_json::to_vec(&config).unwrap(), serialize(&t));
    let on = |device: &Device| {
        let files = soft_prompt_lab::loader::ModelFiles {
            config_json: &config,
            safetensors: &weights,
            tokenizer_json: &read(name, "tokenizer.json"),
        };
        soft_prompt_lab::loader::LoadedModel::from_bytes(files, device)
            .expect("widened tiny-a loads")
    };
    let (cpu, gpu) = (on(&soft_prompt_lab::backend::cpu()), on(gpu()));
    assert_eq!(cpu.model.embedding().parts.len(), 1);
    assert_eq!(
        gpu.model.embedding().parts.len(),
        2,
        "{rows} rows of {d} in {limit} bytes"
    );

    let r = Reference::new(name);
    let (want_loss, want_grad, _) = first_loss_and_grad(&cpu, name, &r);
    let (loss, grad, _) = first_loss_and_grad(&gpu, name, &r);
    let (loss_err, grad_err) = (rel_err(&[loss], &[want_loss]), rel_err(&grad, &want_grad));
    eprintln!(
        "{rows}-row table in parts (wgpu): loss {loss_err:e}, gradient {grad_err:e} relative"
    );
    assert!(loss_err <= 1e-3 && grad_err <= 1e-3);

    let opts = greedy_tokens(6);
    let input = r.json["gen_prompt"].as_str().unwrap();
    let greedy = |lm: &soft_prompt_lab::loader::LoadedModel| {
        let soft = Prompting::soft(initial_prompt(lm, name).values());
        pollster::block_on(generate(lm, &soft, &[input], &opts)).unwrap()[0]
            .ids
            .clone()
    };
    assert_eq!(greedy(&gpu), greedy(&cpu), "greedy tokens");
}
