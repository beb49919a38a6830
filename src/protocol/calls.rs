//! The worker's calls into the engine, declared once: `Lab::handle({op, ...})` takes a `Call`
//! (src/web/handle.rs); the calls that carry bulk data (a model's files, a prompt's values, the
//! pool's functions) are methods of their own, listed in the same table as the fast path. The
//! page's `www/protocol.js` gets the ops as `CALL` (checked against this enum by a test).

use serde::Deserialize;

use crate::adapter::Precision;
use crate::error::Result;
use crate::experiments::ExperimentConfig;
use crate::job::Job;
use crate::session::JobAnswer;
use crate::settings::Settings;
use crate::tasks::Task;

/// A built-in task's files, as text: its `task.json` and its two splits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFiles {
    pub spec: String,
    pub train: String,
    pub test: String,
}

impl TaskFiles {
    pub fn task(&self) -> Result<Task> {
        Task::builtin(self.spec.as_bytes(), &self.train, &self.test)
    }
}

/// One call of `Lab::handle`: `{op: 'set-steps', steps: 40}`.
#[derive(Debug, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Call {
    SetBuiltinTask(TaskFiles),
    SetCustomTask {
        name: String,
        text: String,
    },
    LossWithoutPrompt,
    TimeSteps {
        steps: usize,
    },
    Reset {
        settings: Settings,
    },
    SetSteps {
        steps: usize,
    },
    Finished,
    Advance,
    Compare,
    Evaluate,
    Generate {
        text: String,
        max_new_tokens: usize,
    },
    Tokenize {
        text: String,
    },
    Export {
        base_model: String,
        /// f32 when not given (undefined from the page).
        #[serde(default)]
        precision: Option<Precision>,
    },
    StartExperiment {
        config: ExperimentConfig,
        source: Option<TaskFiles>,
    },
    ExperimentTick {
        answers: Vec<JobAnswer>,
        idle: usize,
    },
    ExperimentStep,
    StartJob {
        task: Task,
        job: Job,
    },
    JobStep,
    JobModelNeeded {
        job: Job,
    },
}

/// A row of the table: an op of `handle`, or (`method`) a call with its own method.
pub struct EngineCall {
    /// The op's name, or the JS method's where the call carries bulk data.
    pub name: &'static str,
    pub fields: &'static str,
    pub answer: &'static str,
    /// A method of its own, not an op of `handle`.
    pub method: bool,
}

const fn op(name: &'static str, fields: &'static str, answer: &'static str) -> EngineCall {
    EngineCall {
        name,
        fields,
        answer,
        method: false,
    }
}

const fn method(name: &'static str, fields: &'static str, answer: &'static str) -> EngineCall {
    EngineCall {
        name,
        fields,
        answer,
        method: true,
    }
}

pub const CALLS: &[EngineCall] = &[
    method(
        "inspect",
        "(config, header?, downloadBytes, batch, nVirtual, engines)",
        "CheckpointSummary",
    ),
    method(
        "load",
        "(config, weights, tokenizer, helper)",
        "{info, mapPoints, mapLabels, explained} (no map on a helper)",
    ),
    op(
        "set-builtin-task",
        "{spec, train, test} (text)",
        "task summary",
    ),
    op("set-custom-task", "{name, text}", "task summary"),
    op("loss-without-prompt", "{}", "loss"),
    op("time-steps", "{steps}", "median ms"),
    op("reset", "{settings}", "prompt view"),
    op("set-steps", "{steps}", "undefined"),
    op("finished", "{}", "boolean"),
    op("advance", "{}", "Progress"),
    op("compare", "{}", "{noPrompt, textPrompt, softPrompt}"),
    op("evaluate", "{}", "the soft prompt's EvalView"),
    op("generate", "{text, maxNewTokens}", "text"),
    op("tokenize", "{text}", "[{id, text}]"),
    op(
        "export",
        "{baseModel, precision?: 'f32' | 'f16'}",
        "{config, weights} (Uint8Array)",
    ),
    method(
        "importAdapter",
        "(config, weights, settings, modelName)",
        "{nVirtual, prompt}",
    ),
    method(
        "restorePrompt",
        "(values: Float32Array, nVirtual, settings)",
        "prompt view",
    ),
    op(
        "start-experiment",
        "{config, source?: {spec, train, test}}",
        "undefined",
    ),
    op(
        "experiment-tick",
        "{answers: [{index, result | null}], idle}",
        "{reports: [ExperimentProgress], jobs: [{job, task}], loadMember?, done}",
    ),
    op("experiment-step", "{}", "ExperimentProgress"),
    method(
        "loadFamilyMember",
        "(index, config, weights, tokenizer)",
        "undefined",
    ),
    method("setHelpers", "(compute, evaluate, idle)", "undefined"),
    method(
        "partGradient",
        "(prompt: Float32Array, shape, rows)",
        "{loss, grad: Float32Array}",
    ),
    method(
        "evalPart",
        "(prompt: Float32Array, nVirtual, kind, examples)",
        "answers",
    ),
    op("start-job", "{task, job}", "undefined"),
    op("job-step", "{}", "JobResult | undefined"),
    op(
        "job-model-needed",
        "{job}",
        "family member index | undefined",
    ),
    method("testHook", "({hook, ...})", "src/web/hooks.rs"),
];

/// The table as `www/protocol.js`' comment lines.
pub(super) fn table_comment() -> String {
    let mut out = String::from(
        "//\n// Engine calls (worker -> wasm): `lab.handle({op, ...fields})` (src/protocol/calls.rs), or a\n\
         // method of their own where they carry bulk data (`lab.name(args)`)\n",
    );
    for c in CALLS {
        let how = match c.method {
            true => format!("lab.{}{}", c.name, c.fields),
            false => format!("{} {}", c.name, c.fields),
        };
        out += &format!("//   {how} -> {}\n", c.answer);
    }
    out
}
