// The experiment's host in the lab engine: an experiment stepped here while its trainings go to
// idle helpers as jobs and come back, and the family member (scale) loaded when a step needs it.
import { fileUrl } from '../model-files.js';
import { CALL, EVENT } from '../protocol.js';
import { builtinTask, modelFiles } from './files.js';
import { call, engine, post } from './state.js';

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
  const { files, keeps } = await modelFiles(source, (p) => progress({ name, ...p }));
  for (const keep of keeps) await keep([]); // a copy not kept only costs the next visit a download
  engine.lab.loadFamilyMember(index, ...files);
}

/**
 * The experiment's trainings on helper engines: each started experiment bumps `generation`, so
 * what a cancelled one's jobs answer later is ignored; `answers` wait for the next turn to go to
 * the engine's scheduler (one call into the engine at a time), `away` are the jobs' promises.
 */
const jobs = { generation: 0, answers: [], away: new Set() };

/** Sends `job` to `helper`; its answer (null: failed or cancelled, run again) waits in `answers`. */
function handOut(helper, { job, task }) {
  const { generation } = jobs;
  const away = engine.pool.runJob(helper, task, job, family).then((result) => {
    jobs.answers.push({ generation, answer: { index: job.index, result: result && !result.cancelled ? result : null } });
  });
  jobs.away.add(away);
  away.finally(() => jobs.away.delete(away));
}

function reportExperiment(progress) {
  post(EVENT.EXPERIMENT_PROGRESS, progress);
  if (progress.done) engine.experimenting = false;
}

/**
 * One turn of the experiment's loop: the engine's scheduler (src/session/host.rs `tick`) takes
 * the helpers' answers and says what to report, which jobs to hand to the idle helpers and which
 * family member to load; then a step here.
 */
export async function experimentStep() {
  const answers = jobs.answers.splice(0).filter((a) => a.generation === jobs.generation).map((a) => a.answer);
  const idle = engine.pool?.idle() ?? [];
  const turn = await call(CALL.EXPERIMENT_TICK, { answers, idle: idle.length });
  turn.reports.forEach(reportExperiment);
  if (turn.done || !engine.experimenting) return;
  turn.jobs.forEach((taken, i) => handOut(idle[i], taken));
  if (turn.loadMember != null) await loadFamilyMember(turn.loadMember, (p) => post(EVENT.EXPERIMENT_MODEL, p));
  const progress = await call(CALL.EXPERIMENT_STEP);
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
  await call(CALL.START_EXPERIMENT, { config, source: source ? await builtinTask(base, source) : undefined });
}
