//! Planning an experiment: its arms and their seeded runs (what each trains or scores), made
//! once from the config, the task and transfer's source task.

use crate::error::{Error, Result};
use crate::settings::{InitName, Settings};
use crate::tasks::{Task, TaskKind};

use super::{ENSEMBLE_SIZE, ExperimentConfig, ExperimentName, SCALE_METHODS};

/// How a run starts and ends.
#[derive(Debug, Clone)]
pub(super) enum RunKind {
    /// Train from a fresh prompt (`from_source`: from the source task's prompt of the same seed).
    Train {
        settings: Settings,
        from_source: bool,
        on_source: bool,
    },
    /// Train every weight of a copy of the model (scale), with the settings' seed and batch.
    ModelTune(Settings),
    /// Evaluate a text prompt: nothing to train.
    Text(String),
    /// Count the votes of the ensemble's runs.
    Vote,
}

impl RunKind {
    /// A training (a job another engine could run), not a text prompt's scoring or the vote.
    pub(super) fn trains(&self) -> bool {
        matches!(self, Self::Train { .. } | Self::ModelTune(_))
    }
}

#[derive(Debug, Clone)]
pub(super) struct RunSpec {
    pub(super) arm: usize,
    /// The model it runs on: an index into the config's `models` (0 when there are none).
    pub(super) model: usize,
    pub(super) seed: u64,
    pub(super) kind: RunKind,
}

/// The task a run of `kind` trains on: the experiment's `task`, or transfer's source task. (A
/// free function: callers borrow these fields beside others they change.)
pub(super) fn task_for<'a>(
    task: &'a Task,
    source: Option<&'a Task>,
    kind: &RunKind,
) -> Result<&'a Task> {
    match kind {
        RunKind::Train {
            on_source: true, ..
        } => source.ok_or_else(|| Error::setting("no source task")),
        _ => Ok(task),
    }
}

/// A few hand-written text prompts for a task: its own, a bare question, and for classification
/// the labels spelled out.
fn text_prompts(task: &Task) -> Vec<String> {
    let mut out = vec![task.text_prompt.clone(), "Answer: ".to_string()];
    if let TaskKind::Classify { labels } = &task.kind {
        let names: Vec<&str> = labels.iter().map(|l| l.trim()).collect();
        out.push(format!("Answer {}. ", names.join(" or ")));
    }
    out.retain(|p| !p.trim().is_empty());
    out.dedup();
    out
}

/// An experiment's arms and their runs, as its planner adds them.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) arms: Vec<(String, usize)>,
    pub(super) runs: Vec<RunSpec>,
    /// The model the next arms run on.
    pub(super) model: usize,
}

impl Plan {
    pub(super) fn arm(&mut self, label: impl Into<String>, runs: Vec<(u64, RunKind)>) {
        let (arm, model) = (self.arms.len(), self.model);
        self.arms.push((label.into(), model));
        let specs = runs.into_iter().map(|(seed, kind)| RunSpec {
            arm,
            model,
            seed,
            kind,
        });
        self.runs.extend(specs);
    }
}

/// The arms and runs of `config` on `task` (transfer starts from `source`).
pub(super) fn plan(config: &ExperimentConfig, task: &Task, source: Option<&Task>) -> Result<Plan> {
    let planning = Planning {
        config,
        seeds: (0..config.seeds as u64)
            .map(|s| config.base.seed + s)
            .collect(),
    };
    let mut plan = Plan::default();
    match config.name {
        ExperimentName::PromptLength => planning.prompt_length(&mut plan),
        ExperimentName::Init => planning.init(task, &mut plan),
        ExperimentName::Transfer => planning.transfer(task, source, &mut plan)?,
        ExperimentName::TextVsSoft => planning.text_vs_soft(task, &mut plan),
        ExperimentName::Ensemble => planning.ensemble(&mut plan),
        ExperimentName::Scale => planning.scale(task, &mut plan)?,
    }
    Ok(plan)
}

/// What every planner starts from: the base settings at the experiment's step count, and the
/// seeds of each arm.
struct Planning<'a> {
    config: &'a ExperimentConfig,
    seeds: Vec<u64>,
}

impl Planning<'_> {
    /// The base settings for `seed`, changed by `f` (the arm's one difference).
    fn settings(&self, seed: u64, f: impl Fn(&mut Settings)) -> Settings {
        let mut s = self.config.base.clone();
        s.steps = self.config.steps;
        s.seed = seed;
        f(&mut s);
        s
    }

    /// One training per seed, each with `f`'s change.
    fn trainings(&self, f: impl Fn(&mut Settings)) -> Vec<(u64, RunKind)> {
        let train = |settings| RunKind::Train {
            settings,
            from_source: false,
            on_source: false,
        };
        let runs = self
            .seeds
            .iter()
            .map(|&seed| (seed, train(self.settings(seed, &f))));
        runs.collect()
    }

    fn prompt_length(&self, plan: &mut Plan) {
        for n in [1, 2, 4, 8, 16] {
            let label = format!("{n} virtual token{}", if n == 1 { "" } else { "s" });
            plan.arm(label, self.trainings(|s| s.virtual_tokens = n));
        }
    }

    fn init(&self, task: &Task, plan: &mut Plan) {
        let mut inits = vec![
            InitName::Random,
            InitName::Uniform,
            InitName::SampleVocab,
            InitName::ClassLabels,
        ];
        // Text init starts from the task's own text prompt; your own examples have none.
        if !task.text_prompt.trim().is_empty() {
            inits.push(InitName::Text);
        }
        for init in inits {
            let label = match (init, &task.kind) {
                (InitName::ClassLabels, TaskKind::Generate) => {
                    "class labels (no labels here: sampled vocabulary)".to_string()
                }
                _ => init.label().to_string(),
            };
            let runs = self.trainings(|s| {
                s.init = init;
                s.init_text = task.text_prompt.clone();
            });
            plan.arm(label, runs);
        }
    }

    fn transfer(&self, task: &Task, source: Option<&Task>, plan: &mut Plan) -> Result<()> {
        let source = source.ok_or_else(|| Error::setting("transfer needs a source task"))?;
        if source.name == task.name {
            return Err(Error::setting(
                "transfer needs a source task other than the task itself",
            ));
        }
        let runs = |from_source, on_source| {
            let kind = |seed| RunKind::Train {
                settings: self.settings(seed, |_| {}),
                from_source,
                on_source,
            };
            self.seeds.iter().map(|&seed| (seed, kind(seed))).collect()
        };
        plan.arm(format!("{} (source)", source.name), runs(false, true));
        plan.arm(format!("from {}'s prompt", source.name), runs(true, false));
        plan.arm("from scratch", runs(false, false));
        Ok(())
    }

    fn text_vs_soft(&self, task: &Task, plan: &mut Plan) {
        for text in text_prompts(task) {
            plan.arm(format!("text: {text:?}"), vec![(0, RunKind::Text(text))]);
        }
        plan.arm("soft prompt", self.trainings(|_| {}));
    }

    /// On each model: the task's own text prompt, prompt tuning and model tuning.
    fn scale(&self, task: &Task, plan: &mut Plan) -> Result<()> {
        if self.config.models.is_empty() {
            return Err(Error::setting(
                "the scale experiment needs a family of models",
            ));
        }
        let text = text_prompts(task).swap_remove(0);
        let [text_label, prompt_label, model_label] = SCALE_METHODS;
        for model in 0..self.config.models.len() {
            plan.model = model;
            plan.arm(text_label, vec![(0, RunKind::Text(text.clone()))]);
            plan.arm(prompt_label, self.trainings(|_| {}));
            let tunings = self.seeds.iter().map(|&seed| {
                let settings = self.settings(seed, |_| {});
                (seed, RunKind::ModelTune(settings))
            });
            plan.arm(model_label, tunings.collect());
        }
        Ok(())
    }

    fn ensemble(&self, plan: &mut Plan) {
        for (seed, run) in self.trainings(|_| {}).into_iter().take(ENSEMBLE_SIZE) {
            plan.arm(format!("prompt {}", seed + 1), vec![(seed, run)]);
        }
        plan.arm("majority vote", vec![(0, RunKind::Vote)]);
    }
}
