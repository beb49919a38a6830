// Generated from src/protocol/ in `cargo test --test settings` (UPDATE=1 rewrites it): the
// messages between the page (main thread) and the engine worker, declared once in Rust.
//
// Requests (page -> worker) carry an `id`; the worker answers each with `reply` (same id, a
// `value`) or `error` (same id). Events (worker -> page) carry no id. The worker handles
// requests in the order they arrive, one at a time, except those marked "ahead of the queue".
//
// Requests
//   init {backend: 'webgpu' | 'cpu', workers?, helper?} -> {backend, adapter}
//       workers: engines to train with on the CPU path (0: as cores and memory allow); helper: this
//       worker is one of another's helper engines (www/pool.js)
//   inspect {source, batch, nVirtual} -> src/inspect.rs CheckpointSummary, gpuBufferLimit (null on the CPU) and pool {size, why}
//       what the model will cost, before its weights are fetched: family, params, header {dtype},
//       downloadBytes, memory {weights, file, ..., engines, helper, total} for the engines the page
//       would start (pool), refusal?
//   load-model {source} -> {info, mapPoints, mapLabels, explained, timings, downloadNotes, wasmBytes} | {cancelled: true}
//       wasmBytes: the engine's memory once loaded (wasm memory never shrinks: its peak); timings
//       (ms): wasmMs (worker start to wasm compiled), fetchMs, parseMs, fingerprintMs, mapMs; source
//       = {kind: 'url', base, id?} (id: a Hub model's owner/name) | {kind: 'files', config, weights,
//       tokenizer} (ArrayBuffers)
//   cancel-load {} -> undefined
//       (ahead of the queue) stops the download in progress; the load answers {cancelled: true}
//   set-task {builtin: name, base} | {custom: {name, text}} -> task summary
//       its loss with no prompt follows as a `baseline` event once a prompt is ready
//   reset {settings} -> prompt view
//       a new prompt; stops training
//   play {steps} -> {started, finished}
//       trains to `steps` (progress events); not started when a pause came after it, or when the run
//       is already there (finished)
//   set-steps {steps} -> undefined
//       the step count of the run in progress, which goes on (a run sized to a minute)
//   pause {} -> undefined
//       (ahead of the queue) the training loop stops after the current step; an experiment is
//       cancelled
//   step {steps} -> undefined
//       one step: one progress event
//   compare {} -> {noPrompt, textPrompt, softPrompt} eval views
//       the held-out set three ways
//   evaluate {} -> the soft prompt's eval view
//       the held-out set with the soft prompt alone (kept for compare)
//   tokenize {text} -> [{id, text}]
//       what the model reads
//   generate {text} -> continuation text
//       with the soft prompt
//   export {baseModel, precision?} -> {config, weights} (Uint8Array)
//       the prompt as PEFT adapter files; precision 'f16' for a link (src/adapter.rs Precision)
//   restore-prompt {values, nVirtual, settings} -> prompt view
//       the prompt the page kept from its last view, after a restart
//   experiment {config: {name, steps, seeds, base, models?}, source?, base?, modelsBase?} -> undefined
//       runs the experiment on the current task (experiment-progress events; `pause` cancels it);
//       source: the built-in task transfer starts from; models: scale's family, folders under
//       modelsBase
//   simulate-gpu-loss {} -> undefined
//       destroys the WebGPU device (tests)
//   crash-next {point: 'load' | 'train' | 'experiment', how?: 'panic' | 'out-of-memory'} -> undefined
//       the engine panics (or runs out of memory) there next (tests)
//   time-steps {steps} -> median ms
//       of a default-sized training step on this backend (a throwaway prompt; backend "auto")
//   time-parts {parts, steps} -> median ms
//       of one engine's part of that step when `parts` engines share it (the bench's pool sizes)
//   part {prompt, shape, rows} -> {loss, grad}
//       a helper's share of a step's batch (src/pool.rs; rows as JSON)
//   eval-part {prompt, nVirtual, kind, examples} -> each example's predicted answer
//       a helper's share of a held-out evaluation (kind and examples as JSON)
//   kill-helper {} -> undefined
//       (ahead of the queue) ends one helper abruptly (tests)
//   helper-port {helper} and a MessagePort -> undefined
//       (ahead of the queue) the lab's end of the channel to the helper it asked for
//       (`spawn-helper`)
//   helper-failed {helper, message} -> undefined
//       (ahead of the queue) that helper's worker failed (it could not start, or an error escaped
//       it): its requests fail
//   connect {} and a MessagePort -> none
//       (ahead of the queue) the page to a helper it started: the lab's requests come over the port
//       from now on, and the helper's answers and events go back over it
//   job {task, job, family} -> the job's result (src/job.rs JobResult) | {cancelled: true}
//       a helper runs one training of another's experiment (src/experiments/ take_job); family:
//       scale's {base, names}, the job's model among them
//   cancel-job {} -> undefined
//       (ahead of the queue) the job stops after its current step
//   import {config, weights, settings, modelName} -> {nVirtual, prompt}
//       modelName: the loaded model's name, checked against the adapter's base model
//
// Events
//   load-progress {file, loaded, total, secondsLeft?}
//       bytes of a model file received (total 0 when unknown)
//   progress {step, loss, gradNorm, target, msPerStep, prompt?, accuracy?, evalMs?, done?, deviceMemory?, wasmBytes}
//       one turn of the run's schedule (src/session/views.rs `Progress`): the prompt view and
//       held-out accuracy when due, done = {fingerprint, unchanged, overheadShare} at the end;
//       deviceMemory = {allocs, bytesInUse, bytesReserved} of burn's GPU allocator; wasmBytes: the
//       wasm instance's memory after the step
//   experiment-progress {runsDone, runs, runsAway, stepsDone, stepsTotal, arm, seed, finished?, arms?, models?, done?}
//       one step of an experiment, or a run a helper engine finished (src/experiments/
//       `ExperimentProgress`); done = the summary with its tables and, for scale, its reading
//       (src/report.rs)
//   experiment-model {name, file, loaded, total, secondsLeft?}
//       bytes of a family member's file (scale), fetched through the model cache when the experiment
//       reaches that model
//   pool {workers, wanted, why, failed, helperBytes}
//       engines training together on the CPU path (this one and its helpers that have loaded), how
//       many are wanted and why; failed: helpers of this pool that crashed or could not load
//   baseline {task, loss}
//       the task's loss with no prompt (the loss chart's reference line), computed after the first
//       prompt is ready, off the way to "ready"
//   cache-written {notes}
//       a large model's copy for the next visit went to the Cache API, written once the engine was
//       idle (www/engine/cache-later.js); notes: why it was not kept, if it was not
//   spawn-helper {helper}
//       the lab asks the page to start its helper engine `helper` (a worker.js) and hand each its
//       end of a MessageChannel (`connect`, `helper-port`): in Firefox under WebDriver BiDi (the
//       tests) a `new Worker` inside a worker hung now and then (about 1 model load in 20), never
//       one on the page's thread
//   stop-helper {helper}
//       the page ends that helper's worker
//   memory {wasmBytes}
//       a helper's wasm memory grew (it only grows: a few times a run)
//   error {id?, kind, message, line?, fatal, experiment?}
//       kind: src/error.rs `ErrorKind`; fatal: the worker cannot go on (GpuLost: the page restarts
//       it on the CPU; Panic, an engine crash: on the same backend). Every request waiting then
//       fails with this error (www/lab-client.js)
//   reply {id, value}
//       a request's answer
//
// Engine calls (worker -> wasm): `lab.handle({op, ...fields})` (src/protocol/calls.rs), or a
// method of their own where they carry bulk data (`lab.name(args)`)
//   lab.inspect(config, header?, downloadBytes, batch, nVirtual, engines) -> CheckpointSummary
//   lab.load(config, weights, tokenizer, helper) -> {info, mapPoints, mapLabels, explained} (no map on a helper)
//   set-builtin-task {spec, train, test} (text) -> task summary
//   set-custom-task {name, text} -> task summary
//   loss-without-prompt {} -> loss
//   time-steps {steps} -> median ms
//   reset {settings} -> prompt view
//   set-steps {steps} -> undefined
//   finished {} -> boolean
//   advance {} -> Progress
//   compare {} -> {noPrompt, textPrompt, softPrompt}
//   evaluate {} -> the soft prompt's EvalView
//   generate {text, maxNewTokens} -> text
//   tokenize {text} -> [{id, text}]
//   export {baseModel, precision?: 'f32' | 'f16'} -> {config, weights} (Uint8Array)
//   lab.importAdapter(config, weights, settings, modelName) -> {nVirtual, prompt}
//   lab.restorePrompt(values: Float32Array, nVirtual, settings) -> prompt view
//   start-experiment {config, source?: {spec, train, test}} -> undefined
//   experiment-tick {answers: [{index, result | null}], idle} -> {reports: [ExperimentProgress], jobs: [{job, task}], loadMember?, done}
//   experiment-step {} -> ExperimentProgress
//   lab.loadFamilyMember(index, config, weights, tokenizer) -> undefined
//   lab.setHelpers(compute, evaluate, idle) -> undefined
//   lab.partGradient(prompt: Float32Array, shape, rows) -> {loss, grad: Float32Array}
//   lab.evalPart(prompt: Float32Array, nVirtual, kind, examples) -> answers
//   start-job {task, job} -> undefined
//   job-step {} -> JobResult | undefined
//   job-model-needed {job} -> family member index | undefined
//   lab.testHook({hook, ...}) -> src/web/hooks.rs

/** A model's files, as the engine reads them. */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** Request types (page -> worker), as listed above. */
export const REQUEST = Object.freeze({
  INIT: 'init',
  INSPECT: 'inspect',
  LOAD_MODEL: 'load-model',
  CANCEL_LOAD: 'cancel-load',
  SET_TASK: 'set-task',
  RESET: 'reset',
  PLAY: 'play',
  SET_STEPS: 'set-steps',
  PAUSE: 'pause',
  STEP: 'step',
  COMPARE: 'compare',
  EVALUATE: 'evaluate',
  TOKENIZE: 'tokenize',
  GENERATE: 'generate',
  EXPORT: 'export',
  RESTORE_PROMPT: 'restore-prompt',
  EXPERIMENT: 'experiment',
  SIMULATE_GPU_LOSS: 'simulate-gpu-loss',
  CRASH_NEXT: 'crash-next',
  TIME_STEPS: 'time-steps',
  TIME_PARTS: 'time-parts',
  PART: 'part',
  EVAL_PART: 'eval-part',
  KILL_HELPER: 'kill-helper',
  HELPER_PORT: 'helper-port',
  HELPER_FAILED: 'helper-failed',
  CONNECT: 'connect',
  JOB: 'job',
  CANCEL_JOB: 'cancel-job',
  IMPORT: 'import',
});

/** Requests handled as they arrive, ahead of the queue. */
export const AHEAD_OF_QUEUE = Object.freeze(['cancel-load', 'pause', 'kill-helper', 'helper-port', 'helper-failed', 'connect', 'cancel-job']);

/** Event and answer types (worker -> page). */
export const EVENT = Object.freeze({
  LOAD_PROGRESS: 'load-progress',
  PROGRESS: 'progress',
  EXPERIMENT_PROGRESS: 'experiment-progress',
  EXPERIMENT_MODEL: 'experiment-model',
  POOL: 'pool',
  BASELINE: 'baseline',
  CACHE_WRITTEN: 'cache-written',
  SPAWN_HELPER: 'spawn-helper',
  STOP_HELPER: 'stop-helper',
  MEMORY: 'memory',
  ERROR: 'error',
  REPLY: 'reply',
});

/** The ops of the engine's `handle` (worker -> wasm), as listed above. */
export const CALL = Object.freeze({
  SET_BUILTIN_TASK: 'set-builtin-task',
  SET_CUSTOM_TASK: 'set-custom-task',
  LOSS_WITHOUT_PROMPT: 'loss-without-prompt',
  TIME_STEPS: 'time-steps',
  RESET: 'reset',
  SET_STEPS: 'set-steps',
  FINISHED: 'finished',
  ADVANCE: 'advance',
  COMPARE: 'compare',
  EVALUATE: 'evaluate',
  GENERATE: 'generate',
  TOKENIZE: 'tokenize',
  EXPORT: 'export',
  START_EXPERIMENT: 'start-experiment',
  EXPERIMENT_TICK: 'experiment-tick',
  EXPERIMENT_STEP: 'experiment-step',
  START_JOB: 'start-job',
  JOB_STEP: 'job-step',
  JOB_MODEL_NEEDED: 'job-model-needed',
});
