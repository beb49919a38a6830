//! When a training run looks at itself: prompt snapshots (cheap) every few steps, held-out
//! evaluations (forward passes over the held-out set) within a share of the run's time, and
//! everything at the last step. The session owns one schedule per run; the page and the command
//! line only present what it decides.

use std::time::Duration;

/// Steps between prompt snapshots (values, map positions, nearest tokens: host arithmetic).
pub const PROMPT_EVERY: usize = 5;
/// Held-out evaluation and prompt snapshots may take this share of a run's time (the page's
/// target is 15%: the evaluation forced at the last step comes on top).
pub const OVERHEAD_SHARE: f64 = 0.13;
/// A time-share run is evaluated at least this often, whatever an evaluation costs: the curve
/// must show some held-out points even where evaluations are slow against steps (a pool of
/// engines on fewer cores made one evaluation cost more than the whole run's share).
pub const MIN_EVALS: usize = 4;
/// Before the first evaluation is timed, one is assumed to cost this many training steps per
/// batch of held-out examples (a forward pass without backward: measured 0.45-0.6 on the real
/// SmolLM2-135M, antonyms' 89 examples in batches of 16).
pub const EVAL_STEPS_PER_BATCH: f64 = 0.5;

/// How often the held-out set is evaluated during a run (always at its last step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalCadence {
    /// Whenever the time spent looking (evaluations and snapshots, the next evaluation included)
    /// stays within this share of the run's time: they spread out as far as they cost (the first
    /// one's cost guessed from the steps'), but never more than a `MIN_EVALS`th of the run apart.
    /// A step-1 evaluation that cost several steps had delayed a real model's lesson by 7-8.6 s
    /// to show the accuracy everyone expects at the start.
    TimeShare(f64),
    /// Every this many steps (0: only at the end).
    Every(usize),
}

impl Default for EvalCadence {
    fn default() -> Self {
        EvalCadence::TimeShare(OVERHEAD_SHARE)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The run ends at this step.
    pub target: usize,
    pub cadence: EvalCadence,
    /// The first evaluation's guessed cost, in steps (`for_run`).
    eval_steps: f64,
    training: Duration,
    steps_timed: u32,
    overhead: Duration,
    last_eval: Duration,
    /// The step of the last evaluation (0: none yet).
    last_eval_step: usize,
}

impl Schedule {
    /// `eval_steps`: what an evaluation is guessed to cost in steps before one is timed.
    pub fn new(target: usize, cadence: EvalCadence, eval_steps: f64) -> Self {
        Self {
            target,
            cadence,
            eval_steps,
            training: Duration::ZERO,
            steps_timed: 0,
            overhead: Duration::ZERO,
            last_eval: Duration::ZERO,
            last_eval_step: 0,
        }
    }

    /// A run of `batch` examples a step, evaluated on `held_out` examples.
    pub fn for_run(target: usize, cadence: EvalCadence, batch: usize, held_out: usize) -> Self {
        let batches = held_out as f64 / batch.max(1) as f64;
        Self::new(target, cadence, batches * EVAL_STEPS_PER_BATCH)
    }

    pub fn record_step(&mut self, took: Duration) {
        self.training += took;
        self.steps_timed += 1;
    }

    pub fn record_snapshot(&mut self, took: Duration) {
        self.overhead += took;
    }

    pub fn record_eval(&mut self, step: usize, took: Duration) {
        self.overhead += took;
        self.last_eval = took;
        self.last_eval_step = step;
    }

    pub fn finished(&self, step: usize) -> bool {
        step >= self.target
    }

    pub fn prompt_due(&self, step: usize) -> bool {
        step.is_multiple_of(PROMPT_EVERY) || self.finished(step)
    }

    pub fn eval_due(&self, step: usize) -> bool {
        if self.finished(step) {
            return true;
        }
        match self.cadence {
            EvalCadence::Every(n) => n > 0 && step.is_multiple_of(n),
            EvalCadence::TimeShare(share) => {
                let looking = (self.overhead + self.next_eval()).as_secs_f64();
                let within_share = looking <= share * (self.training.as_secs_f64() + looking);
                let gap = (self.target / MIN_EVALS).max(1);
                // Within half a gap of the end, the end's own evaluation is the next point.
                let end_near = self.target - step < gap.div_ceil(2);
                within_share || (step >= self.last_eval_step + gap && !end_near)
            }
        }
    }

    /// What the next evaluation is assumed to cost: what the last one did, or the guess.
    fn next_eval(&self) -> Duration {
        if self.last_eval_step > 0 || self.steps_timed == 0 {
            return self.last_eval;
        }
        (self.training / self.steps_timed).mul_f64(self.eval_steps)
    }

    /// Share of the run's time spent on evaluations and snapshots so far.
    pub fn overhead_share(&self) -> f64 {
        let total = (self.training + self.overhead).as_secs_f64();
        if total > 0.0 {
            self.overhead.as_secs_f64() / total
        } else {
            0.0
        }
    }
}

/// The middle of some timings (0 for none).
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn time_share_spreads_evaluations_to_their_cost() {
        // Steps of 10 ms, evaluations of 100 ms (guessed right), 15%: the first fits once
        // 100 <= 0.15 * (10 n + 100), i.e. n >= 57 steps; the next once 100 + 100 <= 0.15 *
        // (10 n + 200), i.e. n >= 114.
        let mut s = Schedule::new(1000, EvalCadence::TimeShare(0.15), 10.0);
        let mut evals = Vec::new();
        for step in 1..=1000 {
            s.record_step(10 * MS);
            if s.eval_due(step) {
                evals.push(step);
                s.record_eval(step, 100 * MS);
            }
        }
        assert_eq!(evals[..2], [57, 114]);
        assert_eq!(*evals.last().unwrap(), 1000, "always at the end");
        assert!(s.overhead_share() <= 0.16, "{}", s.overhead_share());
        assert!(evals.len() >= 5, "{evals:?}");
    }

    #[test]
    fn costly_evaluations_still_come_a_few_times_a_run() {
        // Evaluations of 2 s against steps of 10 ms: the share alone would allow only the last;
        // the run still gets one every quarter (the page's curve).
        let mut s = Schedule::new(200, EvalCadence::TimeShare(0.13), 200.0);
        let mut evals = Vec::new();
        for step in 1..=200 {
            s.record_step(10 * MS);
            if s.eval_due(step) {
                evals.push(step);
                s.record_eval(step, 2000 * MS);
            }
        }
        assert_eq!(evals, [50, 100, 150, 200]);
    }

    #[test]
    fn a_run_sized_at_its_third_step_is_evaluated_four_times() {
        // A real model's lesson: 2.5 s steps, evaluations of 7.5 s (the guess: 89 held-out
        // examples in batches of 16), 200 steps until the page sizes the run to 21 at step 3.
        // Nothing at step 1 (7.5 s to show the starting point), nothing at step 20 (the end's
        // evaluation comes next).
        let mut s = Schedule::for_run(200, EvalCadence::TimeShare(0.13), 16, 89);
        let mut evals = Vec::new();
        for step in 1..=21 {
            s.record_step(2500 * MS);
            if step == 3 {
                s.target = 21;
            }
            if s.eval_due(step) {
                evals.push(step);
                s.record_eval(step, 7500 * MS);
            }
        }
        assert_eq!(evals, [5, 10, 15, 21]);
    }

    #[test]
    fn fixed_cadence_and_snapshots() {
        let s = Schedule::new(12, EvalCadence::Every(5), 1.0);
        let due: Vec<usize> = (1..=12).filter(|&k| s.eval_due(k)).collect();
        assert_eq!(due, [5, 10, 12]);
        let due: Vec<usize> = (1..=12).filter(|&k| s.prompt_due(k)).collect();
        assert_eq!(due, [5, 10, 12]);
        let end_only = Schedule::new(3, EvalCadence::Every(0), 1.0);
        assert_eq!((1..=3).filter(|&k| end_only.eval_due(k)).count(), 1);
    }
}
