//! Prompt-tuning step time with the base frozen (the design) against the same step with every
//! base weight requiring grad (what full fine-tuning's backward would compute), side by side.
//! Run: `cargo bench --bench step` (prints figures; it asserts nothing about time).

use std::time::Instant;

use burn::module::Module;
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::Sampler;
use soft_prompt_lab::loader::{LoadedModel, ModelFiles};
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::Example;
use soft_prompt_lab::train::{TrainConfig, Trainer};

const STEPS: usize = 20;

/// A random GPT-2 of the given size in Hugging Face layout, reusing the fixture tokenizer.
fn synthetic(d: usize, layers: usize, vocab: usize) -> LoadedModel {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/fixtures/tiny-a");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let config = format!(
        r#"{{"model_type":"gpt2","vocab_size":{vocab},"n_positions":128,"n_embd":{d},"n_layer":{layers},"n_head":4,"eos_token_id":0}}"#
    );
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("wte.weight".into(), vec![vocab, d]),
        ("wpe.weight".into(), vec![128, d]),
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
    let mut seed = 1u32;
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| {
            (0..s.iter().product::<usize>())
                .flat_map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 * 0.2 - 0.1).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&bytes)
        .map(|((k, s), b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let st = safetensors::serialize(views, None).unwrap();
    LoadedModel::from_bytes(
        ModelFiles {
            config_json: config.as_bytes(),
            safetensors: &st,
            tokenizer_json: &tokenizer,
        },
        &backend::cpu(),
    )
    .unwrap()
}

fn median_step_ms(lm: &LoadedModel, n_virtual: usize) -> f64 {
    let examples: Vec<Example> = [
        "hot -> cold",
        "big -> small",
        "the cat sat -> on the mat",
        "fast -> slow",
    ]
    .iter()
    .map(|s| {
        let (i, o) = s.split_once("->").unwrap();
        Example {
            input: format!("{i}->"),
            output: o.into(),
        }
    })
    .collect();
    let mut sampler = Sampler::for_examples(&lm.tokenizer, &examples, 0).unwrap();
    let prompt =
        SoftPrompt::init(lm, n_virtual, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let mut trainer = Trainer::new(prompt, TrainConfig::default()).unwrap();
    let mut times = Vec::new();
    for _ in 0..STEPS + 2 {
        let batch = sampler.next_batch(4, n_virtual, 0).unwrap();
        let t = Instant::now();
        pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.drain(..2); // warm-up
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    println!(
        "{:<28} {:>12} {:>14} {:>7}",
        "model", "frozen ms", "unfrozen ms", "ratio"
    );
    for (label, d, layers, vocab) in [
        ("d64 x2, vocab 320", 64, 2, 320),
        ("d128 x4, vocab 4096", 128, 4, 4096),
        ("d256 x6, vocab 8192", 256, 6, 8192),
    ] {
        let mut lm = synthetic(d, layers, vocab);
        let frozen = median_step_ms(&lm, 8);
        // The same step if the base weights required grad: backward then also computes every
        // weight gradient (the optimizer still only sees the prompt).
        lm.model = lm.model.set_require_grad(true);
        let unfrozen = median_step_ms(&lm, 8);
        println!(
            "{label:<28} {frozen:>12.2} {unfrozen:>14.2} {:>6.2}x",
            unfrozen / frozen
        );
    }
}
