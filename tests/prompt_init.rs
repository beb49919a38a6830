//! Prompt inits keep PEFT's (and Lester et al.'s) semantics and are seeded.

mod common;

use common::*;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};

fn init(init: &PromptInit, n: usize, seed: u64) -> Vec<f32> {
    values(
        SoftPrompt::init(&load("tiny-a"), n, init, seed)
            .unwrap()
            .values(),
    )
}

fn wte_row(id: u32) -> Vec<f32> {
    values(load("tiny-a").model.embedding_rows(&[id]))
}

#[test]
fn every_init_is_deterministic_for_a_seed() {
    let inits = [
        PromptInit::RandomNormal,
        PromptInit::RandomUniform,
        PromptInit::SampleVocab { first_k: None },
        PromptInit::ClassLabels {
            labels: vec![" cold".into()],
            first_k: Some(50),
        },
    ];
    for i in &inits {
        assert_eq!(
            init(i, 6, 7),
            init(i, 6, 7),
            "{i:?}: same seed, same prompt"
        );
        assert_ne!(
            init(i, 6, 7),
            init(i, 6, 8),
            "{i:?}: another seed, another prompt"
        );
    }
}

#[test]
fn random_inits_have_their_distributions() {
    let n = init(&PromptInit::RandomNormal, 32, 1); // 2,048 samples
    let mean = n.iter().sum::<f32>() / n.len() as f32;
    let var = n.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n.len() as f32;
    // Standard errors at 2,048 samples: mean 0.022, variance 0.031; 4 sigma bounds.
    assert!(
        mean.abs() < 0.09 && (var - 1.0).abs() < 0.13,
        "N(0,1): mean {mean}, var {var}"
    );
    let u = init(&PromptInit::RandomUniform, 32, 1);
    assert!(u.iter().all(|x| (-0.5..0.5).contains(x)), "U[-0.5, 0.5)");
}

#[test]
fn text_init_repeats_the_text_tokens_to_fill_the_prompt() {
    let lm = load("tiny-a");
    let ids = lm.tokenizer.encode("opposite").unwrap();
    let n = 2 * ids.len() + 1;
    let got = init(&PromptInit::Text("opposite".into()), n, 0);
    let d = lm.model.config.d_model;
    for i in 0..n {
        assert_eq!(
            &got[i * d..(i + 1) * d],
            wte_row(ids[i % ids.len()]).as_slice(),
            "row {i}"
        );
    }
    // Truncated when the text is longer than the prompt.
    assert_eq!(
        init(&PromptInit::Text("opposite".into()), 1, 0),
        wte_row(ids[0])
    );
}

#[test]
fn sample_vocab_rows_are_embedding_rows_from_the_allowed_range() {
    let lm = load("tiny-a");
    let d = lm.model.config.d_model;
    let allowed: Vec<Vec<f32>> = (0..20).map(wte_row).collect();
    let got = init(&PromptInit::SampleVocab { first_k: Some(20) }, 10, 3);
    for row in got.chunks(d) {
        assert!(
            allowed.iter().any(|a| a.as_slice() == row),
            "a sampled row is not among the first 20 embeddings"
        );
    }
}

#[test]
fn class_label_init_averages_multi_token_labels() {
    let lm = load("tiny-a");
    let d = lm.model.config.d_model;
    let labels = vec![" cold".to_string(), " wonderful".to_string()];
    let got = init(
        &PromptInit::ClassLabels {
            labels: labels.clone(),
            first_k: None,
        },
        4,
        0,
    );
    for (i, label) in labels.iter().enumerate() {
        let ids = lm.tokenizer.encode(label).unwrap();
        let mut mean = vec![0f32; d];
        for id in &ids {
            for (m, x) in mean.iter_mut().zip(wte_row(*id)) {
                *m += x / ids.len() as f32;
            }
        }
        // The mean is reduced in a different order on the device: float rounding only.
        assert!(
            max_abs_diff(&got[i * d..(i + 1) * d], &mean) < 1e-6,
            "label {label:?} ({} tokens)",
            ids.len()
        );
    }
}
