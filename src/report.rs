//! An experiment's results as tables: rows, labels and number formats decided here once, so the
//! command line's Markdown (`sweep`) and the page's HTML tables (`web` sends them with the
//! summary) are the same table.

use serde::Serialize;

use crate::experiments::{ArmSummary, ExperimentSummary, Footprint, ModelSize, SCALE_METHODS};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Held-out accuracy as the tables print it (NaN, a run not finished, prints `NaN%`).
pub fn percent(x: f32) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Every table of `summary`: its arms; for transfer the mean accuracy by step of each arm with a
/// curve; for scale the Figure-1 table (a row per model).
pub fn tables(summary: &ExperimentSummary) -> Vec<Table> {
    let mut out = vec![arms(summary)];
    out.extend(curves(summary));
    if !summary.models.is_empty() {
        out.push(scale(summary));
        out.push(footprints(summary));
    }
    out
}

/// `n` with thousands separated: 2,578,560.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.1} KB", n as f64 / 1e3),
    }
}

fn millions(parameters: u64) -> String {
    format!("{:.2} M", parameters as f64 / 1e6)
}

/// The base model after a run, as the tables and the reading say it.
fn base_after(f: &Footprint) -> &'static str {
    if f.base_unchanged {
        "bit-identical"
    } else {
        "changed"
    }
}

/// The footprint of arm `arm`'s last seed.
fn last_footprint(summary: &ExperimentSummary, arm: usize) -> Option<Footprint> {
    summary.runs.iter().rev().find(|r| r.arm == arm)?.footprint
}

/// The arm of method `m` (`SCALE_METHODS` order) on `model`, by its index in the summary.
fn scale_arm(summary: &ExperimentSummary, model: usize, m: usize) -> Option<usize> {
    let mut on_model = summary
        .arms
        .iter()
        .enumerate()
        .filter(|(_, a)| a.model == model);
    on_model.nth(m).map(|(i, _)| i)
}

/// What each training method changed on each model (its last seed's run): the contrast the
/// method is about.
fn footprints(summary: &ExperimentSummary) -> Table {
    let rows = summary.arms.iter().enumerate().filter_map(|(i, arm)| {
        let f = last_footprint(summary, i)?;
        Some(vec![
            summary.models[arm.model].name.clone(),
            arm.label.clone(),
            thousands(f.learnt),
            format!(
                "{} of {}",
                thousands(f.weights_changed),
                thousands(f.weights)
            ),
            bytes(f.optimizer_bytes),
            base_after(&f).to_string(),
        ])
    });
    Table {
        caption: "What each method changed (each model's last seed; the base's fingerprint after the run)"
            .to_string(),
        header: strings([
            "model",
            "method",
            "numbers learnt",
            "weights changed",
            "optimizer state",
            "base model after",
        ]),
        rows: rows.collect(),
    }
}

fn arms(summary: &ExperimentSummary) -> Table {
    let rows = summary.arms.iter().map(|arm| {
        let mut row = vec![summary.label(arm)];
        row.extend([arm.mean, arm.min, arm.max].map(percent));
        row.push(arm.runs.to_string());
        row
    });
    Table {
        caption: format!("{} on {}: held-out accuracy", summary.title, summary.task),
        header: strings(["setting", "mean", "min", "max", "runs"]),
        rows: rows.collect(),
    }
}

fn curves(summary: &ExperimentSummary) -> Option<Table> {
    let curved: Vec<&ArmSummary> = summary
        .arms
        .iter()
        .filter(|a| !a.curve.is_empty())
        .collect();
    let first = curved.first()?;
    let mut header = vec!["step".to_string()];
    header.extend(curved.iter().map(|a| a.label.clone()));
    let rows = first.curve.iter().enumerate().map(|(k, (step, _))| {
        let mut row = vec![step.to_string()];
        row.extend(curved.iter().map(|a| percent(a.curve[k].1)));
        row
    });
    Some(Table {
        caption: "Held-out accuracy by step (mean over seeds)".to_string(),
        header,
        rows: rows.collect(),
    })
}

/// Scale as Figure 1 reads: a row per model, held-out accuracy by method (mean over seeds, with
/// the lowest and highest seed).
fn scale(summary: &ExperimentSummary) -> Table {
    let methods = summary.arms.iter().filter(|arm| arm.model == 0);
    let mut header = strings(["model", "parameters"]);
    header.extend(methods.map(|arm| arm.label.clone()));
    let rows = summary.models.iter().enumerate().map(|(k, size)| {
        let mut row = vec![size.name.clone(), millions(size.parameters)];
        let cells = summary.arms.iter().filter(|arm| arm.model == k);
        row.extend(cells.map(|arm| match arm.runs {
            0 | 1 => percent(arm.mean),
            _ => format!(
                "{} ({}–{})",
                percent(arm.mean),
                percent(arm.min),
                percent(arm.max)
            ),
        }));
        row
    });
    Table {
        caption: format!(
            "Held-out accuracy on {} by model size (mean, lowest–highest seed)",
            summary.task
        ),
        header,
        rows: rows.collect(),
    }
}

/// `table` as a Markdown table under its caption.
pub fn markdown(table: &Table) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = format!("\n{}\n\n", table.caption);
    out += &line(&table.header);
    out += &format!("|{}\n", " --- |".repeat(table.header.len()));
    for row in &table.rows {
        out += &line(row);
    }
    out
}

/// What prompt tuning and model tuning changed on the largest model (the last seed's runs), as
/// sentences; none without both footprints.
fn contrast(summary: &ExperimentSummary, last: &ModelSize) -> String {
    let last_model = summary.models.len() - 1;
    let footprint = |m: usize| last_footprint(summary, scale_arm(summary, last_model, m)?);
    match (footprint(1), footprint(2)) {
        (Some(p), Some(m)) => format!(
            " On {}, prompt tuning learnt {} numbers and left the model {} (one model serves every \
             task, with a small prompt each); model tuning changed {} of its {} weights, a copy of \
             the model per task, and kept {} of optimizer state against {}.",
            last.name,
            thousands(p.learnt),
            base_after(&p),
            thousands(m.weights_changed),
            thousands(m.weights),
            bytes(m.optimizer_bytes),
            bytes(p.optimizer_bytes),
        ),
        _ => String::new(),
    }
}

/// What a finished scale experiment shows here, beside the paper: the gap between model tuning
/// and prompt tuning on the smallest and the largest model, and why a toy family may disagree.
pub fn reading(summary: &ExperimentSummary) -> Option<String> {
    let (first, last) = (summary.models.first()?, summary.models.last()?);
    // Each model's arms in SCALE_METHODS order: [text, prompt tuning, model tuning].
    let method = |model: usize, m: usize| {
        scale_arm(summary, model, m).map_or(f32::NAN, |i| summary.arms[i].mean)
    };
    let gap = |model: usize| 100.0 * (method(model, 2) - method(model, 1));
    let (g0, g1) = (gap(0), gap(summary.models.len() - 1));
    let lead = |g: f32| match g >= 0.0 {
        true => format!("model tuning leads by {g:.1} points"),
        false => format!("prompt tuning leads by {:.1} points", -g),
    };
    // The second figure names its leader only when the lead changed hands.
    let then = match (g0 >= 0.0) == (g1 >= 0.0) {
        true => format!("by {:.1} points", g1.abs()),
        false => lead(g1),
    };
    let trend = match g1 - g0 {
        d if d < -5.0 => "the gap narrows as the model grows, as in the paper",
        d if d > 5.0 => "the gap widens as the model grows, unlike the paper",
        _ => "the gap hardly changes with size here",
    };
    let [text, prompt, _] = SCALE_METHODS;
    let contrast = contrast(summary, last);
    Some(format!(
        "Here, on {task}: {} on {} ({}) and {} on {} ({}): {trend}.{contrast} \
         Expect this family to disagree with the paper: its models have {} to {} parameters, the \
         paper's 60 M to 11 B, and prompt tuning matched model tuning only past about 10 B. The \
         smallest models may lack the skill for any method: a prompt can only steer what the frozen \
         model already knows (on {}: {prompt} {}, the {text} {}), while model tuning rewrites every \
         weight and can still learn the task.",
        lead(g0),
        first.name,
        millions(first.parameters),
        then,
        last.name,
        millions(last.parameters),
        millions(first.parameters),
        millions(last.parameters),
        first.name,
        percent(method(0, 1)),
        percent(method(0, 0)),
        task = summary.task,
    ))
}
