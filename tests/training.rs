//! Training end to end on a fixture model: the loss falls, evaluation scores, the base is frozen.

mod common;

use burn::tensor::Tensor;
use common::*;
use soft_prompt_lab::batch::{Sampler, ScoredBatch, Sequence};
use soft_prompt_lab::eval::{EVAL_ROWS, evaluate};
use soft_prompt_lab::generate::Prompting;
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::pool::{
    AnswersFuture, Helpers, PartRow, PartShape, PartsFuture, compute_part, evaluate_part,
    pooled_evaluate,
};
use soft_prompt_lab::soft_prompt::{
    PromptInit, SoftPrompt, prompt_gradient, prompted_hidden, prompted_hidden_plain,
};
use soft_prompt_lab::tasks::{Example, TaskKind, parse_jsonl};
use soft_prompt_lab::train::{OptimizerKind, TrainConfig, Trainer, loss_and_grad};

fn examples() -> Vec<Example> {
    [
        ("hot ->", " cold"),
        ("big ->", " small"),
        ("up ->", " down"),
        ("fast ->", " slow"),
    ]
    .iter()
    .map(|(i, o)| Example {
        input: (*i).into(),
        output: (*o).into(),
    })
    .collect()
}

const STEPS: usize = 100;

#[test]
fn prompt_tuning_memorises_a_tiny_task_and_leaves_the_base_untouched() {
    let lm = load("tiny-a");
    let before = pollster::block_on(lm.model.fingerprint()).unwrap();
    // One example: a prompt on a random tiny model can make it say one thing, not learn a mapping.
    let train = examples()[..1].to_vec();
    let mut sampler = Sampler::for_examples(&lm.tokenizer, &train, 0).unwrap();
    let prompt = SoftPrompt::init(&lm, 8, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let config = TrainConfig {
        optimizer: OptimizerKind::AdamW { weight_decay: 0.0 },
        lr: 0.3,
        max_grad_norm: Some(1.0),
    };
    let mut trainer = Trainer::new(prompt, config);
    let kind = TaskKind::Generate;
    let acc_before = pollster::block_on(evaluate(
        &lm,
        &Prompting::soft(trainer.prompt.values()),
        &train,
        &kind,
    ))
    .unwrap()
    .accuracy();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let batch = sampler.next_batch(1, 8, 0).unwrap();
        let stats = pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap();
        assert!(stats.grad_norm.is_finite() && stats.grad_norm > 0.0);
        losses.push(stats.loss);
    }
    eprintln!("loss {} -> {}", losses[0], losses[STEPS - 1]);
    assert!(
        losses[STEPS - 1] < 0.5 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[STEPS - 1]
    );
    let report = pollster::block_on(evaluate(
        &lm,
        &Prompting::soft(trainer.prompt.values()),
        &train,
        &kind,
    ))
    .unwrap();
    assert!(
        acc_before == 0.0 && report.accuracy() == 1.0,
        "accuracy {acc_before} -> {}: {:?}",
        report.accuracy(),
        report.predictions
    );
    let labels = vec![
        " cold".into(),
        " small".into(),
        " down".into(),
        " slow".into(),
    ];
    let classify = pollster::block_on(evaluate(
        &lm,
        &Prompting::soft(trainer.prompt.values()),
        &train,
        &TaskKind::Classify { labels },
    ))
    .unwrap();
    assert_eq!(classify.accuracy(), 1.0, "{:?}", classify.predictions);
    assert_eq!(
        pollster::block_on(lm.model.fingerprint()).unwrap(),
        before,
        "base weights changed"
    );
}

#[test]
fn a_text_prompt_is_read_before_the_input() {
    let lm = load("tiny-a");
    let ex = &examples()[0];
    let plain = Sequence::for_example(&lm.tokenizer, "", ex).unwrap();
    let prefixed = Sequence::for_example(&lm.tokenizer, "the opposite: ", ex).unwrap();
    assert!(prefixed.n_context > plain.n_context);
    assert_eq!(
        prefixed.ids[prefixed.n_context..],
        plain.ids[plain.n_context..],
        "targets do not depend on the prefix"
    );
}

/// A batch split over threads gives the whole batch's loss and gradient: its parts (padded each
/// to its own longest row, each computing the prompt again) sum to the same values. Tolerance
/// 1e-5 relative: only the order of float additions differs.
#[test]
fn a_batch_split_in_parts_has_the_whole_batchs_loss_and_gradient() {
    let lm = load("tiny-a");
    let mut train = examples();
    train.push(Example {
        input: "a much longer input than the others ->".into(),
        output: " short".into(),
    });
    let batch = Sampler::for_examples(&lm.tokenizer, &train, 0)
        .unwrap()
        .next_batch(5, 4, 0)
        .unwrap();
    let prompt = SoftPrompt::init(&lm, 4, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let whole = loss_and_grad(&lm.model, prompt.embeddings.val(), &batch, 1).unwrap();
    for parts in [2, 3, 5, 9] {
        let split = loss_and_grad(&lm.model, prompt.embeddings.val(), &batch, parts).unwrap();
        assert!(batch.split(parts).len() == parts.min(5));
        let loss_err = rel_err(&values(split.0), &values(whole.0.clone()));
        let grad_err = rel_err(&values(split.1), &values(whole.1.clone()));
        assert!(
            loss_err < 1e-5 && grad_err < 1e-5,
            "{parts} parts: loss {loss_err}, grad {grad_err}"
        );
    }
}

/// The forward pass computes the prompt's positions once and shares them across the rows
/// (`prompted_hidden`); PEFT runs the plain `cat(P, wte(ids))` on every row
/// (`prompted_hidden_plain`). The two must agree on both families: the hidden states at every
/// real position, the scored log-probabilities and the prompt's gradient. Tolerance 1e-5
/// relative: the same arithmetic, with the rows' sums in another order.
#[test]
fn the_shared_prefix_forward_pass_equals_the_plain_prompted_input() {
    for name in ["tiny-a", "tiny-llama"] {
        let lm = load(name);
        let mut train = examples();
        train[0].input = "a much longer input than the others ->".into();
        let n_virtual = 3;
        let batch = Sampler::for_examples(&lm.tokenizer, &train, 0)
            .unwrap()
            .next_batch(4, n_virtual, 0)
            .unwrap();
        let prompt = SoftPrompt::init(&lm, n_virtual, &PromptInit::RandomNormal, 1).unwrap();
        let p = prompt.embeddings.val();
        let shared = prompted_hidden(&lm.model, Some(p.clone()), &batch.padded).unwrap();
        let plain = prompted_hidden_plain(&lm.model, p.clone(), &batch.padded).unwrap();
        let [b, width, d] = shared.dims();
        assert_eq!(plain.dims(), [b, width, d]);
        for (row, len) in batch.padded.lengths.iter().enumerate() {
            let real = |h: &Tensor<3>| values(h.clone().slice([row..row + 1, 0..n_virtual + len]));
            let err = rel_err(&real(&shared), &real(&plain));
            assert!(
                err < 1e-5,
                "{name} row {row}: hidden states differ by {err}"
            );
        }
        let plain_loss = |p: Tensor<2>| {
            let leaf = p.detach().require_grad();
            let hidden = prompted_hidden_plain(&lm.model, leaf.clone(), &batch.padded).unwrap();
            let logp = lm
                .model
                .target_logprobs(hidden, &batch.positions, &batch.targets);
            let loss = logp.mean().neg();
            let grad = leaf.grad(&loss.backward()).unwrap();
            (values(loss.detach()), values(grad))
        };
        let (loss, grad) =
            prompt_gradient(&lm.model, p.clone(), &batch, batch.targets.len()).unwrap();
        let (want_loss, want_grad) = plain_loss(p);
        let (loss_err, grad_err) = (
            rel_err(&values(loss), &want_loss),
            rel_err(&values(grad), &want_grad),
        );
        assert!(
            loss_err < 1e-5 && grad_err < 1e-5,
            "{name}: loss {loss_err}, gradient {grad_err}"
        );
    }
}

/// Over a base whose weights require grad the step stays on one thread: split over threads, the
/// parts' graphs would share the weights' nodes, and burn's autodiff can deadlock merging them
/// (it did, in the bench's unfrozen comparison). A hang here is that deadlock.
#[test]
fn a_step_over_an_unfrozen_base_finishes() {
    use burn::module::Module;
    let mut lm = load("tiny-a");
    assert!(lm.model.is_frozen());
    lm.model = lm.model.set_require_grad(true);
    assert!(!lm.model.is_frozen());
    let mut sampler = Sampler::for_examples(&lm.tokenizer, &examples(), 0).unwrap();
    let prompt = SoftPrompt::init(&lm, 4, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let mut trainer = Trainer::new(
        prompt,
        soft_prompt_lab::settings::Settings::default().train_config(),
    );
    for _ in 0..20 {
        let batch = sampler.next_batch(4, 4, 0).unwrap();
        pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap();
    }
}

/// Model tuning trains a copy: its fingerprint changes and its loss falls, while the frozen base
/// the session holds stays bit-identical (the contrast the scale experiment draws).
#[test]
fn model_tuning_changes_its_copy_and_leaves_the_base_unchanged() {
    use soft_prompt_lab::model_tuning::{ModelTuner, ModelTuningConfig};
    let lm = load("tiny-a");
    let before = pollster::block_on(lm.model.fingerprint()).unwrap();
    let examples = parse_jsonl(
        "{\"input\":\"hot ->\",\"output\":\" cold\"}\n{\"input\":\"big ->\",\"output\":\" small\"}\n",
    )
    .unwrap();
    let seqs: Vec<Sequence> = examples
        .iter()
        .map(|ex| Sequence::for_example(&lm.tokenizer, "", ex).unwrap())
        .collect();
    let batch = ScoredBatch::new(&seqs, 0, lm.tokenizer.pad_id()).unwrap();
    let config = ModelTuningConfig {
        lr: 1e-3,
        weight_decay: 0.01,
        max_grad_norm: Some(1.0),
    };
    let mut tuner = ModelTuner::new(&lm.model, config);
    let losses: Vec<f32> = (0..10)
        .map(|_| {
            pollster::block_on(tuner.step(&batch).unwrap().read())
                .unwrap()
                .loss
        })
        .collect();
    assert!(losses[9] < losses[0] * 0.9, "loss falls: {losses:?}");
    let tuned = pollster::block_on(tuner.model.fingerprint()).unwrap();
    assert_ne!(tuned, before, "the tuned copy changed");
    assert_eq!(
        pollster::block_on(lm.model.fingerprint()).unwrap(),
        before,
        "the base did not"
    );
    assert!(lm.model.is_frozen());
}

/// Helpers that compute their parts in this process, as the page's workers do in theirs (the
/// same `compute_part` and `evaluate_part`), failing the parts listed in `fail` as a dead
/// worker would.
struct LocalHelpers<'a> {
    lm: &'a LoadedModel,
    count: usize,
    fail: Vec<usize>,
}

impl Helpers for LocalHelpers<'_> {
    fn count(&self) -> usize {
        self.count
    }
    fn compute<'b>(
        &'b self,
        prompt: Vec<f32>,
        shape: PartShape,
        parts: Vec<Vec<PartRow>>,
    ) -> PartsFuture<'b> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (i, rows) in parts.into_iter().enumerate() {
                let result = compute_part(&self.lm.model, prompt.clone(), shape, rows)
                    .await
                    .ok();
                out.push(result.filter(|_| !self.fail.contains(&i)));
            }
            out
        })
    }
    fn evaluate<'b>(
        &'b self,
        prompt: Vec<f32>,
        n_virtual: usize,
        kind: &TaskKind,
        parts: Vec<Vec<Example>>,
    ) -> AnswersFuture<'b> {
        let kind = kind.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            for (i, examples) in parts.into_iter().enumerate() {
                let answers = evaluate_part(self.lm, &prompt, n_virtual, &kind, &examples)
                    .await
                    .ok();
                out.push(answers.filter(|_| !self.fail.contains(&i)));
            }
            out
        })
    }
}

/// A pool of 1, 2 or 3 engines (this one and 0 to 2 helpers, one of them dead in the last case)
/// takes the same 20 steps as one engine: parts add up to the batch's loss and gradient, only
/// the order of float additions differs (1e-5 relative over the trajectory).
#[test]
fn a_pool_of_engines_follows_one_engines_trajectory() {
    let lm = load("tiny-a");
    let mut train = examples();
    train.push(Example {
        input: "a much longer input than the others ->".into(),
        output: " short".into(),
    });
    let run = |helpers: Option<&dyn Helpers>| {
        let mut sampler = Sampler::for_examples(&lm.tokenizer, &train, 0).unwrap();
        let prompt =
            SoftPrompt::init(&lm, 4, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
        let mut trainer = Trainer::new(
            prompt,
            soft_prompt_lab::settings::Settings::default().train_config(),
        );
        let losses: Vec<f32> = (0..20)
            .map(|_| {
                pollster::block_on(trainer.step_next(&lm, &mut sampler, 5, helpers))
                    .unwrap()
                    .loss
            })
            .collect();
        (losses, values(trainer.prompt.values()))
    };
    let (alone, prompt) = run(None);
    for (count, fail) in [(1, vec![]), (2, vec![]), (2, vec![1])] {
        let helpers = LocalHelpers {
            lm: &lm,
            count,
            fail,
        };
        let (losses, pooled) = run(Some(&helpers));
        let (l, p) = (rel_err(&losses, &alone), rel_err(&pooled, &prompt));
        assert!(
            l < 1e-5 && p < 1e-5,
            "{count} helpers: losses {l}, prompt {p}"
        );
    }
}

/// Held-out scoring split by example between 1, 2 or 3 engines (one helper dead in the last
/// case) gives every example the answer one engine gives it, in order, for generation and for
/// classification, though the parts cut across one engine's passes of `EVAL_ROWS`: an example's
/// answer does not depend on the rows scored with it.
#[test]
fn a_pool_of_engines_scores_held_out_examples_as_one_engine() {
    let lm = load("tiny-a");
    // Two passes of evaluation rows on one engine (a full one, then 6 rows); in the pool, parts
    // of half each (two engines) or a third (three).
    let n = EVAL_ROWS + 6;
    let test: Vec<Example> = (0..n)
        .map(|i| {
            let ex = &examples()[i % 4];
            // One long answer, in the first pass and the first of two parts: the rows that share
            // a pass with it on one engine but not in the pool would get its budget with a budget
            // per pass, not per row.
            let output = if i == n / 2 - 2 {
                ex.output.repeat(6)
            } else {
                ex.output.clone()
            };
            Example {
                input: format!("{} {i} ->", ex.input.trim_end_matches(" ->")),
                output,
            }
        })
        .collect();
    let prompt = SoftPrompt::init(&lm, 4, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let labels = vec![" cold".to_string(), " small".to_string()];
    for kind in [TaskKind::Generate, TaskKind::Classify { labels }] {
        let prompting = Prompting::soft(prompt.values());
        let alone = pollster::block_on(evaluate(&lm, &prompting, &test, &kind)).unwrap();
        for (count, fail) in [(1, vec![]), (2, vec![]), (2, vec![0])] {
            let helpers = LocalHelpers {
                lm: &lm,
                count,
                fail,
            };
            let pooled = pollster::block_on(pooled_evaluate(
                &lm,
                prompt.values(),
                &test,
                &kind,
                Some(&helpers),
            ))
            .unwrap();
            assert_eq!(
                pooled.predictions, alone.predictions,
                "{kind:?}, {count} helpers"
            );
        }
    }
}
