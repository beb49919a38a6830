// The experiment's host in the lab engine: an experiment stepped here while its trainings go to
// idle helpers as jobs and come back, and the family member (scale) loaded when a step needs it.
import { fileUrl } from '../model-files.js';
import { EVENT } from '../protocol.js';
import { builtinTask, modelFiles } from './files.js';
import { engine, post } from './state.js';

/** The family the scale experiment runs on: `{base, names}` (src/experiments/mod.rs FAMILY). */
let family = null;

/** Sets the family a job runs on (a helper's side: the lab engine sends it with the job). */
export function setFamily(f) {
  family = f;
}

/**
 * A family member (scale), fetched through the model cache when the experiment (or a helper's
 * job) reaches it; `progress` hears its download.
 */
export async function loadFamilyMember(index, progress) {
  const name = family.names[index];
  const source = { kind: 'url', base: fileUrl(family.base, name) };
  const files = await modelFiles(source, (p) => progress({ name, ...p }));
  engine.lab.loadFamilyMember(index, ...files);
}

/**
 * The experiment's trainings on helper engines: each started experiment bumps `generation`, so
 * what a cancelled one's jobs answer later is ignored; `answers` wait for the next step to apply
 * them (one call into the engine at a time), `away` are the jobs' promises.
 */
const jobs = { generation: 0, answers: [], away: new Set() };

/** Hands a training to every idle helper while the experiment has one to give. */
function handOutJobs() {
  const { lab, pool } = engine;
  for (const helper of pool?.idle() ?? []) {
    const taken = lab.experimentTakeJob();
    if (!taken) return;
    const { generation } = jobs;
    const away = pool.runJob(helper, taken.task, taken.job, family).then((result) => {
      jobs.answers.push({ generation, index: taken.job.index, result });
    });
    jobs.away.add(away);
    away.finally(() => jobs.away.delete(away));
  }
}

/** Applies the helpers' answers: a finished run is progress; a failed one runs again. */
function takeAnswers() {
  for (const { generation, index, result } of jobs.answers.splice(0)) {
    if (generation !== jobs.generation || !engine.experimenting) continue;
    if (result && !result.cancelled) reportExperiment(engine.lab.experimentJobDone(result));
    else engine.lab.experimentJobFailed(index);
  }
}

function reportExperiment(progress) {
  post(EVENT.EXPERIMENT_PROGRESS, progress);
  if (progress.done) engine.experimenting = false;
}

/** One turn of the experiment's loop: answers taken, jobs handed out, a step here. */
export async function experimentStep() {
  takeAnswers();
  if (!engine.experimenting) return;
  handOutJobs();
  const needed = engine.lab.experimentModelNeeded();
  if (needed !== undefined) await loadFamilyMember(needed, (p) => post(EVENT.EXPERIMENT_MODEL, p));
  const progress = await engine.lab.experimentStep();
  // Every run left is on a helper: wait for one to answer (unless one did meanwhile).
  if (!progress.waiting) reportExperiment(progress);
  else if (jobs.answers.length === 0) await Promise.race(jobs.away);
}

/** Stops the experiment's jobs on the helpers (a pause, or a new experiment). */
export function cancelJobs() {
  jobs.generation += 1;
  engine.pool?.cancelJobs();
}

/** Plans a new experiment in place of any other (transfer's source task fetched first). */
export async function startExperiment({ config, source, base, modelsBase }) {
  cancelJobs();
  family = { base: modelsBase, names: config.models ?? [] };
  const files = source ? await builtinTask(base, source) : [];
  engine.lab.startExperiment(config, ...files);
}
