//! The native figures of `./build.sh bench` (prints them; it asserts nothing about time):
//! the prompt-tuning step on the bundled model (antonyms, batch 16, 8 virtual tokens, Adam),
//! ours against PyTorch + PEFT (`tools/bench/reference.py`) at 1 and 2 threads, run in
//! alternating rounds so the machine's drift falls on both; FLOPs per step from the shapes;
//! forward-only evaluation throughput; and the step with the base frozen against unfrozen.
//!
//! `cargo bench --profile dev --bench step [-- --python PATH] [--rounds N]`. Without a Python
//! that imports torch and peft, the reference columns say "not measured".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::{Sampler, ScoredBatch, Sequence};
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::Prompting;
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::model::ModelConfig;
use soft_prompt_lab::settings::Settings;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, TaskSpec, parse_jsonl};
use soft_prompt_lab::train::Trainer;

const BATCH: usize = 16;
const N_VIRTUAL: usize = 8;
/// Timed steps per round, after `WARMUP` untimed ones.
const STEPS: usize = 30;
const WARMUP: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
}

fn task(name: &str) -> (Vec<Example>, Vec<Example>, TaskSpec) {
    let dir = root().join("www/tasks").join(name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let spec = TaskSpec::parse(read("task.json").as_bytes()).unwrap();
    (
        parse_jsonl(&read(&spec.train)).unwrap(),
        parse_jsonl(&read(&spec.test)).unwrap(),
        spec,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms of `STEPS` training steps, cycling over `batches`.
fn our_step_ms(lm: &LoadedModel, batches: &[ScoredBatch]) -> f64 {
    let prompt =
        SoftPrompt::init(lm, N_VIRTUAL, &PromptInit::SampleVocab { first_k: None }, 0).unwrap();
    let mut trainer = Trainer::new(prompt, Settings::default().train_config());
    let mut times = Vec::new();
    for (i, batch) in batches.iter().cycle().take(WARMUP + STEPS).enumerate() {
        let t = Instant::now();
        pollster::block_on(trainer.step(&lm.model, batch).unwrap().read()).unwrap();
        if i >= WARMUP {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

/// FLOPs of one step counted from the shapes, as the engine computes it: the prompt's `n`
/// positions once, then each row's `w` token positions attending to prompt and tokens. Per layer
/// 24·rows·d² for the four projections (QKV, output, two MLP) and 4·queries·keys·d for
/// attention; the tied head at the scored rows only; backward to the inputs (no weight
/// gradients) costs about as much as forward.
fn step_flops(c: &ModelConfig, batch: &ScoredBatch, n: usize) -> f64 {
    let (b, w, n) = (
        batch.padded.rows() as f64,
        batch.padded.width as f64,
        n as f64,
    );
    let d = c.d_model as f64;
    let rows = n + b * w;
    let layer = 24.0 * rows * d * d + 4.0 * (n * n + b * w * (n + w)) * d;
    let head = 2.0 * batch.targets.len() as f64 * d * c.vocab_size as f64;
    2.0 * (c.n_layer as f64 * layer + head)
}

/// The CPU's peak f32 rate: cores × FMA width (AVX-512: 16 lanes, AVX2: 8) × 2 FMA units ×
/// 2 FLOPs × the clock /proc/cpuinfo reports. An upper bound: many parts have one 512-bit unit.
fn peak_gflops() -> (f64, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let mhz: f64 = field("cpu MHz").parse().unwrap_or(0.0);
    let lanes = if field("flags").contains("avx512f") {
        16.0
    } else {
        8.0
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let peak = cores * lanes * 2.0 * 2.0 * 2.0 * mhz / 1000.0;
    let how = format!(
        "{} × {cores} cores × {lanes} f32 lanes × 2 FMA units × 2 FLOPs × {mhz} MHz",
        field("model name")
    );
    (peak, how)
}

/// Examples per second scoring the sentiment held-out set (forward only: two labels each).
fn our_eval_rate(lm: &LoadedModel) -> f64 {
    let (_, test, spec) = task("sentiment");
    let kind = spec.kind().unwrap();
    let prompt = SoftPrompt::init(lm, N_VIRTUAL, &PromptInit::SampleVocab { first_k: None }, 0)
        .unwrap()
        .values();
    let prompting = Prompting::soft(prompt);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        pollster::block_on(evaluate(lm, &prompting, &test, &kind)).unwrap();
        rates.push(test.len() as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

/// Four training batches of antonyms, the same in every process (seed 0).
fn batches(lm: &LoadedModel) -> Vec<ScoredBatch> {
    let (train, _, _) = task("antonyms");
    let mut sampler = Sampler::for_examples(&lm.tokenizer, &train, 0).unwrap();
    let pad = lm.tokenizer.pad_id();
    (0..4)
        .map(|_| sampler.next_batch(BATCH, N_VIRTUAL, pad).unwrap())
        .collect()
}

/// The batches, as token ids with the scored split, and the evaluation rows, for the reference.
fn write_spec(lm: &LoadedModel, batches: &[ScoredBatch], path: &Path) {
    let pad = lm.tokenizer.pad_id();
    let mut rows_json = Vec::new();
    for batch in batches {
        let w = batch.padded.width;
        let rows: Vec<serde_json::Value> = (0..batch.padded.rows())
            .map(|r| {
                let ids = &batch.padded.ids[r * w..r * w + batch.padded.lengths[r]];
                // The first scored position of row r gives its context length.
                let first = batch.row_of.iter().position(|&x| x == r).unwrap();
                let n_context = batch.positions[first] + 1 - r * (w + N_VIRTUAL) - N_VIRTUAL;
                serde_json::json!({"ids": ids, "n_context": n_context})
            })
            .collect();
        rows_json.push(rows);
    }
    let sentiment: Vec<serde_json::Value> = {
        let (_, test, spec) = task("sentiment");
        let labels = match spec.kind().unwrap() {
            soft_prompt_lab::tasks::TaskKind::Classify { labels } => labels,
            _ => unreachable!(),
        };
        test.iter()
            .flat_map(|ex| {
                labels.iter().map(|l| {
                    let s = Sequence::for_example(
                        &lm.tokenizer,
                        "",
                        &Example {
                            input: ex.input.clone(),
                            output: l.clone(),
                        },
                    )
                    .unwrap();
                    serde_json::json!({"ids": s.ids, "n_context": s.n_context})
                })
            })
            .collect()
    };
    let doc = serde_json::json!({
        "model": root().join("www/models/wordnet-gpt"),
        "n_virtual": N_VIRTUAL, "steps": STEPS, "warmup": WARMUP, "pad_id": pad,
        "batches": rows_json, "eval_rows": sentiment, "eval_examples": sentiment.len() / 2,
    });
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

/// `(median step ms, eval examples/s)` printed by a measuring process, or none when it fails.
fn measured(command: &mut Command) -> Option<(f64, f64)> {
    let out = command.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["step_ms"].as_f64()?, v["eval_per_s"].as_f64()?))
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One round of ours in this process (its thread count set by `backend::THREADS_VAR`), as JSON.
fn ours_round() {
    let lm = bundled();
    let step_ms = our_step_ms(&lm, &batches(&lm));
    let eval_per_s = our_eval_rate(&lm);
    println!(
        "{}",
        serde_json::json!({"step_ms": step_ms, "eval_per_s": eval_per_s})
    );
}

fn bundled() -> LoadedModel {
    LoadedModel::from_dir(&root().join("www/models/wordnet-gpt"), &backend::cpu()).unwrap()
}

/// A random GPT-2 in Hugging Face layout with the given shape (the fixture tokenizer, whose
/// vocabulary fits any of these), on `device`.
#[cfg(feature = "gpu")]
fn synthetic(
    d: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
    device: &burn::tensor::Device,
) -> LoadedModel {
    let tokenizer =
        std::fs::read(root().join("tests/reference/fixtures/tiny-a/tokenizer.json")).unwrap();
    let config = format!(
        r#"{{"model_type":"gpt2","vocab_size":{vocab},"n_positions":1024,"n_embd":{d},"n_layer":{layers},"n_head":{heads},"eos_token_id":0}}"#
    );
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
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
    let mut seed = 1u32;
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| {
            (0..s.iter().product::<usize>())
                .flat_map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 * 0.04 - 0.02).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&bytes)
        .map(|((k, s), b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (k.clone(), view.unwrap())
        })
        .collect();
    let st = safetensors::serialize(views, None).unwrap();
    let files = soft_prompt_lab::loader::ModelFiles {
        config_json: config.as_bytes(),
        safetensors: &st,
        tokenizer_json: &tokenizer,
    };
    LoadedModel::from_bytes(files, device).unwrap()
}

/// The step on the native WebGPU backend (Vulkan on Linux): the bundled model and a
/// GPT-2-small-shaped random one, same batches (antonyms, batch 16, 8 virtual tokens).
#[cfg(feature = "gpu")]
fn gpu_round() {
    let device = burn::tensor::Device::wgpu_options()
        .init()
        .expect("a GPU adapter")
        .autodiff();
    let cpu = bundled();
    let batches = batches(&cpu);
    let dir = root().join("www/models/wordnet-gpt");
    let small = LoadedModel::from_dir(&dir, &device).unwrap();
    println!(
        "### Native WebGPU (wgpu) training step, {}\n",
        std::env::var("GPU_NAME").unwrap_or_default()
    );
    println!("| model | ms / step | GFLOP/s |");
    println!("| --- | --- | --- |");
    let ms = our_step_ms(&small, &batches);
    let flops = step_flops(&small.model.config, &batches[0], N_VIRTUAL);
    println!(
        "| bundled (2.6 M parameters) | {ms:.1} | {:.1} |",
        flops / ms / 1e6
    );
    let gpt2 = synthetic(768, 12, 12, 50257, &device);
    let ms = our_step_ms(&gpt2, &batches);
    let flops = step_flops(&gpt2.model.config, &batches[0], N_VIRTUAL);
    println!(
        "| GPT-2-small-shaped, random weights (124 M) | {ms:.1} | {:.1} |",
        flops / ms / 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "--ours") {
        return ours_round();
    }
    #[cfg(feature = "gpu")]
    if std::env::args().any(|a| a == "--gpu") {
        return gpu_round();
    }
    let python = arg("--python").unwrap_or_else(|| "python3".into());
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(3);
    let lm = bundled();
    let batches = batches(&lm);
    let spec = std::env::temp_dir().join(format!("spl-bench-{}.json", std::process::id()));
    write_spec(&lm, &batches, &spec);

    // Alternating rounds, each in a fresh process: ours and PyTorch at 1 thread, then at 2.
    let me = std::env::current_exe().unwrap();
    let mut runs: Vec<[Vec<(f64, f64)>; 2]> = vec![Default::default(), Default::default()];
    for round in 0..rounds {
        for (t, threads) in [1usize, 2].into_iter().enumerate() {
            let mut ours = Command::new(&me);
            ours.arg("--ours")
                .env(backend::THREADS_VAR, threads.to_string());
            runs[t][0].extend(measured(&mut ours));
            let mut torch = Command::new(&python);
            torch
                .arg(root().join("tools/bench/reference.py"))
                .arg(&spec)
                .arg(threads.to_string());
            runs[t][1].extend(measured(&mut torch));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    std::fs::remove_file(&spec).ok();

    let flops = batches
        .iter()
        .map(|b| step_flops(&lm.model.config, b, N_VIRTUAL))
        .sum::<f64>()
        / batches.len() as f64;
    let (peak, how) = peak_gflops();
    let med = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        (!v.is_empty()).then(|| median(v.iter().map(f).collect()))
    };
    let show = |x: Option<f64>, digits: usize| {
        x.map_or("not measured".into(), |x| format!("{x:.digits$}"))
    };
    let gflops = |ms: f64| flops / ms / 1e6;

    println!(
        "### Native training step (bundled model, antonyms, batch {BATCH}, {N_VIRTUAL} virtual tokens, Adam)\n"
    );
    println!(
        "Medians of {rounds} alternating rounds of {STEPS} steps (after {WARMUP} warm-up steps each), each round a fresh process. At 2 threads ours splits each batch's rows in two halves (shortest rows first), one autodiff graph per thread, and adds the halves' prompt gradients (burn flex's own rayon threads made the step slower at these sizes, so they are off). PyTorch's GFLOP/s use our FLOP count, though it computes more (the prompt on every row, logits at every position).\n"
    );
    println!(
        "| threads | ours ms / step | PyTorch + PEFT ms / step | ours / PyTorch | ours GFLOP/s | PyTorch GFLOP/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (t, threads) in [1, 2].into_iter().enumerate() {
        let (ours, torch) = (med(&runs[t][0], |r| r.0), med(&runs[t][1], |r| r.0));
        println!(
            "| {threads} | {} | {} | {} | {} | {} |",
            show(ours, 1),
            show(torch, 1),
            show(ours.zip(torch).map(|(o, t)| o / t), 2),
            show(ours.map(gflops), 1),
            show(torch.map(gflops), 1)
        );
    }
    println!(
        "\nFLOPs per step (from the shapes, as computed at 1 thread: the prompt once per batch, backward to the inputs only; both thread counts' GFLOP/s use it, though at 2 threads each half computes the prompt again and is padded to its own longest row): {:.2} GFLOP. Peak: {peak:.0} GFLOP/s ({how}); gemm's kernels here use AVX2 (8 lanes), half of an AVX-512 core's peak (its AVX-512 kernels, burn-flex's `x86-v4` feature, measured slower on this machine).\n",
        flops / 1e9
    );
    println!("### Forward-only evaluation (sentiment held-out set, 62 examples, 2 labels each)\n");
    println!("| threads | ours examples / s | PyTorch + PEFT examples / s |");
    println!("| --- | --- | --- |");
    for (t, threads) in [1, 2].into_iter().enumerate() {
        println!(
            "| {threads} | {} | {} |",
            show(med(&runs[t][0], |r| r.1), 0),
            show(med(&runs[t][1], |r| r.1), 0)
        );
    }

    // The design's point: with the base frozen, backward computes no weight gradients. Both on
    // one thread: an unfrozen base never splits its batch (train.rs says why).
    // SAFETY: no other thread runs here (every round above has finished).
    unsafe { std::env::set_var(backend::THREADS_VAR, "1") };
    let frozen_ms = our_step_ms(&lm, &batches);
    let mut unfrozen = bundled();
    unfrozen.model = unfrozen.model.set_require_grad(true);
    let unfrozen_ms = our_step_ms(&unfrozen, &batches);
    println!(
        "\n### Frozen base against the same step with every base weight requiring grad (ours, one thread)\n"
    );
    println!("| base | ms / step |");
    println!("| --- | --- |");
    println!("| frozen (prompt tuning) | {frozen_ms:.1} |");
    println!("| requires grad (what full fine-tuning's backward computes) | {unfrozen_ms:.1} |");
}
