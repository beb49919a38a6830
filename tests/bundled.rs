//! The bundled model and the built-in tasks: the files the page ships.

mod common;

use common::www;

use std::collections::HashSet;

use soft_prompt_lab::backend;
use soft_prompt_lab::batch::Sampler;
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, TaskKind, TaskSpec, parse_jsonl};
use soft_prompt_lab::train::{TrainConfig, Trainer};

fn tasks() -> Vec<(TaskSpec, Vec<Example>, Vec<Example>)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(www("tasks/index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.len() >= 4, "at least four built-in tasks");
    names
        .iter()
        .map(|name| {
            let dir = www(&format!("tasks/{name}"));
            let spec = TaskSpec::parse(&std::fs::read(dir.join("task.json")).unwrap()).unwrap();
            assert_eq!(spec.name, *name);
            let read = |f: &str| {
                let text = std::fs::read_to_string(dir.join(f)).unwrap();
                assert!(
                    text.lines().all(|l| !l.trim().is_empty()),
                    "{name}/{f}: no empty lines"
                );
                parse_jsonl(&text).unwrap()
            };
            let (train, test) = (read(&spec.train), read(&spec.test));
            (spec, train, test)
        })
        .collect()
}

#[test]
fn task_files_are_well_formed_and_their_splits_disjoint() {
    for (spec, train, test) in tasks() {
        let name = &spec.name;
        assert!(
            train.len() >= 100 && test.len() >= 40,
            "{name}: {} / {} examples",
            train.len(),
            test.len()
        );
        let train_inputs: HashSet<&str> = train.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(
            train_inputs.len(),
            train.len(),
            "{name}: an input repeats in train"
        );
        assert!(
            test.iter()
                .all(|e| !train_inputs.contains(e.input.as_str())),
            "{name}: a held-out input is also in train"
        );
        for e in train.iter().chain(&test) {
            // The bare task format: no instruction, just "word ->" and " answer".
            assert!(
                e.input.ends_with(" ->") && e.output.starts_with(' '),
                "{name}: {e:?}"
            );
        }
        if let TaskKind::Classify { labels } = spec.kind().unwrap() {
            assert!(
                train
                    .iter()
                    .chain(&test)
                    .all(|e| labels.contains(&e.output)),
                "{name}: an output outside the label set"
            );
        }
    }
}

#[test]
fn bundled_model_gives_the_logits_transformers_gives() {
    let lm = LoadedModel::from_dir(&www("models/wordnet-gpt"), &backend::cpu())
        .expect("bundled model loads");
    let worst = common::logits_max_abs_diff(&lm, &common::Reference::new("bundled"));
    eprintln!("bundled: logits max abs diff {worst:e}");
    assert!(
        worst <= common::LOGITS_ATOL,
        "bundled: logits max abs diff {worst:e}"
    );
}

#[test]
fn bundled_model_loads_and_a_soft_prompt_lowers_its_loss() {
    let dir = www("models/wordnet-gpt");
    let lm = LoadedModel::from_dir(&dir, &backend::cpu()).expect("bundled model loads");
    let size: u64 = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    assert!(
        size <= 8 * 1024 * 1024,
        "bundled model is {size} bytes, over 8 MB"
    );
    let (_, train, _) = tasks()
        .into_iter()
        .find(|(s, ..)| s.name == "antonyms")
        .unwrap();
    let pad = lm.tokenizer.pad_id();
    // A fixed batch, so the losses compare like with like.
    let batch = Sampler::for_examples(&lm.tokenizer, &train, 0)
        .unwrap()
        .next_batch(16, 8, pad)
        .unwrap();
    let prompt = SoftPrompt::init(&lm, 8, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let mut trainer = Trainer::new(
        prompt,
        TrainConfig {
            lr: 0.03,
            ..soft_prompt_lab::settings::Settings::default().train_config()
        },
    );
    let losses: Vec<f32> = (0..10)
        .map(|_| {
            pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read())
                .unwrap()
                .loss
        })
        .collect();
    assert!(
        losses[9] < 0.8 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[9]
    );
}
