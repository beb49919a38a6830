// The embedding API: in an iframe, the page tells its host page what happens and takes a few
// commands, through postMessage. Only the host's origin is talked to and listened to: the `host`
// URL parameter when given, else the origin the browser reports as the embedder (the referrer).
// Messages (README "Embedding in course material"), each {source: 'soft-prompt-lab', type, ...}:
//   to the host    ready {task, steps}                  the lab can train (after start-up, a task or model change)
//                  step  {task, step, target, loss, accuracy?}  one training step (accuracy when measured)
//                  done  {task, step, accuracy, unchanged}      a run reached its step count
//                  tour-step {step}                    the guided tour moved to a step (0: closed)
//   from the host  set   {task?, settings?: {virtualTokens, init, initText, lr, steps, batch, seed}}
//                  train {}    pause {}
// Commands act as the user's own input would (the same controls, the same queue and checks).
import { $ } from './dom.js';
import { TRAIN_FIELDS } from './state.js';

const SOURCE = 'soft-prompt-lab';

function hostOrigin(state) {
  if (window.parent === window) return null;
  if (state.host) return state.host;
  try {
    return document.referrer ? new URL(document.referrer).origin : null;
  } catch {
    return null;
  }
}

/** Sets a control as the user would, so its own checks and actions run. */
function change(el, value) {
  el.value = String(value);
  el.dispatchEvent(new Event('change'));
}

export function hostLink(ctx) {
  const { state, rt } = ctx;
  const origin = hostOrigin(state);
  if (!origin) return { onProgress() {}, onTour() {} };
  const post = (type, body) => window.parent.postMessage({ source: SOURCE, type, ...body }, origin);

  let wasReady = false;
  rt.onChange(() => {
    const ready = Boolean(rt.modelInfo && rt.task && rt.hasPrompt && !rt.training);
    if (ready && !wasReady && rt.step === 0) post('ready', { task: rt.task.name, steps: state.steps });
    wasReady = ready;
  });

  window.addEventListener('message', (e) => {
    if (e.source !== window.parent || e.origin !== origin || e.data?.source === SOURCE) return;
    const { type, task, settings = {} } = e.data ?? {};
    if (type === 'set') {
      for (const name of TRAIN_FIELDS) if (name in settings) change($(`s-${name}`), settings[name]);
      const known = [...$('task-select').options].some((o) => o.value === task);
      if (known && task !== state.task) change($('task-select'), task);
    } else if (type === 'train' && !rt.training) {
      $('play').click();
    } else if (type === 'pause' && rt.training) {
      $('play').click();
    }
  });

  return {
    onTour(step) {
      post('tour-step', { step });
    },
    onProgress(p) {
      const task = rt.task?.name;
      post('step', { task, step: p.step, target: p.target, loss: p.loss, accuracy: p.accuracy ?? undefined });
      if (p.done) post('done', { task, step: p.step, accuracy: rt.accuracy, unchanged: p.done.unchanged });
    },
  };
}
