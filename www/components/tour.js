// The guided tour: one step per idea of the method, each pointing at the view that shows it and
// asking the learner to do one thing. `?tour=N` opens step N (a teacher links each step from the
// course notes); Back, Next and Esc work from the keyboard; each step is announced to screen
// readers (the box is a labelled region whose text is a polite live region). A step may offer an
// action (a button the page wires: the last step's real model).
import { LESSON_MODEL } from '../hub.js';

export const STEPS = [
  {
    target: 'embedding',
    title: 'A soft prompt is a few vectors in the space of word embeddings',
    text: 'The grey cloud is every word of the vocabulary; the coloured points are the prompt\'s vectors. '
      + 'Press Train and watch them move. The table lists each vector\'s nearest words, with their cosine: '
      + 'a low cosine means the vector sits away from every word, and then its "nearest words" say little about '
      + 'what it does (Khashabi et al. 2022, "Prompt Waywardness").',
  },
  {
    target: 'training',
    title: 'The base model is frozen',
    text: 'Look at "Trainable": a few thousand numbers out of millions. Train to the end and compare the two '
      + 'fingerprints of the base weights, before and after: they are the same, bit for bit.',
  },
  {
    target: 'training',
    title: 'Only the prompt learns, by backpropagation',
    text: 'The loss falls while "Prompt gradient norm" shows the gradient reaching the prompt through the frozen '
      + 'layers. No weight of the model gets a gradient; the optimizer updates the prompt alone.',
  },
  {
    target: 'shelf',
    title: 'One model, many tasks',
    text: 'Train a prompt, switch the task above and train another, then switch back: the first prompt returns '
      + 'from the shelf on the same loaded model. Serving a new task means storing a new small prompt.',
  },
  {
    target: 'outputs',
    title: 'A text prompt does not learn; a soft prompt does',
    text: 'Press "Compare on held-out examples": the same frozen model answers with no prompt, with a hand-written '
      + 'text prompt, and with the trained soft prompt, on examples none of them saw.',
  },
  {
    target: 'experiments',
    title: 'The findings, live',
    text: 'Run an experiment: several seeded trainings per setting (prompt length, initialisation, transfer, '
      + 'text against soft, ensembles), with what the papers found beside it.',
  },
  {
    target: 'exp-chart',
    panel: 'experiments',
    title: 'Why the method matters: scale',
    text: 'Choose "Scale: prompt against model tuning" and press Run. On three sizes of the '
      + 'bundled model, this chart puts prompt tuning (a few thousand numbers learnt) beside model tuning (every '
      + 'weight learnt, a copy of the model per task). In the paper the gap closes as models reach billions of '
      + 'parameters; read below the chart what these small models show, and why it may differ.',
  },
  {
    target: 'model-panel',
    title: 'Does it work on a real language model?',
    text: `Press "Show its cost" for ${LESSON_MODEL}, a real language model of 135 M parameters: what it costs `
      + 'shows before anything is downloaded; Load it with one click. Train antonyms (the run is sized to about a '
      + 'minute), then compare on held-out examples. Measured with the command line at 40 steps: no prompt 0%, the '
      + 'text prompt 17%, the soft prompt 57%. The nearest words are now the real vocabulary\'s: what the learned '
      + 'vectors sit near (Lester et al. 2021, section 7).',
    action: { name: 'real-model', label: 'Show its cost' },
  },
];

export class Tour {
  /**
   * `box`: the tour's region; `onStep(n)`: the step shown (0: closed), for the URL and the host page;
   * `actions`: what each step's action button does, by name.
   */
  constructor(box, onStep, actions) {
    this.box = box;
    this.onStep = onStep;
    this.action = box.querySelector('.tour-action');
    this.action.addEventListener('click', () => actions[STEPS[this.step - 1].action.name]());
    this.step = 0;
    this.heading = box.querySelector('h2');
    this.body = box.querySelector('.tour-text');
    this.count = box.querySelector('.tour-count');
    box.querySelector('.tour-back').addEventListener('click', () => this.show(this.step - 1));
    box.querySelector('.tour-next').addEventListener('click', () => this.show(this.step < STEPS.length ? this.step + 1 : 0));
    box.querySelector('.tour-close').addEventListener('click', () => this.show(0));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.step) this.show(0);
    });
  }

  /** Shows step `n` (1-based; 0 or out of range closes the tour). */
  show(n) {
    document.querySelector('.tour-target')?.classList.remove('tour-target');
    this.step = n >= 1 && n <= STEPS.length ? n : 0;
    this.box.hidden = !this.step;
    if (this.step) {
      const s = STEPS[this.step - 1];
      this.heading.textContent = s.title;
      this.body.textContent = s.text;
      this.count.textContent = `Step ${this.step} of ${STEPS.length}`;
      this.box.querySelector('.tour-back').disabled = this.step === 1;
      this.box.querySelector('.tour-next').textContent = this.step === STEPS.length ? 'Finish' : 'Next';
      this.action.hidden = !s.action;
      this.action.textContent = s.action?.label ?? '';
      const target = document.getElementById(s.target);
      // A step's view shows even when its panel was switched off.
      document.getElementById(s.panel ?? s.target).hidden = false;
      target.classList.add('tour-target');
      this.box.dataset.target = s.target;
      target.scrollIntoView({ block: 'nearest' });
      this.heading.focus();
    }
    this.onStep(this.step);
  }
}
