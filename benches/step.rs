//! The native figures of `./build.sh bench` (prints them; it asserts nothing about time):
//! the prompt-tuning step (antonyms, batch 16, 8 virtual tokens, Adam) on the bundled model and
//! on a SmolLM2-135M-shaped Llama with random weights (written by the bench), ours against
//! PyTorch + PEFT (`tools/bench/reference.py`) at 1 and 2 threads, run in alternating rounds so
//! the machine's drift falls on both, with each process's peak memory; FLOPs per step from the
//! shapes; forward-only evaluation throughput; and the step with the base frozen against unfrozen.
//!
//! `cargo bench --profile dev --bench step [-- --python PATH] [--rounds N]`. Without a Python
//! that imports torch and peft, the reference columns say "not measured".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use burn::module::Module;
#[cfg(feature = "gpu")]
use common::GPT2_SMALL;
use common::{
    BATCH, N_VIRTUAL, SMOLLM2_135M, arg, batches, bundled_dir, fresh_trainer, root, task,
};
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::{ScoredBatch, Sequence};
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::Prompting;
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::model::{Arch, ModelConfig};
use soft_prompt_lab::tasks::Example;

/// One model the native comparison measures.
struct Case {
    title: &'static str,
    dir: PathBuf,
    /// Timed steps per round, after `warmup` untimed ones.
    steps: usize,
    warmup: usize,
    rounds: usize,
    /// Whether forward-only evaluation is measured too.
    eval: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms of `steps` training steps after `warmup` untimed ones, cycling over `batches`.
fn our_step_ms(lm: &LoadedModel, batches: &[ScoredBatch], warmup: usize, steps: usize) -> f64 {
    let mut trainer = fresh_trainer(lm);
    let mut times = Vec::new();
    for (i, batch) in batches.iter().cycle().take(warmup + steps).enumerate() {
        let t = Instant::now();
        pollster::block_on(trainer.step(&lm.model, batch).unwrap().read()).unwrap();
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

/// FLOPs of one step counted from the shapes, as the engine computes it: the prompt's `n`
/// positions once, then each row's `w` token positions attending to prompt and tokens. Per layer
/// 2·rows·(the projections' weights) and 4·queries·keys·(query width) for attention; the head at
/// the scored rows only; backward to the inputs (no weight gradients) costs about as much as
/// forward.
fn step_flops(c: &ModelConfig, batch: &ScoredBatch, n: usize) -> f64 {
    let (b, w, n) = (
        batch.padded.rows() as f64,
        batch.padded.width as f64,
        n as f64,
    );
    let d = c.d_model as f64;
    let q = (c.n_head * c.head_dim) as f64;
    let kv = (c.n_kv_head * c.head_dim) as f64;
    // Weights a row meets per layer: q, k, v and output projections, then the MLP's.
    let weights = match &c.arch {
        Arch::Gpt2(g) => 4.0 * d * d + 2.0 * d * g.n_inner as f64,
        Arch::Llama(l) => 2.0 * d * q + 2.0 * d * kv + 3.0 * d * l.intermediate_size as f64,
    };
    let rows = n + b * w;
    let layer = 2.0 * rows * weights + 4.0 * (n * n + b * w * (n + w)) * q;
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
    let prompt = fresh_trainer(lm).prompt.values();
    let prompting = Prompting::soft(prompt);
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        pollster::block_on(evaluate(lm, &prompting, &test, &kind)).unwrap();
        rates.push(test.len() as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

/// The sentiment held-out rows (each example with each label) as token ids with the scored split.
fn eval_rows(lm: &LoadedModel) -> Vec<serde_json::Value> {
    let (_, test, spec) = task("sentiment");
    let labels = match spec.kind().unwrap() {
        soft_prompt_lab::tasks::TaskKind::Classify { labels } => labels,
        _ => unreachable!(),
    };
    test.iter()
        .flat_map(|ex| {
            labels.iter().map(|l| {
                let example = Example {
                    input: ex.input.clone(),
                    output: l.clone(),
                };
                let s = Sequence::for_example(&lm.tokenizer, "", &example).unwrap();
                serde_json::json!({"ids": s.ids, "n_context": s.n_context})
            })
        })
        .collect()
}

/// The case's batches, as token ids with the scored split, and its evaluation rows, for the
/// reference.
fn write_spec(lm: &LoadedModel, case: &Case, batches: &[ScoredBatch], path: &Path) {
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
    let eval = if case.eval { eval_rows(lm) } else { Vec::new() };
    let doc = serde_json::json!({
        "model": case.dir,
        "n_virtual": N_VIRTUAL, "steps": case.steps, "warmup": case.warmup,
        "pad_id": lm.tokenizer.pad_id(),
        "batches": rows_json, "eval_rows": eval, "eval_examples": eval.len() / 2,
    });
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

/// What one measuring process printed.
#[derive(Clone, Copy)]
struct Round {
    step_ms: f64,
    eval_per_s: Option<f64>,
    peak_mb: f64,
}

/// The round a measuring process printed, or none when it fails.
fn measured(command: &mut Command) -> Option<Round> {
    let out = command.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Round {
        step_ms: v["step_ms"].as_f64()?,
        eval_per_s: v["eval_per_s"].as_f64(),
        peak_mb: v["peak_mb"].as_f64()?,
    })
}

/// This process's peak resident memory (VmHWM), in MB.
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) / 1024.0
}

/// One round of ours in this process (its thread count set by `backend::THREADS_VAR`) on the
/// spec's model and batches, printed as JSON.
fn ours_round(spec_path: &str) {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spec_path).unwrap()).unwrap();
    let dir = PathBuf::from(spec["model"].as_str().unwrap());
    let lm = LoadedModel::from_dir(&dir, &backend::cpu()).unwrap();
    let count = |k: &str| spec[k].as_u64().unwrap() as usize;
    let step_ms = our_step_ms(&lm, &batches(&lm, 4), count("warmup"), count("steps"));
    let eval_per_s = (count("eval_examples") > 0).then(|| our_eval_rate(&lm));
    println!(
        "{}",
        serde_json::json!({"step_ms": step_ms, "eval_per_s": eval_per_s, "peak_mb": peak_mb()})
    );
}

/// The step on the native WebGPU backend (Vulkan on Linux; Mesa's lavapipe where there is no
/// GPU): the bundled model and GPT-2-small- and SmolLM2-135M-shaped random ones, same batches,
/// with the kernel launches (dispatches) one step issues. Fused or not is the build's choice:
/// `--features gpu` or `--features fusion`. `--gpu-steps N` timed steps (the large models a fifth).
#[cfg(feature = "gpu")]
fn gpu_round() {
    let (device, setup) = burn::tensor::Device::wgpu_options()
        .init_with_setup()
        .expect("a wgpu adapter (without a GPU: apt-get install mesa-vulkan-drivers)");
    let device = device.autodiff();
    let adapter = setup.adapter.get_info();
    let steps: usize = arg("--gpu-steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    println!(
        "### Native WebGPU (wgpu) training step on {} ({:?}), {}\n",
        adapter.name,
        adapter.backend,
        if cfg!(feature = "fusion") {
            "fused"
        } else {
            "unfused"
        }
    );
    let limit = backend::binding_limit(&device).expect("a GPU has a binding limit");
    println!(
        "One binding holds {} MiB: a vocabulary table larger than that is held in parts.\n",
        limit >> 20
    );
    println!(
        "Dispatches: the kernel launches of one step after a warm-up step (cubecl's launch \
         observer). On a software adapter (lavapipe, llvmpipe) the CPU emulates the GPU: the \
         dispatch counts carry over to a real GPU, the times do not.\n"
    );
    println!("| model | dispatches / step | ms / step | GFLOP/s |");
    println!("| --- | --- | --- | --- |");
    let cases = [
        ("bundled (2.6 M parameters)", None, steps),
        (
            "GPT-2-small-shaped (124 M)",
            Some((GPT2_SMALL, "gpt2-small")),
            steps.div_ceil(5),
        ),
        (
            "SmolLM2-135M-shaped (135 M)",
            Some((SMOLLM2_135M, "smollm2-135m")),
            steps.div_ceil(5),
        ),
    ];
    let mut by_family = Vec::new();
    for (title, synthetic, steps) in cases {
        let dir = synthetic
            .as_ref()
            .map_or_else(bundled_dir, |(s, name)| s.write(name));
        match LoadedModel::from_dir(&dir, &device) {
            Err(e) => println!("| {title} | not run: {e} | | |"),
            Ok(lm) => {
                let batches = batches(&lm, 4);
                let (dispatches, families) = dispatches_per_step(&lm, &batches[0]);
                by_family.push((title, families));
                // A warm-up step on each batch: a GPU compiles kernels and tunes its products
                // for each new width (the first step of a width, not a step's cost).
                let ms = our_step_ms(&lm, &batches, batches.len(), steps);
                let flops = step_flops(&lm.model.config, &batches[0], N_VIRTUAL);
                println!(
                    "| {title} | {dispatches} | {ms:.1} | {:.1} |",
                    flops / ms / 1e6
                );
            }
        }
        if synthetic.is_some() {
            std::fs::remove_dir_all(dir).ok();
        }
    }
    println!("\nDispatches by kernel family (one step):\n");
    for (title, families) in by_family {
        let list: Vec<String> = families.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("- {title}: {}", list.join(", "));
    }
}

/// Kernel launches in one training step (forward, backward, Adam, the loss read back), counted by
/// cubecl's launch observer after a first step has compiled every kernel: the total, and the
/// counts by kernel family (the kernel's type name without its module path and generics), most
/// first.
#[cfg(feature = "gpu")]
fn dispatches_per_step(lm: &LoadedModel, batch: &ScoredBatch) -> (usize, Vec<(String, usize)>) {
    use cubecl_runtime::logging::{LaunchObservation, LaunchObserver};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    struct Count(Mutex<HashMap<&'static str, usize>>);
    impl LaunchObserver for Count {
        fn launched(&self, kernel: &'static str) {
            *self.0.lock().unwrap().entry(kernel).or_default() += 1;
        }
    }
    let mut trainer = fresh_trainer(lm);
    let mut step = || pollster::block_on(trainer.step(&lm.model, batch).unwrap().read()).unwrap();
    step();
    let count = Arc::new(Count(Mutex::new(HashMap::new())));
    let watching = LaunchObservation::new(count.clone());
    step();
    drop(watching);
    let mut families: HashMap<String, usize> = HashMap::new();
    for (kernel, n) in count.0.lock().unwrap().iter() {
        let plain = kernel.split('<').next().unwrap_or(kernel);
        let family = plain.rsplit("::").next().unwrap_or(plain).to_string();
        *families.entry(family).or_default() += n;
    }
    let mut families: Vec<(String, usize)> = families.into_iter().collect();
    families.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (families.iter().map(|(_, n)| n).sum(), families)
}

fn median_of(rounds: &[Round], f: fn(&Round) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rounds.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| median(v))
}

fn show(x: Option<f64>, digits: usize) -> String {
    x.map_or("not measured".into(), |x| format!("{x:.digits$}"))
}

/// Alternating rounds on one case, each in a fresh process: ours and PyTorch at 1 thread, then
/// at 2. Returns `[threads][ours, torch]` rounds and the mean FLOPs per step.
fn compare(case: &Case, python: &str) -> ([[Vec<Round>; 2]; 2], f64) {
    let lm = LoadedModel::from_dir(&case.dir, &backend::cpu()).unwrap();
    let batches = batches(&lm, 4);
    let spec = std::env::temp_dir().join(format!("spl-bench-{}.json", std::process::id()));
    write_spec(&lm, case, &batches, &spec);
    let flops = batches
        .iter()
        .map(|b| step_flops(&lm.model.config, b, N_VIRTUAL))
        .sum::<f64>()
        / batches.len() as f64;
    drop(lm);
    let me = std::env::current_exe().unwrap();
    let mut runs: [[Vec<Round>; 2]; 2] = Default::default();
    for round in 0..case.rounds {
        for (t, threads) in [1usize, 2].into_iter().enumerate() {
            let mut ours = Command::new(&me);
            ours.arg("--ours")
                .arg(&spec)
                .env(backend::THREADS_VAR, threads.to_string());
            runs[t][0].extend(measured(&mut ours));
            let mut torch = Command::new(python);
            torch
                .arg(root().join("tools/bench/reference.py"))
                .arg(&spec)
                .arg(threads.to_string());
            runs[t][1].extend(measured(&mut torch));
        }
        eprintln!(
            "{}: round {} of {} done",
            case.title,
            round + 1,
            case.rounds
        );
    }
    std::fs::remove_file(&spec).ok();
    (runs, flops)
}

fn print_comparison(case: &Case, python: &str) {
    let (runs, flops) = compare(case, python);
    let gflops = |ms: f64| flops / ms / 1e6;
    println!(
        "### Native training step ({}, antonyms, batch {BATCH}, {N_VIRTUAL} virtual tokens, Adam)\n",
        case.title
    );
    println!(
        "Medians of {} alternating rounds of {} steps (after {} warm-up steps each), each round a fresh process; peak memory is the process's peak resident set (VmHWM; ru_maxrss for Python). At 2 threads ours splits each batch's rows in two halves (shortest rows first), one autodiff graph per thread, and adds the halves' prompt gradients (burn flex's own rayon threads are off). PyTorch's GFLOP/s use our FLOP count, though it computes more (the prompt on every row, logits at every position).\n",
        case.rounds, case.steps, case.warmup
    );
    println!(
        "| threads | ours ms / step | PyTorch + PEFT ms / step | ours / PyTorch | ours GFLOP/s | PyTorch GFLOP/s | ours peak MB | PyTorch peak MB |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (t, threads) in [1, 2].into_iter().enumerate() {
        let ms = |k: usize| median_of(&runs[t][k], |r| Some(r.step_ms));
        let mb = |k: usize| median_of(&runs[t][k], |r| Some(r.peak_mb));
        let (ours, torch) = (ms(0), ms(1));
        println!(
            "| {threads} | {} | {} | {} | {} | {} | {} | {} |",
            show(ours, 1),
            show(torch, 1),
            show(ours.zip(torch).map(|(o, t)| o / t), 2),
            show(ours.map(gflops), 1),
            show(torch.map(gflops), 1),
            show(mb(0), 0),
            show(mb(1), 0),
        );
    }
    let (peak, how) = peak_gflops();
    println!(
        "\nFLOPs per step (from the shapes, as computed at 1 thread: the prompt once per batch, backward to the inputs only; both thread counts' GFLOP/s use it, though at 2 threads each half computes the prompt again and is padded to its own longest row): {:.2} GFLOP. Peak: {peak:.0} GFLOP/s ({how}).\n",
        flops / 1e9
    );
    if case.eval {
        println!(
            "### Forward-only evaluation ({}, sentiment held-out set, 62 examples, 2 labels each)\n",
            case.title
        );
        println!("| threads | ours examples / s | PyTorch + PEFT examples / s |");
        println!("| --- | --- | --- |");
        for (t, threads) in [1, 2].into_iter().enumerate() {
            let rate = |k: usize| median_of(&runs[t][k], |r| r.eval_per_s);
            println!(
                "| {threads} | {} | {} |",
                show(rate(0), 0),
                show(rate(1), 0)
            );
        }
        println!();
    }
}

/// The design's point: with the base frozen, backward computes no weight gradients. Both on one
/// thread: an unfrozen base never splits its batch (train.rs says why).
fn print_frozen_against_unfrozen() {
    // SAFETY: no other thread runs here (every measuring process has finished).
    unsafe { std::env::set_var(backend::THREADS_VAR, "1") };
    let lm = LoadedModel::from_dir(&bundled_dir(), &backend::cpu()).unwrap();
    let batches = batches(&lm, 4);
    let frozen_ms = our_step_ms(&lm, &batches, 3, 30);
    let mut unfrozen = lm;
    unfrozen.model = unfrozen.model.set_require_grad(true);
    let unfrozen_ms = our_step_ms(&unfrozen, &batches, 3, 30);
    println!(
        "### Frozen base against the same step with every base weight requiring grad (bundled model, ours, one thread)\n"
    );
    println!("| base | ms / step |");
    println!("| --- | --- |");
    println!("| frozen (prompt tuning) | {frozen_ms:.1} |");
    println!("| requires grad (what full fine-tuning's backward computes) | {unfrozen_ms:.1} |");
}

/// A 2-byte checkpoint's weight matrices kept as stored (widened block by block inside each
/// product: `model::frozen_matmul`) against the same model widened to f32 at load (as before),
/// alternated in one process on one thread: what half the weights' memory costs a step.
fn print_kept_against_widened(title: &str, dir: &std::path::Path, rounds: usize, steps: usize) {
    // SAFETY: no other thread runs here (every measuring process has finished).
    unsafe { std::env::set_var(backend::THREADS_VAR, "1") };
    let kept = LoadedModel::from_dir(dir, &backend::cpu()).unwrap();
    let mut widened = LoadedModel::from_dir(dir, &backend::cpu()).unwrap();
    widened.model = widened.model.widened();
    let batches = batches(&kept, 4);
    let mib = |lm: &LoadedModel| {
        let bytes: usize = lm
            .model
            .parameters()
            .iter()
            .map(|t| t.shape().num_elements() * t.dtype().size())
            .sum();
        bytes as f64 / (1 << 20) as f64
    };
    let (mut kept_ms, mut wide_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        kept_ms.push(our_step_ms(&kept, &batches, 1, steps));
        wide_ms.push(our_step_ms(&widened, &batches, 1, steps));
    }
    let (k, w) = (median(kept_ms), median(wide_ms));
    println!("### 2-byte weights kept against widened to f32 at load ({title}, one thread)\n");
    println!(
        "Medians of {rounds} alternating rounds of {steps} steps (after 1 warm-up step) in one process.\n"
    );
    println!("| weights | MiB | ms / step |");
    println!("| --- | --- | --- |");
    println!("| kept as stored | {:.0} | {k:.0} |", mib(&kept));
    println!("| widened to f32 at load | {:.0} | {w:.0} |", mib(&widened));
    println!("\nKept / widened: {:.2} of the step time.\n", k / w);
}

fn print_kept(rounds: usize) {
    let smollm2 = SMOLLM2_135M.write("smollm2-135m-kept");
    print_kept_against_widened("SmolLM2-135M-shaped, BF16 file", &smollm2, rounds.max(3), 4);
    std::fs::remove_dir_all(smollm2).ok();
}

fn main() {
    if let Some(spec) = arg("--ours") {
        return ours_round(&spec);
    }
    #[cfg(feature = "gpu")]
    if std::env::args().any(|a| a == "--gpu") {
        return gpu_round();
    }
    let python = arg("--python").unwrap_or_else(|| "python3".into());
    let rounds: usize = arg("--rounds").and_then(|r| r.parse().ok()).unwrap_or(3);
    if std::env::args().any(|a| a == "--kept-only") {
        return print_kept(rounds);
    }
    print_comparison(
        &Case {
            title: "bundled model",
            dir: bundled_dir(),
            steps: 30,
            warmup: 3,
            rounds,
            eval: true,
        },
        &python,
    );
    // A step is ~40× the bundled model's: fewer steps and rounds keep the bench to minutes.
    let smollm2 = SMOLLM2_135M.write("smollm2-135m");
    print_comparison(
        &Case {
            title: "SmolLM2-135M-shaped Llama, random BF16 weights (135 M parameters)",
            dir: smollm2.clone(),
            steps: 6,
            warmup: 2,
            rounds: rounds.min(2),
            eval: false,
        },
        &python,
    );
    std::fs::remove_dir_all(smollm2).ok();
    print_kept(rounds);
    print_frozen_against_unfrozen();
}
