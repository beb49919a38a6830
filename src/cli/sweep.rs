//! `sweep`: the method's findings on one task of a folder, as Markdown tables.

use std::time::Instant;

use indicatif::ProgressBar;
use soft_prompt_lab::experiments::{
    Experiment, ExperimentConfig, ExperimentName, ExperimentProgress, ExperimentSummary,
};
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::report;
use soft_prompt_lab::session::Session;
use soft_prompt_lab::settings::Settings;
use soft_prompt_lab::tasks::Task;
use soft_prompt_lab::{Error, Result};

use super::args::SweepArgs;
use super::load_model;

pub(super) fn sweep(a: SweepArgs) -> Result<()> {
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

pub(super) fn sweep_config(
    a: &SweepArgs,
    name: ExperimentName,
    models: Vec<String>,
) -> ExperimentConfig {
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
pub(super) fn sweep_scale(a: &SweepArgs, task: Task) -> Result<()> {
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
pub(super) fn run_experiment(
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
pub(super) fn markdown(summary: &ExperimentSummary, seconds: f64) -> String {
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
