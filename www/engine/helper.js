// A helper engine's side: a job of another engine's experiment stepped here until it ends or is
// cancelled, and this worker's memory reported as it grows (the lab's pool weighs it).
import { CALL, EVENT } from '../protocol.js';
import { loadFamilyMember, setFamily } from './experiment.js';
import { call, engine, post } from './state.js';

/** This worker is a helper in another's pool (INIT said so). */
let isHelper = false;
/** The wasm memory size last reported. */
let reportedBytes = 0;
/** The job was cancelled (`cancel-job`): it stops after its current step. */
let jobCancelled = false;

export function beHelper(helper) {
  isHelper = helper;
}

/** Whether this worker is a helper in another's pool: its engine draws no views. */
export function helping() {
  return isHelper;
}

export function cancelJob() {
  jobCancelled = true;
}

/** Runs a job to its result (or `{cancelled: true}`), on the family member it needs. */
export async function runJob({ task, job, family }) {
  jobCancelled = false;
  setFamily(family);
  const needed = await call(CALL.JOB_MODEL_NEEDED, { job });
  if (needed !== undefined) await loadFamilyMember(needed, () => {});
  await call(CALL.START_JOB, { task, job });
  for (;;) {
    const result = await call(CALL.JOB_STEP);
    if (result) return result;
    // A macrotask between steps, so a cancel-job gets in.
    await new Promise((resolve) => { setTimeout(resolve, 0); });
    if (jobCancelled) return { cancelled: true };
  }
}

/** A helper's memory when it grew: sent before the reply, so the pool knows it by then. */
export function reportMemory() {
  const bytes = engine.memory.buffer.byteLength;
  if (!isHelper || bytes <= reportedBytes) return;
  reportedBytes = bytes;
  post(EVENT.MEMORY, { wasmBytes: reportedBytes });
}
