//! The messages between the page (main thread) and the engine worker, declared once: each
//! request's name, fields, answer and whether it is handled ahead of the queue; each event's name
//! and fields; and the worker's calls into the engine (`calls.rs`). The page's `www/protocol.js`
//! (the constants both sides import and these tables as its comment) is generated from here:
//! `cargo test --test settings` keeps it current.

pub mod calls;

use crate::loader::MODEL_FILES;

/// A request (page -> worker): it carries an `id` and is answered by `reply` or `error`.
pub struct Request {
    pub name: &'static str,
    pub fields: &'static str,
    pub answer: &'static str,
    /// Handled as it arrives, not after the request in progress (it acts on that one).
    pub ahead: bool,
    pub about: &'static str,
}

/// An event (worker -> page), with no id.
pub struct Event {
    pub name: &'static str,
    pub fields: &'static str,
    pub about: &'static str,
}

const fn req(
    name: &'static str,
    fields: &'static str,
    answer: &'static str,
    about: &'static str,
) -> Request {
    Request {
        name,
        fields,
        answer,
        ahead: false,
        about,
    }
}

const fn ahead(name: &'static str, about: &'static str) -> Request {
    Request {
        name,
        fields: "{}",
        answer: "undefined",
        ahead: true,
        about,
    }
}

pub const REQUESTS: &[Request] = &[
    req(
        "init",
        "{backend: 'webgpu' | 'cpu', workers?, helper?}",
        "{backend, adapter}",
        "workers: engines to train with on the CPU path (0: as cores and memory allow); helper: this worker is one of another's helper engines (www/pool.js)",
    ),
    req(
        "inspect",
        "{source, batch, nVirtual}",
        "src/inspect.rs CheckpointSummary, gpuBufferLimit (null on the CPU) and pool {size, why}",
        "what the model will cost, before its weights are fetched: family, params, header {dtype}, downloadBytes, memory {weights, file, ..., engines, helper, total} for the engines the page would start (pool), refusal?",
    ),
    req(
        "load-model",
        "{source}",
        "{info, mapPoints, mapLabels, explained, timings, downloadNotes, wasmBytes} | {cancelled: true}",
        "wasmBytes: the engine's memory once loaded (wasm memory never shrinks: its peak); timings (ms): wasmMs (worker start to wasm compiled), fetchMs, parseMs, fingerprintMs, mapMs; source = {kind: 'url', base, id?} (id: a Hub model's owner/name) | {kind: 'files', config, weights, tokenizer} (ArrayBuffers)",
    ),
    ahead(
        "cancel-load",
        "stops the download in progress; the load answers {cancelled: true}",
    ),
    req(
        "set-task",
        "{builtin: name, base} | {custom: {name, text}}",
        "task summary",
        "its loss with no prompt follows as a `baseline` event once a prompt is ready",
    ),
    req(
        "reset",
        "{settings}",
        "prompt view",
        "a new prompt; stops training",
    ),
    req(
        "play",
        "{steps}",
        "{started, finished}",
        "trains to `steps` (progress events); not started when a pause came after it, or when the run is already there (finished)",
    ),
    req(
        "set-steps",
        "{steps}",
        "undefined",
        "the step count of the run in progress, which goes on (a run sized to a minute)",
    ),
    ahead(
        "pause",
        "the training loop stops after the current step; an experiment is cancelled",
    ),
    req(
        "step",
        "{steps}",
        "undefined",
        "one step: one progress event",
    ),
    req(
        "compare",
        "{}",
        "{noPrompt, textPrompt, softPrompt} eval views",
        "the held-out set three ways",
    ),
    req(
        "evaluate",
        "{}",
        "the soft prompt's eval view",
        "the held-out set with the soft prompt alone (kept for compare)",
    ),
    req("tokenize", "{text}", "[{id, text}]", "what the model reads"),
    req(
        "generate",
        "{text}",
        "continuation text",
        "with the soft prompt",
    ),
    req(
        "export",
        "{baseModel, precision?}",
        "{config, weights} (Uint8Array)",
        "the prompt as PEFT adapter files; precision 'f16' for a link (src/adapter.rs Precision)",
    ),
    req(
        "restore-prompt",
        "{values, nVirtual, settings}",
        "prompt view",
        "the prompt the page kept from its last view, after a restart",
    ),
    req(
        "experiment",
        "{config: {name, steps, seeds, base, models?}, source?, base?, modelsBase?}",
        "undefined",
        "runs the experiment on the current task (experiment-progress events; `pause` cancels it); source: the built-in task transfer starts from; models: scale's family, folders under modelsBase",
    ),
    req(
        "simulate-gpu-loss",
        "{}",
        "undefined",
        "destroys the WebGPU device (tests)",
    ),
    req(
        "crash-next",
        "{point: 'load' | 'train' | 'experiment', how?: 'panic' | 'out-of-memory'}",
        "undefined",
        "the engine panics (or runs out of memory) there next (tests)",
    ),
    req(
        "time-steps",
        "{steps}",
        "median ms",
        "of a default-sized training step on this backend (a throwaway prompt; backend \"auto\")",
    ),
    req(
        "time-parts",
        "{parts, steps}",
        "median ms",
        "of one engine's part of that step when `parts` engines share it (the bench's pool sizes)",
    ),
    req(
        "part",
        "{prompt, shape, rows}",
        "{loss, grad}",
        "a helper's share of a step's batch (src/pool.rs; rows as JSON)",
    ),
    req(
        "eval-part",
        "{prompt, nVirtual, kind, examples}",
        "each example's predicted answer",
        "a helper's share of a held-out evaluation (kind and examples as JSON)",
    ),
    ahead("kill-helper", "ends one helper abruptly (tests)"),
    Request {
        name: "helper-port",
        fields: "{helper} and a MessagePort",
        answer: "undefined",
        ahead: true,
        about: "the lab's end of the channel to the helper it asked for (`spawn-helper`)",
    },
    Request {
        name: "helper-failed",
        fields: "{helper, message}",
        answer: "undefined",
        ahead: true,
        about: "that helper's worker failed (it could not start, or an error escaped it): its requests fail",
    },
    Request {
        name: "connect",
        fields: "{} and a MessagePort",
        answer: "none",
        ahead: true,
        about: "the page to a helper it started: the lab's requests come over the port from now on, and the helper's answers and events go back over it",
    },
    req(
        "job",
        "{task, job, family}",
        "the job's result (src/job.rs JobResult) | {cancelled: true}",
        "a helper runs one training of another's experiment (src/experiments/ take_job); family: scale's {base, names}, the job's model among them",
    ),
    ahead("cancel-job", "the job stops after its current step"),
    req(
        "import",
        "{config, weights, settings, modelName}",
        "{nVirtual, prompt}",
        "modelName: the loaded model's name, checked against the adapter's base model",
    ),
];

pub const EVENTS: &[Event] = &[
    Event {
        name: "load-progress",
        fields: "{file, loaded, total, secondsLeft?}",
        about: "bytes of a model file received (total 0 when unknown)",
    },
    Event {
        name: "progress",
        fields: "{step, loss, gradNorm, target, msPerStep, prompt?, accuracy?, evalMs?, done?, deviceMemory?, wasmBytes}",
        about: "one turn of the run's schedule (src/session/views.rs `Progress`): the prompt view and held-out accuracy when due, done = {fingerprint, unchanged, overheadShare} at the end; deviceMemory = {allocs, bytesInUse, bytesReserved} of burn's GPU allocator; wasmBytes: the wasm instance's memory after the step",
    },
    Event {
        name: "experiment-progress",
        fields: "{runsDone, runs, runsAway, stepsDone, stepsTotal, arm, seed, finished?, arms?, models?, done?}",
        about: "one step of an experiment, or a run a helper engine finished (src/experiments/ `ExperimentProgress`); done = the summary with its tables and, for scale, its reading (src/report.rs)",
    },
    Event {
        name: "experiment-model",
        fields: "{name, file, loaded, total, secondsLeft?}",
        about: "bytes of a family member's file (scale), fetched through the model cache when the experiment reaches that model",
    },
    Event {
        name: "pool",
        fields: "{workers, wanted, why, failed, helperBytes}",
        about: "engines training together on the CPU path (this one and its helpers that have loaded), how many are wanted and why; failed: helpers of this pool that crashed or could not load",
    },
    Event {
        name: "baseline",
        fields: "{task, loss}",
        about: "the task's loss with no prompt (the loss chart's reference line), computed after the first prompt is ready, off the way to \"ready\"",
    },
    Event {
        name: "cache-written",
        fields: "{notes}",
        about: "a large model's copy for the next visit went to the Cache API, written once the engine was idle (www/engine/cache-later.js); notes: why it was not kept, if it was not",
    },
    Event {
        name: "spawn-helper",
        fields: "{helper}",
        about: "the lab asks the page to start its helper engine `helper` (a worker.js) and hand each its end of a MessageChannel (`connect`, `helper-port`): in Firefox under WebDriver BiDi (the tests) a `new Worker` inside a worker hung now and then (about 1 model load in 20), never one on the page's thread",
    },
    Event {
        name: "stop-helper",
        fields: "{helper}",
        about: "the page ends that helper's worker",
    },
    Event {
        name: "memory",
        fields: "{wasmBytes}",
        about: "a helper's wasm memory grew (it only grows: a few times a run)",
    },
    Event {
        name: "error",
        fields: "{id?, kind, message, line?, fatal, experiment?}",
        about: "kind: src/error.rs `ErrorKind`; fatal: the worker cannot go on (GpuLost: the page restarts it on the CPU; Panic, an engine crash: on the same backend). Every request waiting then fails with this error (www/lab-client.js)",
    },
    Event {
        name: "reply",
        fields: "{id, value}",
        about: "a request's answer",
    },
];

/// `load-model` -> `LOAD_MODEL`.
fn constant(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// `text` as comment lines of at most ~100 columns, each starting with `indent`.
fn wrapped(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + word.len() > 98 {
            out += &format!("//{indent}{line}\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += &format!("//{indent}{line}\n");
    }
    out
}

/// `export const NAME = Object.freeze({SET_STEPS: 'set-steps', ...});` for the message names.
fn frozen<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> String {
    let body: String = names
        .map(|n| format!("  {}: '{n}',\n", constant(n)))
        .collect();
    format!("export const {name} = Object.freeze({{\n{body}}});\n")
}

/// The table as the page's ES module (`www/protocol.js`).
pub fn page_module() -> String {
    let mut out = String::from(
        "// Generated from src/protocol/ in `cargo test --test settings` (UPDATE=1 rewrites it): the\n\
         // messages between the page (main thread) and the engine worker, declared once in Rust.\n\
         //\n\
         // Requests (page -> worker) carry an `id`; the worker answers each with `reply` (same id, a\n\
         // `value`) or `error` (same id). Events (worker -> page) carry no id. The worker handles\n\
         // requests in the order they arrive, one at a time, except those marked \"ahead of the queue\".\n\
         //\n// Requests\n",
    );
    for r in REQUESTS {
        out += &format!("//   {} {} -> {}\n", r.name, r.fields, r.answer);
        let about = match r.ahead {
            true => format!("(ahead of the queue) {}", r.about),
            false => r.about.to_string(),
        };
        out += &wrapped(&about, "       ");
    }
    out += "//\n// Events\n";
    for e in EVENTS {
        out += &format!("//   {} {}\n", e.name, e.fields);
        out += &wrapped(e.about, "       ");
    }
    out += &calls::table_comment();
    let quoted = |s: &str| format!("'{s}'");
    out += &format!(
        "\n/** A model's files, as the engine reads them. */\nexport const MODEL_FILES = [{}];\n\n",
        MODEL_FILES.map(quoted).join(", ")
    );
    out += "/** Request types (page -> worker), as listed above. */\n";
    out += &frozen("REQUEST", REQUESTS.iter().map(|r| r.name));
    out += "\n/** Requests handled as they arrive, ahead of the queue. */\nexport const AHEAD_OF_QUEUE = Object.freeze([";
    let ahead: Vec<String> = REQUESTS
        .iter()
        .filter(|r| r.ahead)
        .map(|r| quoted(r.name))
        .collect();
    out += &format!("{}]);\n\n", ahead.join(", "));
    out += "/** Event and answer types (worker -> page). */\n";
    out += &frozen("EVENT", EVENTS.iter().map(|e| e.name));
    out += "\n/** The ops of the engine's `handle` (worker -> wasm), as listed above. */\n";
    let ops = calls::CALLS.iter().filter(|c| !c.method);
    out += &frozen("CALL", ops.map(|c| c.name));
    out
}
