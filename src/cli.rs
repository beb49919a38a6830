//! The native command line: train a soft prompt, evaluate with or without one, generate.
//! A module of the binary only (`src/main.rs`), so the library never depends on clap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use soft_prompt_lab::adapter::{self, AdapterConfig, AdapterFiles};
use soft_prompt_lab::batch::{Sampler, Sequence};
use soft_prompt_lab::error::{read_file, write_file};
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::{GenerateOptions, Prompting, Sampling, generate};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::soft_prompt::{PromptInit, SoftPrompt};
use soft_prompt_lab::tasks::{Example, TaskKind, parse_jsonl};
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
    /// Accuracy on a JSONL task file: no prompt, a text prompt, or an adapter.
    Eval(EvalArgs),
    /// Continue a text, printing only the continuation.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct TaskArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated labels: score as classification (verbalizer) instead of exact-match generation.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
}

impl TaskArgs {
    fn kind(&self) -> TaskKind {
        if self.labels.is_empty() {
            TaskKind::Generate
        } else {
            TaskKind::Classify {
                labels: self.labels.clone(),
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum InitArg {
    /// N(0, 1), PEFT's RANDOM.
    Random,
    /// U[-0.5, 0.5] (Lester et al.).
    Uniform,
    /// Embeddings of random vocabulary tokens (PEFT's SAMPLE_VOCAB).
    SampleVocab,
    /// Embeddings of --init-text's tokens (PEFT's TEXT).
    Text,
    /// Embeddings of the --labels (Lester et al.), the rest sampled.
    ClassLabels,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimArg {
    Adam,
    Adamw,
    Sgd,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Training examples, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    train: PathBuf,
    /// Held-out examples for the accuracy shown while training.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Where to write adapter_config.json and adapter_model.safetensors.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8)]
    virtual_tokens: usize,
    #[arg(long, value_enum, default_value_t = InitArg::SampleVocab)]
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
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Clip the prompt gradient to this norm; 0 turns clipping off.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f32,
    /// Held-out accuracy every N steps (0: only at the end).
    #[arg(long, default_value_t = 25)]
    eval_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Examples to score, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    data: PathBuf,
    /// A PEFT prompt-tuning adapter directory.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// A text prompt put before every input.
    #[arg(long)]
    text_prompt: Option<String>,
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

fn train(a: TrainArgs) -> Result<()> {
    let lm = load_model(&a.task.model)?;
    let kind = a.task.kind();
    let train_set = load_examples(&a.train)?;
    let eval_set = match &a.eval {
        Some(p) => load_examples(p)?,
        None => train_set.clone(),
    };
    let init = match a.init {
        InitArg::Random => PromptInit::RandomNormal,
        InitArg::Uniform => PromptInit::RandomUniform,
        InitArg::SampleVocab => PromptInit::SampleVocab {
            first_k: a.init_first_k,
        },
        InitArg::Text => PromptInit::Text(a.init_text.clone().ok_or_else(|| Error::Setting {
            detail: "--init text needs --init-text".into(),
        })?),
        InitArg::ClassLabels => {
            if a.task.labels.is_empty() {
                return Err(Error::Setting {
                    detail: "--init class-labels needs --labels".into(),
                });
            }
            PromptInit::ClassLabels {
                labels: a.task.labels.clone(),
                first_k: a.init_first_k,
            }
        }
    };
    let optimizer = match a.optimizer {
        OptimArg::Adam => OptimizerKind::Adam,
        OptimArg::Adamw => OptimizerKind::AdamW {
            weight_decay: a.weight_decay,
        },
        OptimArg::Sgd => OptimizerKind::Sgd,
    };
    let config = TrainConfig {
        optimizer,
        lr: a.lr,
        max_grad_norm: (a.max_grad_norm > 0.0).then_some(a.max_grad_norm),
    };
    let prompt = SoftPrompt::init(&lm, a.virtual_tokens, &init, a.seed)?;
    let mut trainer = Trainer::new(prompt, config)?;
    let seqs = train_set
        .iter()
        .map(|ex| Sequence::for_example(&lm.tokenizer, "", ex))
        .collect::<Result<Vec<_>>>()?;
    let pad = lm.tokenizer.eos_id.unwrap_or(0);
    let mut sampler = Sampler::new(seqs, a.seed)?;
    let fingerprint = pollster::block_on(lm.model.fingerprint())?;

    let bar = ProgressBar::new(a.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut accuracy = None;
    for step in 1..=a.steps {
        let batch = sampler.next_batch(a.batch, a.virtual_tokens, pad)?;
        let stats = pollster::block_on(trainer.step(&lm.model, &batch)?.read())?;
        if (a.eval_every > 0 && step % a.eval_every == 0) || step == a.steps {
            let report = pollster::block_on(evaluate(
                &lm,
                &Prompting::soft(trainer.prompt.values()),
                &eval_set,
                &kind,
            ))?;
            accuracy = Some(report.accuracy());
        }
        let acc = accuracy.map_or(String::from("-"), |x| format!("{:.1}%", 100.0 * x));
        bar.set_message(format!(
            "loss {:.4}  |grad| {:.3}  acc {acc}",
            stats.loss, stats.grad_norm
        ));
        bar.inc(1);
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    if pollster::block_on(lm.model.fingerprint())? != fingerprint {
        return Err(Error::Device {
            detail: "the base weights changed during training".into(),
        });
    }
    let init_text = match &init {
        PromptInit::Text(t) => Some(t.clone()),
        _ => None,
    };
    let config = AdapterConfig::new(
        &lm.model,
        a.virtual_tokens,
        init.peft_name(),
        init_text,
        Some(a.task.model.display().to_string()),
    );
    let files = pollster::block_on(adapter::save(&trainer.prompt, &config))?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::FileWrite {
        path: a.out.display().to_string(),
        detail: e.to_string(),
    })?;
    write_file(&a.out.join(adapter::CONFIG_FILE), &files.config_json)?;
    write_file(&a.out.join(adapter::WEIGHTS_FILE), &files.safetensors)?;
    println!(
        "trained {} steps in {secs:.1} s ({:.1} ms/step); held-out accuracy {}; base weights unchanged (fingerprint {fingerprint:016x}); adapter in {}",
        a.steps,
        1000.0 * secs / a.steps.max(1) as f64,
        accuracy.map_or(String::from("-"), |x| format!("{:.1}%", 100.0 * x)),
        a.out.display()
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let lm = load_model(&a.task.model)?;
    let examples = load_examples(&a.data)?;
    let mut prompting = Prompting::text(a.text_prompt.clone().unwrap_or_default());
    if let Some(dir) = &a.adapter {
        prompting.soft = Some(load_adapter(dir, &lm)?.values());
    }
    let report = pollster::block_on(evaluate(&lm, &prompting, &examples, &a.task.kind()))?;
    let correct = report.predictions.iter().filter(|p| p.correct).count();
    println!(
        "accuracy {:.1}% ({correct}/{})",
        100.0 * report.accuracy(),
        report.predictions.len()
    );
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
