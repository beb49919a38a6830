//! The native command line: train a soft prompt, evaluate with or without one, generate.
//! A module of the binary only (`src/main.rs`), so the library never depends on clap.

mod args;
mod sweep;
mod train;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use soft_prompt_lab::adapter::{self, AdapterFiles};
use soft_prompt_lab::error::read_file;
use soft_prompt_lab::generate::{GenerateOptions, Prompting, Sampling, generate};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::soft_prompt::SoftPrompt;
use soft_prompt_lab::tasks::TaskKind;
use soft_prompt_lab::{Error, Result, backend};

use args::{EvalArgs, GenerateArgs, SweepArgs, TrainArgs};

#[derive(Parser)]
#[command(
    name = "soft-prompt-lab",
    version,
    about = "Train and use soft prompts on a frozen GPT-2 or Llama-family (Llama, SmolLM2, Qwen2) model"
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
    /// The method's findings on one task of a folder: several seeded trainings per setting
    /// (prompt length, init, transfer, text against soft, ensemble), held-out accuracy as tables.
    Sweep(SweepArgs),
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
    match run_caught(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => train::train(a),
        Command::Eval(a) if a.tasks.is_some() => train::eval_tasks(a),
        Command::Eval(a) => train::eval(a),
        Command::Generate(a) => generate_cmd(a),
        Command::Sweep(a) => sweep::sweep(a),
    }
}

/// Runs a command; a panic (a bug: no input file should cause one) becomes a one-line named
/// error and a non-zero exit instead of Rust's panic report.
fn run_caught(command: Command) -> Result<()> {
    static PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut p) = PANIC.lock() {
            *p = info.to_string().replace('\n', " ");
        }
    }));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(command))).unwrap_or_else(|_| {
        let detail = PANIC.lock().map(|p| p.clone()).unwrap_or_default();
        Err(Error::internal(detail))
    })
}

pub(super) fn load_model(dir: &Path) -> Result<LoadedModel> {
    let lm = LoadedModel::from_dir(dir, &backend::cpu())?;
    for note in &lm.tokenizer.notes {
        eprintln!("note: {note}");
    }
    Ok(lm)
}

pub(super) fn load_adapter(dir: &Path, lm: &LoadedModel) -> Result<SoftPrompt> {
    let files = AdapterFiles {
        config_json: read_file(&dir.join(adapter::CONFIG_FILE))?,
        safetensors: read_file(&dir.join(adapter::WEIGHTS_FILE))?,
    };
    Ok(adapter::load(&files, &lm.model)?.0)
}

pub(super) fn task_kind(labels: &[String]) -> TaskKind {
    if labels.is_empty() {
        TaskKind::Generate
    } else {
        TaskKind::Classify {
            labels: labels.to_vec(),
        }
    }
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
