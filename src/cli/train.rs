//! `train` and `eval`: one soft prompt trained and saved, accuracy with or without one, and a
//! task folder's table.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use soft_prompt_lab::adapter::{self, Precision};
use soft_prompt_lab::error::write_file;
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::Prompting;
use soft_prompt_lab::report::percent;
use soft_prompt_lab::schedule::{EvalCadence, median};
use soft_prompt_lab::session::Session;
use soft_prompt_lab::settings::Settings;
use soft_prompt_lab::tasks::{Task, chance_level, read_examples, split_held_out};
use soft_prompt_lab::{Error, Result};

use super::args::{EvalArgs, TrainArgs};
use super::{load_adapter, load_model, task_kind};

/// What a run measured: its last held-out accuracy, the median training step alone, and the
/// held-out evaluations apart (they are in the run's wall time, not in the step).
pub(super) struct Fitted {
    pub(super) accuracy: f32,
    pub(super) held_out: usize,
    pub(super) median_step_ms: f64,
    pub(super) evaluations: usize,
    pub(super) eval_ms: f64,
    pub(super) seconds: f64,
}

impl Fitted {
    /// The figures, each named for what it measures.
    pub(super) fn summary(&self) -> String {
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
pub(super) fn fit(
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

pub(super) fn train(a: TrainArgs) -> Result<()> {
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
    let files = pollster::block_on(session.lab.export(
        &session.engine,
        &a.model.display().to_string(),
        Precision::F32,
    ))?;
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

pub(super) fn eval(a: EvalArgs) -> Result<()> {
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
pub(super) fn eval_tasks(a: EvalArgs) -> Result<()> {
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
