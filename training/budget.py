"""Fitting the learning-rate schedule to a time budget (train.py --fit_schedule).

A --max_minutes run whose schedule is laid out for more steps than the machine
reaches in time stops before its learning rate has decayed; one laid out for
fewer ends early and leaves minutes unused. The run's pace is not known before
it starts (the 97-minute runs behind weights/midi were stopped and resumed by
hand with a new --train_steps). With --fit_schedule the trainer times the
run's first steps and, at the end of the warm-up (before the cosine decay
starts, so the schedule is exactly the one a fixed --train_steps gives), sets
train_steps to what fits in the minutes left, held-out evaluations included.
"""

# Steps timed (after the first of a run, which traces the step) before planning.
PACE_STEPS = 20


def steps_that_fit(seconds_left, seconds_per_step, eval_seconds=0.0, eval_every=0):
    """How many more steps fit in `seconds_left` at `seconds_per_step`, with one
    held-out evaluation of `eval_seconds` every `eval_every` steps (0: none)."""
    per_step = seconds_per_step + (eval_seconds / eval_every if eval_every else 0.0)
    return max(int(seconds_left // per_step), 1)


class Pace:
    """Seconds per training step, timed over the steps after a run's first
    (which traces the step function), and of the latest held-out evaluation.

    Args:
      start_step: the step the run (or its resumption) starts from.
      warmup_steps: the learning-rate warm-up; the plan is due at its end, or
        after PACE_STEPS timed steps if that is later.
    """

    def __init__(self, start_step, warmup_steps):
        self.start_step = start_step
        self.plan_step = max(warmup_steps, start_step + 1 + PACE_STEPS)
        self.step_seconds = 0.0
        self.steps = 0
        self.evaluations = 0
        self.eval_seconds = None

    def record_step(self, step, seconds):
        if step > self.start_step + 1:
            self.step_seconds += seconds
            self.steps += 1

    def record_evaluation(self, seconds):
        """The latest held-out evaluation's time (the first one traces; a
        plan waits for a second)."""
        self.evaluations += 1
        self.eval_seconds = seconds

    def seconds_per_step(self):
        return self.step_seconds / max(self.steps, 1)
