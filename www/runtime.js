// What the page knows of the worker's side right now, in one object that the views render from,
// and the one queue of page actions.

export class Runtime {
  constructor() {
    this.client = null; // the LabClient of the running worker
    this.backend = null; // 'cpu' or 'webgpu': what the running worker computes on
    this.modelSource = null; // what to (re)load after a worker restart
    this.modelInfo = null;
    this.task = null; // the worker's task summary
    this.hasPrompt = false; // a prompt exists for the task: Train can start
    this.training = false;
    this.experimenting = false; // an experiment runs in the worker
    this.step = 0;
    this.target = 0;
    this.finished = false; // the run reached its step count
    this.accuracy = undefined; // the last held-out accuracy of the soft prompt
    // The prompt's last view on the host, {task, model, values, nVirtual}: what a restart
    // carries when the engine cannot hand its prompt over (a crash, a lost GPU).
    this.promptCopy = null;
    this.helperBytes = []; // the wasm memory of each helper engine in the CPU pool
    this.pending = 0; // page actions queued or running
    this.views = [];
    this.chain = Promise.resolve();
  }

  /**
   * What the user can do now, from the state alone: each panel enables its own controls from it.
   * The worker runs one thing at a time, so nothing trains while an experiment runs, and the
   * model and task stay put under an experiment.
   */
  can() {
    const loaded = Boolean(this.modelInfo && this.task);
    const ready = loaded && this.hasPrompt && !this.experimenting;
    return {
      trainOrPause: this.training || ready,
      usePrompt: ready && !this.training, // step, reset, compare, try, export
      runExperiment: this.experimenting || (loaded && !this.training),
      switchTaskOrModel: !this.experimenting,
    };
  }

  /** `render(runtime)` runs after every change. */
  onChange(render) {
    this.views.push(render);
  }

  set(patch) {
    Object.assign(this, patch);
    for (const render of this.views) render(this);
  }

  /**
   * Runs page actions (task switch, reset, train, step, import, model load) one after another, in
   * the order the user asked for them: a Train press never overtakes the switch before it. An
   * action must not queue another and wait for it.
   */
  serial(action) {
    this.set({ pending: this.pending + 1 });
    const run = this.chain.then(action);
    this.chain = run.catch(() => {}).then(() => this.set({ pending: this.pending - 1 }));
    return run;
  }
}
