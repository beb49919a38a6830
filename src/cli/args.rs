//! The command line's arguments: each command's, and the settings table's numbers as flags.

use std::path::PathBuf;

use soft_prompt_lab::experiments::{self};
use soft_prompt_lab::schedule::EvalCadence;
use soft_prompt_lab::settings::{
    self, InitName, NUMBERS, NumberSetting, OptimizerName, SEED, Settings,
};
use soft_prompt_lab::{Error, Result};

pub(super) fn init_arg(s: &str) -> std::result::Result<InitName, String> {
    InitName::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = InitName::ALL.iter().map(|i| i.name()).collect();
        format!("{s:?} is not one of {}", names.join(", "))
    })
}

pub(super) fn optimizer_arg(s: &str) -> std::result::Result<OptimizerName, String> {
    OptimizerName::from_name(s).ok_or_else(|| format!("{s:?} is not one of adam, adamw, sgd"))
}

/// The settings table's numbers (`settings::NUMBERS`: virtual tokens, learning rate, steps,
/// batch, seed) as flags, each named, defaulted and explained by its row, so a new number in the
/// table needs no code here. Values are checked against the table's bounds by the session.
#[derive(Debug, Clone)]
pub(super) struct TableNumbers(Vec<(&'static str, f64)>);

/// `virtualTokens` -> `virtual-tokens`.
pub(super) fn flag_name(name: &str) -> String {
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
pub(super) struct PromptArgs {
    #[command(flatten)]
    pub(super) numbers: TableNumbers,
    /// class-labels (sample-vocab on a generation task; `auto` is the same), sample-vocab,
    /// random (N(0, 1)), uniform (U[-0.5, 0.5]) or text (needs --init-text).
    #[arg(long, value_parser = init_arg, default_value = InitName::default().name())]
    pub(super) init: InitName,
    #[arg(long, default_value = "")]
    pub(super) init_text: String,
    /// Sample init vectors only from the first K token ids.
    #[arg(long)]
    pub(super) init_first_k: Option<usize>,
    /// adam, adamw or sgd.
    #[arg(long, value_parser = optimizer_arg, default_value = OptimizerName::default().name())]
    pub(super) optimizer: OptimizerName,
    #[arg(long, default_value_t = settings::WEIGHT_DECAY)]
    pub(super) weight_decay: f32,
    /// Clip the prompt gradient to this norm; 0 turns clipping off.
    #[arg(long, default_value_t = settings::MAX_GRAD_NORM)]
    pub(super) max_grad_norm: f32,
    /// Held-out accuracy every N steps (0: only at the end); by default whenever evaluating
    /// keeps within a share of the run's time (schedule::OVERHEAD_SHARE).
    #[arg(long)]
    pub(super) eval_every: Option<usize>,
}

impl PromptArgs {
    /// The settings: the table's numbers by name (through the settings' own serde form, so no
    /// field is copied here by hand), then the choices above.
    pub(super) fn settings(&self) -> Result<Settings> {
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

    pub(super) fn cadence(&self) -> EvalCadence {
        self.eval_every
            .map_or_else(EvalCadence::default, EvalCadence::Every)
    }
}

#[derive(clap::Args)]
pub(super) struct TrainArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub(super) model: PathBuf,
    /// Training examples, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    pub(super) train: PathBuf,
    /// Held-out examples for the accuracy shown while training (default: every fifth example of
    /// --train, kept out of training, as the page does).
    #[arg(long)]
    pub(super) eval: Option<PathBuf>,
    /// Comma-separated labels: score as classification (verbalizer) instead of exact-match generation.
    #[arg(long, value_delimiter = ',')]
    pub(super) labels: Vec<String>,
    /// Where to write adapter_config.json and adapter_model.safetensors.
    #[arg(long)]
    pub(super) out: PathBuf,
    #[command(flatten)]
    pub(super) prompt: PromptArgs,
}

#[derive(clap::Args)]
#[group(id = "what", required = true, args = ["data", "tasks"])]
pub(super) struct EvalArgs {
    #[arg(long)]
    pub(super) model: PathBuf,
    /// Examples to score, JSONL {"input": ..., "output": ...}.
    #[arg(long)]
    pub(super) data: Option<PathBuf>,
    /// A folder of tasks (index.json, <task>/task.json, train and test splits).
    #[arg(long)]
    pub(super) tasks: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    pub(super) labels: Vec<String>,
    /// A PEFT prompt-tuning adapter directory (with --data).
    #[arg(long)]
    pub(super) adapter: Option<PathBuf>,
    /// A text prompt put before every input (with --data).
    #[arg(long)]
    pub(super) text_prompt: Option<String>,
    #[command(flatten)]
    pub(super) prompt: PromptArgs,
}

#[derive(clap::Args)]
pub(super) struct SweepArgs {
    /// The model the experiments run on (all but scale).
    #[arg(long)]
    pub(super) model: Option<PathBuf>,
    /// Scale's family: model folders, smallest first, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(super) family: Vec<PathBuf>,
    /// A folder of tasks (index.json, <task>/task.json, train and test splits).
    #[arg(long)]
    pub(super) tasks: PathBuf,
    /// The task the experiments run on.
    #[arg(long)]
    pub(super) task: String,
    /// prompt-length, init, transfer, text-vs-soft, ensemble, all (those five), or scale.
    #[arg(long, default_value = "all")]
    pub(super) experiment: String,
    /// The task transfer starts from (default: the folder's first other task).
    #[arg(long)]
    pub(super) source: Option<String>,
    /// Training steps per run (the page's default, so both give the same tables).
    #[arg(long, default_value_t = experiments::DEFAULT_STEPS)]
    pub(super) steps: usize,
    /// Seeds per setting.
    #[arg(long, default_value_t = experiments::DEFAULT_SEEDS)]
    pub(super) seeds: usize,
    /// The first seed (the others follow it).
    #[arg(long, default_value_t = SEED.default as u64)]
    pub(super) seed: u64,
}

#[derive(clap::Args)]
pub(super) struct GenerateArgs {
    #[arg(long)]
    pub(super) model: PathBuf,
    #[arg(long)]
    pub(super) adapter: Option<PathBuf>,
    #[arg(long)]
    pub(super) text: String,
    #[arg(long, default_value_t = 16)]
    pub(super) max_new_tokens: usize,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    pub(super) temperature: Option<f32>,
    /// Sample only among the K most likely tokens (implies sampling, temperature 1 by default).
    #[arg(long)]
    pub(super) top_k: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
}
