//! The native command line: train a soft prompt, evaluate with or without one, generate.
//! A module of the binary only (`src/main.rs`), so the library never depends on clap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use soft_prompt_lab::adapter::{self, AdapterFiles};
use soft_prompt_lab::error::{read_file, write_file};
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::experiments::{
    self, Experiment, ExperimentConfig, ExperimentName, ExperimentProgress, ExperimentSummary,
};
use soft_prompt_lab::generate::{GenerateOptions, Prompting, Sampling, generate};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::report::{self, percent};
use soft_prompt_lab::schedule::{EvalCadence, median};
use soft_prompt_lab::session::Session;
use soft_prompt_lab::settings::{
    self, InitName, NUMBERS, NumberSetting, OptimizerName, SEED, Settings,
};
use soft_prompt_lab::soft_prompt::SoftPrompt;
use soft_prompt_lab::tasks::{Task, TaskKind, chance_level, read_examples, split_held_out};
use soft_prompt_lab::{Error, Result, backend};

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

fn init_arg(s: &str) -> std::result::Result<InitName, String> {
    InitName::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = InitName::ALL.iter().map(|i| i.name()).collect();
        format!("{s:?} is not one of {}", names.join(", "))
    })
}

fn optimizer_arg(s: &str) -> std::result::Result<OptimizerName, String> {
    OptimizerName::from_name(s).ok_or_else(|| format!("{s:?} is not one of adam, adamw, sgd"))
}

/// The settings table's numbers (`settings::NUMBERS`: virtual tokens, learning rate, steps,
/// batch, seed) as flags, each named, defaulted and explained by its row, so a new number in the
/// table needs no code here. Values are checked against the table's bounds by the session.
#[derive(Debug, Clone)]
struct TableNumbers(Vec<(&'static str, f64)>);

/// `virtualTokens` -> `virtual-tokens`.
fn flag_name(name: &str) -> String {
    name.chars()
        .flat_map(|c| match c.is_ascii_uppercase() {
            true => vec!['-', c.to_ascii_lowercase()],
            false => vec![c],
        })
        .collect()
}

impl clap::Args for TableNumbers {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(NUMBERS.iter().map(|s| {
            clap::Arg::new(s.name)
                .long(flag_name(s.name))
                .value_name(flag_name(s.name).to_uppercase().replace('-', "_"))
                .help(format!("{} ({} to {})", s.help, s.min, s.max))
                .default_value(s.default.to_string())
                .value_parser(clap::value_parser!(f64))
        }))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for TableNumbers {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let value = |s: &NumberSetting| m.get_one::<f64>(s.name).copied().unwrap_or(s.default);
        Ok(Self(NUMBERS.iter().map(|s| (s.name, value(s))).collect()))
    }

    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// How a soft prompt is trained (shared by `train` and `eval --tasks`); defaults and bounds from
/// the settings table (`settings.rs`), as in the page.
#[derive(clap::Args)]
struct PromptArgs {
    #[command(flatten)]
    numbers: TableNumbers,
    /// class-labels (sample-vocab on a generation task; `auto` is the same), sample-vocab,
    /// random (N(0, 1)), uniform (U[-0.5, 0.5]) or text (needs --init-text).
    #[arg(long, value_parser = init_arg, default_value = InitName::default().name())]
    init: InitName,
    #[arg(long, default_value = "")]
    init_text: String,
    /// Sample init vectors only from the first K token ids.
    #[arg(long)]
    init_first_k: Option<usize>,
    /// adam, adamw or sgd.
    #[arg(long, value_parser = optimizer_arg, default_value = OptimizerName::default().name())]
    optimizer: OptimizerName,
    #[arg(long, default_value_t = settings::WEIGHT_DECAY)]
    weight_decay: f32,
    /// Clip the prompt gradient to this norm; 0 turns clipping off.
    #[arg(long, default_value_t = settings::MAX_GRAD_NORM)]
    max_grad_norm: f32,
    /// Held-out accuracy every N steps (0: only at the end); by default whenever evaluating
    /// keeps within a share of the run's time (schedule::OVERHEAD_SHARE).
    #[arg(long)]
    eval_every: Option<usize>,
}

impl PromptArgs {
    /// The settings: the table's numbers by name (through the settings' own serde form, so no
    /// field is copied here by hand), then the choices above.
    fn settings(&self) -> Result<Settings> {
        let mut v = serde_json::to_value(Settings::default()).map_err(Error::internal)?;
        for &(name, x) in &self.numbers.0 {
            let integer = NUMBERS.iter().any(|s| s.name == name && s.integer);
            v[name] = match integer {
                true if x.fract() == 0.0 && x >= 0.0 => serde_json::json!(x as u64),
                true => {
                    return Err(Error::setting(format!(
                        "--{} must be a whole number, got {x}",
                        flag_name(name)
                    )));
                }
                false => serde_json::json!(x),
            };
        }
        let numbers: Settings =
            serde_json::from_value(v).map_err(|e| Error::setting(e.to_string()))?;
        Ok(Settings {
            init: self.init,
            init_text: self.init_text.clone(),
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            init_first_k: self.init_first_k,
            ..numbers
        })
    }

    fn cadence(&self) -> EvalCadence {
        self.eval_every
            .map_or_else(EvalCadence::default, EvalCadence::Every)
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Training examples, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    train: PathBuf,
    /// Held-out examples for the accuracy shown while training (default: every fifth example of
    /// --train, kept out of training, as the page does).
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
struct SweepArgs {
    /// The model the experiments run on (all but scale).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Scale's family: model folders, smallest first, comma-separated.
    #[arg(long, value_delimiter = ',')]
    family: Vec<PathBuf>,
    /// A folder of tasks (index.json, <task>/task.json, train and test splits).
    #[arg(long)]
    tasks: PathBuf,
    /// The task the experiments run on.
    #[arg(long)]
    task: String,
    /// prompt-length, init, transfer, text-vs-soft, ensemble, all (those five), or scale.
    #[arg(long, default_value = "all")]
    experiment: String,
    /// The task transfer starts from (default: the folder's first other task).
    #[arg(long)]
    source: Option<String>,
    /// Training steps per run (the page's default, so both give the same tables).
    #[arg(long, default_value_t = experiments::DEFAULT_STEPS)]
    steps: usize,
    /// Seeds per setting.
    #[arg(long, default_value_t = experiments::DEFAULT_SEEDS)]
    seeds: usize,
    /// The first seed (the others follow it).
    #[arg(long, default_value_t = SEED.default as u64)]
    seed: u64,
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
        Command::Train(a) => train(a),
        Command::Eval(a) if a.tasks.is_some() => eval_tasks(a),
        Command::Eval(a) => eval(a),
        Command::Generate(a) => generate_cmd(a),
        Command::Sweep(a) => sweep(a),
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

fn load_model(dir: &Path) -> Result<LoadedModel> {
    let lm = LoadedModel::from_dir(dir, &backend::cpu())?;
    for note in &lm.tokenizer.notes {
        eprintln!("note: {note}");
    }
    Ok(lm)
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

/// What a run measured: its last held-out accuracy, the median training step alone, and the
/// held-out evaluations apart (they are in the run's wall time, not in the step).
struct Fitted {
    accuracy: f32,
    held_out: usize,
    median_step_ms: f64,
    evaluations: usize,
    eval_ms: f64,
    seconds: f64,
}

impl Fitted {
    /// The figures, each named for what it measures.
    fn summary(&self) -> String {
        format!(
            "held-out accuracy {} on {} examples; median step {:.1} ms; {} held-out evaluations took {:.1} ms of the run's {:.1} s",
            percent(self.accuracy),
            self.held_out,
            self.median_step_ms,
            self.evaluations,
            self.eval_ms,
            self.seconds
        )
    }
}

/// Trains a soft prompt on the session's task with a progress bar (loss, gradient norm,
/// held-out accuracy). The session's schedule decides when to evaluate and checks at the end
/// that the base weights did not change; this only loops and presents.
fn fit(
    session: &mut Session,
    settings: &Settings,
    cadence: EvalCadence,
    title: &str,
    held_out: usize,
) -> Result<Fitted> {
    session.lab.set_eval_cadence(cadence);
    session.lab.reset(&session.engine, settings.clone())?;
    let bar = ProgressBar::new(settings.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} [{elapsed}]")
            .expect("valid template"),
    );
    bar.set_prefix(title.to_string());
    let started = Instant::now();
    let mut accuracy = None;
    let (mut step_ms, mut eval_ms) = (Vec::new(), Vec::new());
    loop {
        let progress = pollster::block_on(session.lab.advance(&session.engine))?;
        accuracy = progress.accuracy.or(accuracy);
        step_ms.push(progress.ms_per_step);
        eval_ms.extend(progress.eval_ms);
        bar.set_message(format!(
            "loss {:.4}  |grad| {:.3}  held-out {}",
            progress.stats.loss,
            progress.stats.grad_norm,
            accuracy.map_or("-".into(), percent)
        ));
        bar.inc(1);
        if let Some(done) = progress.done {
            bar.finish();
            if !done.unchanged {
                return Err(Error::Internal {
                    detail: "the base weights changed during training".into(),
                });
            }
            return Ok(Fitted {
                accuracy: accuracy.unwrap_or(0.0),
                held_out,
                median_step_ms: median(step_ms),
                evaluations: eval_ms.len(),
                eval_ms: eval_ms.iter().sum(),
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let lm = load_model(&a.model)?;
    let examples = read_examples(&a.train)?;
    // Without --eval, a held-out part is split off as the page does (every fifth example), so
    // the accuracy printed is never measured on examples the prompt was trained on.
    let (train_set, test, source) = match &a.eval {
        Some(p) => (examples, read_examples(p)?, p.display().to_string()),
        None => {
            let (train, test) = split_held_out(examples)?;
            let source = format!(
                "every fifth example of {}, not trained on",
                a.train.display()
            );
            (train, test, source)
        }
    };
    let held_out = test.len();
    let mut session = pollster::block_on(Session::new(lm))?;
    session.set_task(Task {
        name: "train".into(),
        kind: task_kind(&a.labels),
        train: train_set,
        test,
        text_prompt: String::new(),
    });
    let settings = a.prompt.settings()?;
    let fitted = fit(
        &mut session,
        &settings,
        a.prompt.cadence(),
        "train",
        held_out,
    )?;
    let files = pollster::block_on(
        session
            .lab
            .export(&session.engine, &a.model.display().to_string()),
    )?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::FileWrite {
        path: a.out.display().to_string(),
        detail: e.to_string(),
    })?;
    write_file(&a.out.join(adapter::CONFIG_FILE), &files.config_json)?;
    write_file(&a.out.join(adapter::WEIGHTS_FILE), &files.safetensors)?;
    println!(
        "trained {} steps; {} ({source}); base weights unchanged; adapter in {}",
        settings.steps,
        fitted.summary(),
        a.out.display()
    );
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let lm = load_model(&a.model)?;
    let data = a.data.as_deref().ok_or_else(|| Error::Setting {
        detail: "--data or --tasks is required".into(),
    })?;
    let examples = read_examples(data)?;
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
    let tasks = Task::load_folder(dir)?;
    let s = a.prompt.settings()?;
    let mut session = pollster::block_on(Session::new(lm))?;
    let mut rows = Vec::new();
    for task in tasks {
        let name = task.name.clone();
        let chance = chance_level(&task.test);
        let held_out = task.test.len();
        session.set_task(task);
        let fitted = fit(&mut session, &s, a.prompt.cadence(), &name, held_out)?;
        let c = pollster::block_on(session.lab.compare(&session.engine))?;
        rows.push(format!(
            "| {name} | {} | {} | {} | {} | {} | {:.0} ms | {:.1} s |",
            c.soft_prompt.predictions.len(),
            percent(chance),
            percent(c.no_prompt.accuracy),
            percent(c.text_prompt.accuracy),
            percent(c.soft_prompt.accuracy),
            fitted.median_step_ms,
            fitted.seconds
        ));
    }
    println!(
        "\nheld-out accuracy; soft prompt: {} virtual tokens, {} steps, batch {}, lr {}, seed {}; \
         median step: one training step alone; run: the whole training, held-out evaluations included\n",
        s.virtual_tokens, s.steps, s.batch, s.lr, s.seed
    );
    println!(
        "| task | held-out | chance | no prompt | text prompt | soft prompt | median step | run |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

fn sweep(a: SweepArgs) -> Result<()> {
    let names: Vec<ExperimentName> = match a.experiment.as_str() {
        // Scale needs --family; "all" is every experiment on the one --model.
        "all" => (ExperimentName::ALL.into_iter())
            .filter(|e| !e.needs_family())
            .collect(),
        name => vec![ExperimentName::from_name(name).ok_or_else(|| {
            let all: Vec<&str> = ExperimentName::ALL.iter().map(|e| e.name()).collect();
            Error::setting(format!(
                "--experiment {name:?} is not one of {}, all",
                all.join(", ")
            ))
        })?],
    };
    let tasks = Task::load_folder(&a.tasks)?;
    let find = |name: &str| {
        tasks
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or_else(|| Error::setting(format!("{} has no task {name:?}", a.tasks.display())))
    };
    let task = find(&a.task)?;
    if names == [ExperimentName::Scale] {
        return sweep_scale(&a, task);
    }
    let source = match &a.source {
        Some(name) => find(name)?,
        None => tasks
            .iter()
            .find(|t| t.name != a.task)
            .cloned()
            .ok_or_else(|| Error::setting("transfer needs a second task in the folder"))?,
    };
    let model = a.model.as_deref().ok_or_else(|| {
        Error::setting(format!("--experiment {} needs --model DIR", a.experiment))
    })?;
    let mut session = pollster::block_on(Session::new(load_model(model)?))?;
    session.set_task(task);
    for name in names {
        session.host.start(
            &mut session.engine,
            sweep_config(&a, name, Vec::new()),
            Some(source.clone()),
        )?;
        let started = Instant::now();
        let summary =
            run_experiment(|| pollster::block_on(session.host.step(&mut session.engine)))?;
        print!("{}", markdown(&summary, started.elapsed().as_secs_f64()));
    }
    Ok(())
}

fn sweep_config(a: &SweepArgs, name: ExperimentName, models: Vec<String>) -> ExperimentConfig {
    let base = Settings {
        seed: a.seed,
        ..Settings::default()
    };
    ExperimentConfig {
        steps: a.steps,
        seeds: a.seeds,
        models,
        ..ExperimentConfig::new(name, base)
    }
}

/// Scale on `--family`: each model is loaded when the plan reaches it (one in memory at a time).
fn sweep_scale(a: &SweepArgs, task: Task) -> Result<()> {
    if a.family.is_empty() {
        return Err(Error::setting(
            "--experiment scale needs --family DIR,DIR,... (model folders, smallest first)",
        ));
    }
    let names = a.family.iter().map(|dir| {
        let name = dir.file_name().unwrap_or(dir.as_os_str());
        name.to_string_lossy().into_owned()
    });
    let config = sweep_config(a, ExperimentName::Scale, names.collect());
    let mut experiment = Experiment::new(config, task, None)?;
    let mut loaded: Option<(usize, LoadedModel)> = None;
    let started = Instant::now();
    let summary = run_experiment(|| {
        // Nothing here goes to other engines: until the end there is always a next model.
        let k = experiment.model_needed().unwrap_or_default();
        if loaded.as_ref().is_none_or(|(i, _)| *i != k) {
            loaded = None; // the previous model's memory goes first
            loaded = Some((k, load_model(&a.family[k])?));
        }
        let (_, lm) = loaded.as_ref().expect("loaded above");
        pollster::block_on(experiment.step(lm, None))
    })?;
    print!("{}", markdown(&summary, started.elapsed().as_secs_f64()));
    Ok(())
}

/// Steps an experiment to its end with a progress bar; returns its summary.
fn run_experiment(
    mut step: impl FnMut() -> Result<ExperimentProgress>,
) -> Result<ExperimentSummary> {
    let bar = ProgressBar::new(0);
    loop {
        let p = step()?;
        bar.set_length(p.steps_total as u64);
        bar.set_position(p.steps_done as u64);
        bar.set_message(format!("{} seed {}", p.arm, p.seed));
        if let Some(done) = p.done {
            bar.finish_and_clear();
            return Ok(done);
        }
    }
}

/// An experiment's results as Markdown: a heading with its size and wall time, the finding to
/// compare with, and its tables (`report::tables`, the page's too).
fn markdown(summary: &ExperimentSummary, seconds: f64) -> String {
    let mut out = format!(
        "\n### {} — {} ({} steps, {} seeds, {seconds:.0} s)\n\n{}\n",
        summary.title, summary.task, summary.steps, summary.seeds, summary.finding
    );
    for table in report::tables(summary) {
        out += &report::markdown(&table);
    }
    if let Some(reading) = report::reading(summary) {
        out += &format!("\n{reading}\n");
    }
    out
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
