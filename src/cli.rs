//! The native command line: train a soft prompt, evaluate with or without one, generate.
//! A module of the binary only (`src/main.rs`), so the library never depends on clap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use soft_prompt_lab::adapter::{self, AdapterConfig, AdapterFiles};
use soft_prompt_lab::batch::Sampler;
use soft_prompt_lab::error::{read_file, write_file};
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::{GenerateOptions, Prompting, Sampling, generate};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, TaskKind, TaskSpec, chance_level, parse_jsonl};
use soft_prompt_lab::train::{OptimizerKind, TrainConfig, Trainer};
use soft_prompt_lab::{Error, Result, backend};

#[derive(Parser)]
#[command(
    name = "soft-prompt-lab",
    version,
    about = "Train and use soft prompts on a frozen GPT-2-family model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a soft prompt on a JSONL task file and save it as a PEFT adapter.
    Train(TrainArgs),
    /// Accuracy on a JSONL file (no prompt, a text prompt, or an adapter), or, with --tasks, a table
    /// for every task of a folder: no prompt, its text prompt, and a freshly trained soft prompt.
    Eval(EvalArgs),
    /// Continue a text, printing only the continuation.
    Generate(GenerateArgs),
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum InitArg {
    /// Class labels for classification (with --labels), sample-vocab otherwise.
    Auto,
    /// N(0, 1), PEFT's RANDOM.
    Random,
    /// U[-0.5, 0.5] (Lester et al.).
    Uniform,
    /// Embeddings of random vocabulary tokens (PEFT's SAMPLE_VOCAB).
    SampleVocab,
    /// Embeddings of --init-text's tokens (PEFT's TEXT).
    Text,
    /// Embeddings of the labels (Lester et al.), the rest sampled.
    ClassLabels,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimArg {
    Adam,
    Adamw,
    Sgd,
}

/// How a soft prompt is trained (shared by `train` and `eval --tasks`).
#[derive(clap::Args)]
struct PromptArgs {
    #[arg(long, default_value_t = 8)]
    virtual_tokens: usize,
    #[arg(long, value_enum, default_value_t = InitArg::Auto)]
    init: InitArg,
    #[arg(long)]
    init_text: Option<String>,
    /// Sample init vectors only from the first K token ids.
    #[arg(long)]
    init_first_k: Option<usize>,
    #[arg(long, value_enum, default_value_t = OptimArg::Adam)]
    optimizer: OptimArg,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0.03)]
    lr: f64,
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Clip the prompt gradient to this norm; 0 turns clipping off.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f32,
    /// Held-out accuracy every N steps (0: only at the end).
    #[arg(long, default_value_t = 50)]
    eval_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Training examples, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    train: PathBuf,
    /// Held-out examples for the accuracy shown while training (default: the training examples).
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Comma-separated labels: score as classification (verbalizer) instead of exact-match generation.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Where to write adapter_config.json and adapter_model.safetensors.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
}

#[derive(clap::Args)]
#[group(id = "what", required = true, args = ["data", "tasks"])]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    /// Examples to score, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A folder of tasks (index.json, <task>/task.json, train and test splits).
    #[arg(long)]
    tasks: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// A PEFT prompt-tuning adapter directory (with --data).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// A text prompt put before every input (with --data).
    #[arg(long)]
    text_prompt: Option<String>,
    #[command(flatten)]
    prompt: PromptArgs,
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long)]
    text: String,
    #[arg(long, default_value_t = 16)]
    max_new_tokens: usize,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample only among the K most likely tokens (implies sampling, temperature 1 by default).
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One line, not clap's usage block.
            eprintln!(
                "{}",
                e.to_string().lines().next().unwrap_or("invalid arguments")
            );
            eprintln!("run with --help for usage");
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Eval(a) if a.tasks.is_some() => eval_tasks(a),
        Command::Eval(a) => eval(a),
        Command::Generate(a) => generate_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_model(dir: &Path) -> Result<LoadedModel> {
    LoadedModel::from_dir(dir, &backend::cpu())
}

fn load_examples(path: &Path) -> Result<Vec<Example>> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::TaskInvalid {
        detail: format!("{} is not UTF-8 text", path.display()),
    })?;
    parse_jsonl(&text).map_err(|e| match e {
        Error::TaskLine { line, detail } => Error::TaskInvalid {
            detail: format!("{} line {line}: {detail}", path.display()),
        },
        other => other,
    })
}

fn load_adapter(dir: &Path, lm: &LoadedModel) -> Result<SoftPrompt> {
    let files = AdapterFiles {
        config_json: read_file(&dir.join(adapter::CONFIG_FILE))?,
        safetensors: read_file(&dir.join(adapter::WEIGHTS_FILE))?,
    };
    Ok(adapter::load(&files, &lm.model)?.0)
}

fn task_kind(labels: &[String]) -> TaskKind {
    if labels.is_empty() {
        TaskKind::Generate
    } else {
        TaskKind::Classify {
            labels: labels.to_vec(),
        }
    }
}

fn percent(x: f32) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A trained prompt with its last held-out accuracy and training time.
struct Fitted {
    prompt: SoftPrompt,
    init: PromptInit,
    accuracy: f32,
    seconds: f64,
}

/// Trains a soft prompt on `train_set` with a progress bar (loss, gradient norm, held-out accuracy),
/// and checks that the base weights did not change.
fn fit(
    lm: &LoadedModel,
    train_set: &[Example],
    eval_set: &[Example],
    kind: &TaskKind,
    p: &PromptArgs,
    title: &str,
) -> Result<Fitted> {
    let labels = match kind {
        TaskKind::Classify { labels } => labels.clone(),
        TaskKind::Generate => Vec::new(),
    };
    let init = match p.init {
        InitArg::Auto if !labels.is_empty() => PromptInit::ClassLabels {
            labels,
            first_k: p.init_first_k,
        },
        InitArg::Auto | InitArg::SampleVocab => PromptInit::SampleVocab {
            first_k: p.init_first_k,
        },
        InitArg::Random => PromptInit::RandomNormal,
        InitArg::Uniform => PromptInit::RandomUniform,
        InitArg::Text => PromptInit::Text(p.init_text.clone().ok_or_else(|| Error::Setting {
            detail: "--init text needs --init-text".into(),
        })?),
        InitArg::ClassLabels if labels.is_empty() => {
            return Err(Error::Setting {
                detail: "--init class-labels needs --labels".into(),
            });
        }
        InitArg::ClassLabels => PromptInit::ClassLabels {
            labels,
            first_k: p.init_first_k,
        },
    };
    let optimizer = match p.optimizer {
        OptimArg::Adam => OptimizerKind::Adam,
        OptimArg::Adamw => OptimizerKind::AdamW {
            weight_decay: p.weight_decay,
        },
        OptimArg::Sgd => OptimizerKind::Sgd,
    };
    let config = TrainConfig {
        optimizer,
        lr: p.lr,
        max_grad_norm: (p.max_grad_norm > 0.0).then_some(p.max_grad_norm),
    };
    let mut trainer = Trainer::new(
        SoftPrompt::init(lm, p.virtual_tokens, &init, p.seed)?,
        config,
    )?;
    let pad = lm.tokenizer.pad_id();
    let mut sampler = Sampler::for_examples(&lm.tokenizer, train_set, p.seed)?;
    let fingerprint = pollster::block_on(lm.model.fingerprint())?;

    let bar = ProgressBar::new(p.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} [{elapsed}]")
            .expect("valid template"),
    );
    bar.set_prefix(title.to_string());
    let started = Instant::now();
    let mut accuracy = None;
    for step in 1..=p.steps {
        let batch = sampler.next_batch(p.batch, p.virtual_tokens, pad)?;
        let stats = pollster::block_on(trainer.step(&lm.model, &batch)?.read())?;
        if (p.eval_every > 0 && step % p.eval_every == 0) || step == p.steps {
            let report = pollster::block_on(evaluate(
                lm,
                &Prompting::soft(trainer.prompt.values()),
                eval_set,
                kind,
            ))?;
            accuracy = Some(report.accuracy());
        }
        bar.set_message(format!(
            "loss {:.4}  |grad| {:.3}  held-out {}",
            stats.loss,
            stats.grad_norm,
            accuracy.map_or("-".into(), percent)
        ));
        bar.inc(1);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    if pollster::block_on(lm.model.fingerprint())? != fingerprint {
        return Err(Error::Device {
            detail: "the base weights changed during training".into(),
        });
    }
    Ok(Fitted {
        prompt: trainer.prompt,
        init,
        accuracy: accuracy.unwrap_or(0.0),
        seconds,
    })
}

fn train(a: TrainArgs) -> Result<()> {
    let lm = load_model(&a.model)?;
    let kind = task_kind(&a.labels);
    let train_set = load_examples(&a.train)?;
    let eval_set = match &a.eval {
        Some(p) => load_examples(p)?,
        None => train_set.clone(),
    };
    let fitted = fit(&lm, &train_set, &eval_set, &kind, &a.prompt, "train")?;
    let config = AdapterConfig::new(
        &lm.model,
        a.prompt.virtual_tokens,
        &fitted.init,
        Some(a.model.display().to_string()),
    );
    let files = pollster::block_on(adapter::save(&fitted.prompt, &config))?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::FileWrite {
        path: a.out.display().to_string(),
        detail: e.to_string(),
    })?;
    write_file(&a.out.join(adapter::CONFIG_FILE), &files.config_json)?;
    write_file(&a.out.join(adapter::WEIGHTS_FILE), &files.safetensors)?;
    println!(
        "trained {} steps in {:.1} s ({:.1} ms/step); held-out accuracy {}; base weights unchanged; adapter in {}",
        a.prompt.steps,
        fitted.seconds,
        1000.0 * fitted.seconds / a.prompt.steps.max(1) as f64,
        percent(fitted.accuracy),
        a.out.display()
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let lm = load_model(&a.model)?;
    let data = a.data.as_deref().ok_or_else(|| Error::Setting {
        detail: "--data or --tasks is required".into(),
    })?;
    let examples = load_examples(data)?;
    let mut prompting = Prompting::text(a.text_prompt.clone().unwrap_or_default());
    if let Some(dir) = &a.adapter {
        prompting.soft = Some(load_adapter(dir, &lm)?.values());
    }
    let report = pollster::block_on(evaluate(&lm, &prompting, &examples, &task_kind(&a.labels)))?;
    let correct = report.predictions.iter().filter(|p| p.correct).count();
    println!(
        "accuracy {} ({correct}/{})",
        percent(report.accuracy()),
        report.predictions.len()
    );
    Ok(())
}

/// The task folder's table: chance, no prompt, text prompt, trained soft prompt, on each held-out split.
fn eval_tasks(a: EvalArgs) -> Result<()> {
    let dir = a.tasks.as_deref().expect("checked by the caller");
    let lm = load_model(&a.model)?;
    let index: serde_json::Value = serde_json::from_slice(&read_file(&dir.join("index.json"))?)
        .map_err(|e| Error::TaskInvalid {
            detail: format!("index.json: {e}"),
        })?;
    let names: Vec<String> = index["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    if names.is_empty() {
        return Err(Error::TaskInvalid {
            detail: format!("{}/index.json lists no tasks", dir.display()),
        });
    }
    let mut rows = Vec::new();
    for name in &names {
        let task_dir = dir.join(name);
        let spec = TaskSpec::parse(&read_file(&task_dir.join("task.json"))?)?;
        let kind = spec.kind()?;
        let (train_set, test_set) = (
            load_examples(&task_dir.join(&spec.train))?,
            load_examples(&task_dir.join(&spec.test))?,
        );
        let accuracy = |p: &Prompting| {
            pollster::block_on(evaluate(&lm, p, &test_set, &kind)).map(|r| r.accuracy())
        };
        let none = accuracy(&Prompting::default())?;
        let text = accuracy(&Prompting::text(spec.text_prompt.clone()))?;
        let fitted = fit(&lm, &train_set, &test_set, &kind, &a.prompt, name)?;
        rows.push(format!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} s |",
            test_set.len(),
            percent(chance_level(&test_set)),
            percent(none),
            percent(text),
            percent(fitted.accuracy),
            fitted.seconds
        ));
    }
    println!(
        "\nheld-out accuracy; soft prompt: {} virtual tokens, {} steps, batch {}, lr {}, seed {}\n",
        a.prompt.virtual_tokens, a.prompt.steps, a.prompt.batch, a.prompt.lr, a.prompt.seed
    );
    println!("| task | held-out | chance | no prompt | text prompt | soft prompt | training |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

fn generate_cmd(a: GenerateArgs) -> Result<()> {
    let lm = load_model(&a.model)?;
    let prompting = match &a.adapter {
        Some(dir) => Prompting::soft(load_adapter(dir, &lm)?.values()),
        None => Prompting::default(),
    };
    let sampling = match (a.temperature, a.top_k) {
        (None, None) => Sampling::Greedy,
        (t, k) => Sampling::Sample {
            temperature: t.unwrap_or(1.0),
            top_k: k,
            seed: a.seed,
        },
    };
    let opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampling,
        ..GenerateOptions::default()
    };
    let out = pollster::block_on(generate(&lm, &prompting, &[a.text.as_str()], &opts))?;
    println!("{}", out[0].text);
    Ok(())
}
