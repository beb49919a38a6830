// Backend "auto": which backend to start, and timing a training step on both. The page's start-up
// (app.js) acts on the answers.
import { LabClient } from './lab-client.js';
import { REQUEST } from './protocol.js';

/** A GPU adapter's name, from what the browser tells of it (the badge and "auto" both show it). */
export function adapterName(info = {}) {
  return [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
}

/** Software GPU adapters: far slower than the CPU path (SwiftShader took 30 s for one step here). */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|basic render/i;
/** Steps "auto" times on each backend (after one warm-up step). */
const AUTO_TIMED_STEPS = 3;
// Tests set `softPromptLabOptions.timeSoftwareAdapters` before the page loads (their only adapter
// is SwiftShader) to run the timing that a hardware adapter gets.
const TIME_SOFTWARE_ADAPTERS = Boolean(globalThis.softPromptLabOptions?.timeSoftwareAdapters);

/**
 * The backend to start for `choice`: the user's choice; for "auto", WebGPU on a hardware adapter
 * only. `note(text)` hears why the CPU was chosen.
 */
export async function chosenBackend(choice, note) {
  if (choice !== 'auto') return choice;
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) return 'cpu';
  const info = adapter.info ?? {};
  const name = adapterName(info);
  if ((info.isFallbackAdapter || SOFTWARE_ADAPTER.test(name)) && !TIME_SOFTWARE_ADAPTERS) {
    note(`Auto: the GPU adapter is a software one (${name || 'fallback'}); the CPU is faster.`);
    return 'cpu';
  }
  return 'webgpu';
}

/**
 * Median ms of a training step on the running GPU worker (`gpu`, a LabClient) and on the CPU, in
 * a second worker with its own copy of the model (`source`), closed after: `{webgpu, cpu}`.
 */
export async function timeBoth(gpu, source) {
  const probe = new LabClient({ onEvent: () => {}, onFatal: () => {} });
  try {
    const webgpu = await gpu.request(REQUEST.TIME_STEPS, { steps: AUTO_TIMED_STEPS });
    await probe.request(REQUEST.INIT, { backend: 'cpu' });
    await probe.request(REQUEST.LOAD_MODEL, { source });
    const cpu = await probe.request(REQUEST.TIME_STEPS, { steps: AUTO_TIMED_STEPS });
    return { webgpu, cpu };
  } finally {
    probe.terminate();
  }
}
