//! The page's copy of the engine's tables: the training settings (`settings.rs`), the
//! experiments (`experiments/`) and the adapter's file names (`adapter.rs`), as the ES module `www/settings.js` (a test keeps it current).
//! Above both, so neither needs the other.

use serde::Serialize;

use crate::adapter;
use crate::experiments::{
    DEFAULT_SEEDS, DEFAULT_STEPS, ExperimentName, FAMILY, MAX_SEEDS, OTHER_MODEL_SEEDS,
    OTHER_MODEL_STEPS,
};
use crate::settings::{InitName, NUMBERS, NumberSetting, PAGE_FIELDS};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitEntry {
    name: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Table {
    numbers: [NumberSetting; 5],
    /// The settings the page sends with a run (`Settings`' page fields).
    train_fields: [&'static str; 7],
    inits: Vec<InitEntry>,
    init_default: InitName,
    experiments: Vec<ExperimentEntry>,
    experiment_steps: usize,
    experiment_seeds: usize,
    /// The experiments' size on any model but the bundled one.
    other_model_experiment: ExperimentSize,
    experiment_seeds_max: usize,
    /// The bundled model's family (scale), smallest first: folders beside it.
    family: [&'static str; 3],
    /// A PEFT adapter's two files.
    adapter_files: AdapterFileNames,
}

#[derive(Serialize)]
struct ExperimentSize {
    steps: usize,
    seeds: usize,
}

#[derive(Serialize)]
struct AdapterFileNames {
    config: &'static str,
    weights: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExperimentEntry {
    name: &'static str,
    title: &'static str,
    finding: &'static str,
    /// Runs on the family, not on the loaded model.
    needs_family: bool,
}

/// The table as the page's ES module (`www/settings.js`).
pub fn page_module() -> String {
    let table = Table {
        numbers: NUMBERS,
        train_fields: PAGE_FIELDS,
        inits: InitName::ALL
            .iter()
            .map(|i| InitEntry {
                name: i.name(),
                label: i.label(),
            })
            .collect(),
        init_default: InitName::default(),
        experiments: ExperimentName::ALL
            .iter()
            .map(|e| ExperimentEntry {
                name: e.name(),
                title: e.title(),
                finding: e.finding(),
                needs_family: e.needs_family(),
            })
            .collect(),
        experiment_steps: DEFAULT_STEPS,
        experiment_seeds: DEFAULT_SEEDS,
        other_model_experiment: ExperimentSize {
            steps: OTHER_MODEL_STEPS,
            seeds: OTHER_MODEL_SEEDS,
        },
        experiment_seeds_max: MAX_SEEDS,
        family: FAMILY,
        adapter_files: AdapterFileNames {
            config: adapter::CONFIG_FILE,
            weights: adapter::WEIGHTS_FILE,
        },
    };
    let json = serde_json::to_string_pretty(&table).expect("the table serialises");
    format!(
        "// Generated from src/settings.rs (by src/page_table.rs) in `cargo test --test settings` (UPDATE=1 rewrites it):\n\
         // the training settings' names, bounds, defaults and help, and the experiments, declared once in Rust.\n\
         export default {json};\n"
    )
}
