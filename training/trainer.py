"""The training loop: a custom tf.function step under a tf.distribute strategy.

Everything a resumed run needs lives in one tf.train.Checkpoint: the model,
its EMA copy, the optimizer (moments and iteration count), the step counter
and the input iterator (which also fixes every t and noise draw, see
pipeline.py).
"""

import dataclasses
import json
import os
import shutil
import threading
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import models
import params as params_lib
from data import midi_io
from diffusion import process, rolling, schedules, time_warp
from training import budget, pipeline, summaries

# Fields that may change when a run is resumed; any other change is refused.
RESUMABLE_FIELDS = {"train_steps", "log_every", "eval_every", "ckpt_every",
                    "eval_batches", "data_dir", "cache_dir", "patience", "max_nonfinite",
                    "sample_every", "jit_compile", "sampler", "sample_steps",
                    "sample_temperature", "sample_spacing", "sample_rolling", "guidance",
                    "guidance_max_t", "guidance_groups", "export_average"}
# Checkpointed variables that older checkpoints lack, and the value a run
# resumed from one gets: the training time is then unknown, and no plan was made.
LATER_VARIABLES = {"train_seconds": np.nan, "planned_steps": 0}
NUM_T_BUCKETS = 10
LOSS_SCALE_PERIOD = 2000


def decay_steps(params):
    """Steps of the cosine decay: the run's steps after the warm-up."""
    return max(params.train_steps - params.warmup_steps, 1)


def learning_rate_schedule(params, decay_steps_variable=None):
    """Linear warm-up to params.learning_rate, then cosine decay to 1% of it
    (over `decay_steps_variable` where given, a tf.Variable the trainer can
    re-plan, see budget.py; else over decay_steps(params))."""
    length = decay_steps(params) if decay_steps_variable is None else decay_steps_variable
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if params.warmup_steps else params.learning_rate,
        decay_steps=length, alpha=0.01,
        warmup_target=params.learning_rate if params.warmup_steps else None,
        warmup_steps=params.warmup_steps)


def build_denoiser(params, features, groups=None, rhythm=None):
    """A built model (weights created) for `params` (groups, rhythm: the
    encoding's one-hot group sizes and rhythm values, see models.build_model).

    A self-conditioned model reads its previous x_0 estimate beside x_t, so it
    takes 2 * features inputs and still predicts `features` outputs.
    """
    model = models.build_model(params, features, groups, rhythm)
    input_features = features * (2 if params.self_condition else 1)
    model([tf.zeros([1, models.build_length(params), input_features]), tf.zeros([1])])
    return model


def data_key(params):
    """The element key of x_0 in the domain's datasets."""
    return "audio" if params.domain == "wave" else "notes"


def train_crop(params):
    return params.train_crop if params.domain == "wave" else 0


def ema_decay_at(step, decay):
    """EMA decay with the usual warm-up, so early averages are not all init."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(decay, (1.0 + step) / (10.0 + step))


def check_resumable(saved: dict, current: dict, model_dir: str) -> None:
    try:  # a run saved before a field existed has that field's default
        saved = params_lib.Params.from_dict(saved).to_dict()
    except (ValueError, TypeError):
        pass  # unknown fields: compared as saved, so the run is refused below
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(f"{model_dir} holds a run with other parameters ({details}); "
                         "use a new --model_dir, or --restart to start it afresh")


def latest_checkpoint(model_dir: str) -> Optional[str]:
    """The newest checkpoint of a run (None when it has none)."""
    return tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))


@dataclasses.dataclass
class TrainResult:
    step: int
    seconds: float
    last_loss: float
    eval_losses: dict
    stop_reason: str = None
    skipped: int = 0
    interrupted: bool = False  # stop_requested was set (SIGINT/SIGTERM in train.py)


class Trainer:
    """Owns the model, its EMA copy, the optimizer and the checkpoint of a run.

    Args:
      params: a params.Params.
      features: per-element features of x_0 (e.g. 3 for note triples).
      model_dir: checkpoints, params.json and TensorBoard logs.
      strategy: a tf.distribute.Strategy (the default one on a single device).
      jit_compile: compile the per-replica gradient computation with XLA.
      is_chief: whether this process writes logs, checkpoints and exports.
      loss_scaling: dynamic loss scaling (for a mixed_float16 policy).
      groups: one-hot group sizes, for categorical prediction.
      keep_checkpoints: how many of the latest checkpoints stay on disk.
      rhythm: the encoding's rhythm values, for `params.voice_features`.
    """

    def __init__(self, params, features, model_dir, strategy=None, jit_compile=False,
                 is_chief=True, loss_scaling=False, groups=None, keep_checkpoints=3,
                 rhythm=None):
        self.params = params
        self.keep_checkpoints = keep_checkpoints
        # Set (by a signal handler, say) to end fit() after the current step
        # with a checkpoint, so a stopped run loses no steps.
        self.stop_requested = threading.Event()
        self.features = features
        self.model_dir = model_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.is_chief = is_chief
        self.multi_worker = isinstance(self.strategy,
                                       tf.distribute.MultiWorkerMirroredStrategy)
        self.groups = groups
        self.schedule = schedules.get_schedule(params.schedule, params.timesteps)
        self.global_batch = params.batch_size
        if jit_compile:
            self._replica_gradients = tf.function(self._replica_gradients, jit_compile=True)
        with self.strategy.scope():
            keras.utils.set_random_seed(params.seed)
            self.model = build_denoiser(params, features, groups, rhythm)
            self.ema_model = build_denoiser(params, features, groups, rhythm)
            self.ema_model.set_weights(self.model.get_weights())
            # The schedule reads its length from a variable, so that a run can
            # be re-planned (fit_schedule) without retracing the step.
            self.decay_steps = tf.Variable(decay_steps(params), dtype=tf.int64,
                                           trainable=False, name="decay_steps")
            # The train_steps fit(fit_schedule=True) planned (0: none), kept in
            # the checkpoint so that a resumed run keeps its plan.
            self.planned_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                             name="planned_steps")
            self.optimizer = keras.optimizers.AdamW(
                learning_rate=learning_rate_schedule(params, self.decay_steps),
                weight_decay=params.weight_decay)
            self.optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
            # Built here, inside the scope: a distributed first step cannot create them.
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped")
            self.best_eval_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False,
                                              name="best_eval_loss")
            # Wall seconds spent in fit over every run of this model_dir, up to
            # each run's last checkpoint (time after it, as in a killed run, is
            # lost with the steps); NaN when resumed from a checkpoint written
            # before it was counted.
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                             name="train_seconds")
            # Dynamic loss scaling for mixed_float16 (Micikevicius et al. 2018):
            # halve on overflow, double after LOSS_SCALE_PERIOD good steps.
            self.loss_scaling = loss_scaling
            self.loss_scale = tf.Variable(2.0 ** 15 if loss_scaling else 1.0,
                                          trainable=False, name="loss_scale")
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                          name="good_steps")
            # Time warping's loss curve: a moving average per slice of t, and
            # how many batches updated each (see diffusion/time_warp.py).
            self.warp_losses = tf.Variable(tf.zeros([time_warp.NUM_BUCKETS]),
                                           trainable=False, name="warp_losses")
            self.warp_updates = tf.Variable(tf.zeros([time_warp.NUM_BUCKETS]),
                                            trainable=False, name="warp_updates")
        self.iterator = None
        self.checkpoint = None
        self.manager = None

    # -- steps ------------------------------------------------------------------
    def _losses(self, model, batch, training):
        """Per-example (or per-note) losses; held-out ones (training=False)
        unweighted across one-hot groups, comparable between runs."""
        params = self.params
        if params.self_condition:
            def model_fn(x_t, t, estimate):
                return model([tf.concat([x_t, estimate], axis=-1), t], training=training)
            mask = batch["self_condition"]
        else:
            def model_fn(x_t, t):
                return model([x_t, t], training=training)
            mask = None
        return process.diffusion_loss(
            model_fn, self.schedule, batch["x_0"], batch["t"], batch["noise"],
            params.prediction, params.loss_weighting, params.min_snr_gamma, mask,
            self.groups, list(params.group_loss_weights) if training else None)

    def _replica_gradients(self, batch):
        """(loss, gradients, per-slice loss sums and counts) of one replica's batch."""
        variables = self.model.trainable_variables
        levels = batch["u"]
        if self.params.rolling_share:
            # A time per note: a rolling_share of the examples roll, with widths
            # uniform in [0, rolling_width] (roll / share is uniform given
            # roll < share); the others keep their u on every note.
            share = self.params.rolling_share
            widths = tf.where(batch["roll"] < share,
                              self.params.rolling_width * batch["roll"] / share, 0.0)
            levels = rolling.rolling_levels(levels, widths, batch["x_0"].shape[1])
        if self.params.time_warping:
            probabilities = time_warp.bucket_probabilities(self.warp_losses,
                                                           self.warp_updates)
            batch = dict(batch, t=time_warp.warp_timesteps(
                levels, self.params.timesteps, probabilities))
        elif self.params.rolling_share:
            batch = dict(batch, t=tf.minimum(
                tf.cast(levels * self.params.timesteps, tf.int32), self.params.timesteps - 1))
        with tf.GradientTape() as tape:
            losses = self._losses(self.model, batch, training=True)
            if losses.shape.rank == 2:  # per note: each example's mean
                per_note, losses = losses, tf.reduce_mean(losses, axis=1)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=self.global_batch)
            scaled_loss = loss * self.loss_scale
        gradients = tape.gradient(scaled_loss, variables)
        sums = counts = tf.zeros([time_warp.NUM_BUCKETS])  # used only when warping
        if self.params.time_warping:
            sums, counts = time_warp.bucket_statistics(
                batch["t"], per_note if self.params.rolling_share else losses,
                self.params.timesteps)
        return loss, [tf.cast(g, tf.float32) / self.loss_scale for g in gradients], sums, counts

    @tf.function
    def train_step(self, iterator):
        """One optimizer step on one global batch; returns (loss, grad_norm, applied).

        A non-finite loss or gradient skips the update (weights, moments and EMA
        stay as they were) and counts it in `skipped`; the batch is consumed.
        """
        batch = next(iterator)
        loss, gradients, sums, counts = self.strategy.run(self._replica_gradients,
                                                          args=(batch,))
        sum_ = tf.distribute.ReduceOp.SUM
        # Reduced here, in cross-replica context, so the clipping norm is that of
        # the global batch's gradient, not of each replica's share.
        loss = self.strategy.reduce(sum_, loss, axis=None)
        gradients = [self.strategy.reduce(sum_, g, axis=None) for g in gradients]
        grad_norm = tf.linalg.global_norm(gradients)
        finite = tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)
        self._update_loss_scale(finite)
        if self.params.time_warping:  # a skipped step leaves the curve as it was
            warp_losses, warp_updates = time_warp.updated_bucket_losses(
                self.warp_losses, self.warp_updates,
                self.strategy.reduce(sum_, sums, axis=None),
                self.strategy.reduce(sum_, counts, axis=None))
            self.warp_losses.assign(tf.where(finite, warp_losses, self.warp_losses))
            self.warp_updates.assign(tf.where(finite, warp_updates, self.warp_updates))

        def apply():
            clipped, _ = tf.clip_by_global_norm(gradients, self.params.clip_norm,
                                                use_norm=grad_norm)
            self.optimizer.apply_gradients(zip(clipped, self.model.trainable_variables))
            decay = ema_decay_at(self.step, self.params.ema_decay)
            for ema_variable, variable in zip(self.ema_model.weights, self.model.weights):
                ema_variable.assign(decay * ema_variable + (1.0 - decay) * variable)
            return tf.constant(True)

        def skip():
            self.skipped.assign_add(1)
            return tf.constant(False)

        applied = tf.cond(finite, apply, skip)
        self.step.assign_add(1)
        return loss, grad_norm, applied

    def _update_loss_scale(self, finite):
        if not self.loss_scaling:
            return
        good_steps = tf.where(finite, self.good_steps + 1, 0)
        grow = good_steps >= LOSS_SCALE_PERIOD
        self.loss_scale.assign(tf.where(finite, tf.where(grow, self.loss_scale * 2.0,
                                                         self.loss_scale),
                                        tf.maximum(self.loss_scale / 2.0, 1.0)))
        self.good_steps.assign(tf.where(grow, tf.zeros_like(good_steps), good_steps))

    def time_warp_curve(self):
        """The learned time warp as JSON lists ({"probabilities": None} without
        --time_warping): the moving-average loss per slice of t, and the slice
        probabilities training drew t from, which sample_spacing "warp" reuses."""
        if not self.params.time_warping:
            return {"probabilities": None}
        return {"bucket_losses": self.warp_losses.numpy().tolist(),
                "probabilities": time_warp.bucket_probabilities(
                    self.warp_losses, self.warp_updates).numpy().tolist()}

    @tf.function
    def _eval_losses(self, batch):
        return (self._losses(self.model, batch, training=False),
                self._losses(self.ema_model, batch, training=False))

    def evaluate(self, batches):
        """Held-out loss of the raw and EMA weights, and EMA loss per t bucket."""
        raw, ema, steps = [], [], []
        for batch in batches:
            raw_losses, ema_losses = self._eval_losses(batch)
            raw.append(raw_losses.numpy())
            ema.append(ema_losses.numpy())
            steps.append(batch["t"].numpy())
        raw, ema, steps = map(np.concatenate, (raw, ema, steps))
        buckets = steps * NUM_T_BUCKETS // self.params.timesteps
        result = {"eval_loss": float(raw.mean()), "eval_loss_ema": float(ema.mean())}
        for bucket in range(NUM_T_BUCKETS):
            if np.any(buckets == bucket):
                result[f"eval_loss_t{bucket}"] = float(ema[buckets == bucket].mean())
        return result

    # -- checkpoints ---------------------------------------------------------------
    def attach(self, train_dataset, encoding=None):
        """Creates the checkpoints; the input iterator comes with restore_or_start."""
        self.encoding = encoding
        self.train_dataset = train_dataset
        # The weights are listed explicitly: TF's object graph does not reach
        # Keras 3 sublayers kept in Python lists (the U-Net's stages). The data
        # position is the step: every step consumes exactly one global batch of a
        # seeded stream, so restoring `step` restores the position (see pipeline).
        # (The time warp's curve only in runs that use it: older checkpoints,
        # which lack it, still restore.)
        warp = (dict(warp_losses=self.warp_losses, warp_updates=self.warp_updates)
                if self.params.time_warping else {})
        self._checkpointed = dict(
            model_weights=[v.value for v in self.model.weights],
            ema_weights=[v.value for v in self.ema_model.weights],
            optimizer=self.optimizer, step=self.step, skipped=self.skipped,
            best_eval_loss=self.best_eval_loss, loss_scale=self.loss_scale,
            good_steps=self.good_steps, train_seconds=self.train_seconds,
            planned_steps=self.planned_steps, **warp)
        self.checkpoint = tf.train.Checkpoint(**self._checkpointed)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir("checkpoints"),
            max_to_keep=self.keep_checkpoints)
        # The best held-out checkpoint is kept apart from the latest ones.
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir("best"), max_to_keep=1)

    def _start_iterator(self):
        stream = pipeline.training_stream(
            self.train_dataset, self.params.seed, self.params.timesteps, self.global_batch,
            key=data_key(self.params), fixed_batches=self.params.overfit_batches,
            start_batch=int(self.step.numpy()), crop=train_crop(self.params))
        self.iterator = iter(self.strategy.experimental_distribute_dataset(stream))

    def _checkpoint_dir(self, name):
        """Chief: model_dir/name. Other workers write (and drop) a private copy,
        the layout multi-worker training requires (every worker takes part)."""
        if self.is_chief:
            return os.path.join(self.model_dir, name)
        task_id = getattr(self.strategy.cluster_resolver, "task_id", 0)
        return os.path.join(self.model_dir, f".worker_{task_id}", name)

    def restore_or_start(self) -> bool:
        """Restores the latest checkpoint if there is one; True if it did."""
        if self.is_chief:
            self._write_params()
        latest = latest_checkpoint(self.model_dir)
        if latest is not None:
            saved = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
            missing = {name: value for name, value in LATER_VARIABLES.items()
                       if name not in saved}
            present = {k: v for k, v in self._checkpointed.items() if k not in missing}
            tf.train.Checkpoint(**present).restore(latest).assert_existing_objects_matched()
            for name, value in missing.items():
                self._checkpointed[name].assign(value)
        self._start_iterator()
        return latest is not None

    def initialise_from(self, model, source: str, encoding: Optional[str] = None) -> None:
        """Starts a new run from another model's weights (fine-tuning): they
        become both the trained weights and the EMA. Refuses another
        architecture, and another `encoding` (its name) where given."""
        # Same width is not enough: log-pitch and Hz triples are both 3 features.
        if encoding is not None and encoding != self.params.encoding:
            raise ValueError(f"{source} was trained with --encoding={encoding}; pass the "
                             "same --encoding to fine-tune it")
        theirs = [tuple(w.shape) for w in model.weights]
        ours = [tuple(w.shape) for w in self.model.weights]
        # Causal and bidirectional networks have the same shapes but compute
        # different functions: matching shapes is not enough.
        their_causal = getattr(model, "causal", None)
        if their_causal != getattr(self.model, "causal", None):
            raise ValueError(f"{source} was trained with --causal={their_causal}; pass the "
                             "same --causal to fine-tune it")
        if theirs != ours:
            raise ValueError(f"{source} holds another architecture ({len(theirs)} weight "
                             f"arrays vs {len(ours)}, or other shapes); pass the same "
                             "--preset and model flags it was trained with")
        values = model.get_weights()
        self.model.set_weights(values)
        self.ema_model.set_weights(values)

    def _write_params(self):
        path = os.path.join(self.model_dir, "params.json")
        current = self.params.to_dict()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                check_resumable(json.load(handle), current, self.model_dir)
        os.makedirs(self.model_dir, exist_ok=True)
        with midi_io.atomic_output(path) as temp_path:
            with open(temp_path, "w", encoding="utf-8") as handle:
                json.dump(current, handle, indent=2, sort_keys=True)

    def average_checkpoints(self, count: int) -> list:
        """Sets the EMA model to the mean of the EMA weights in the latest `count`
        checkpoints (a uniform average of snapshots taken along the EMA's
        trajectory, as in Izmailov et al. 2018's SWA); returns their steps."""
        paths = self.manager.checkpoints[-count:]
        if len(paths) < count:
            raise ValueError(f"{self.manager.directory} holds {len(paths)} checkpoint(s); "
                             f"averaging {count} needs as many (train longer, lower "
                             "--ckpt_every, or average fewer)")
        holders = [tf.Variable(tf.zeros_like(v)) for v in self.ema_model.weights]
        reader = tf.train.Checkpoint(ema_weights=holders)
        snapshots = []
        for path in paths:
            reader.read(path).expect_partial()
            snapshots.append([h.numpy() for h in holders])
        self.ema_model.set_weights([np.mean(arrays, axis=0).astype(arrays[0].dtype)
                                    for arrays in zip(*snapshots)])
        return [int(path.rsplit("-", 1)[1]) for path in paths]

    def save(self, manager=None):
        manager = manager or self.manager
        path = manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.is_chief:
            shutil.rmtree(os.path.dirname(manager.directory), ignore_errors=True)
        return path

    # -- the loop ----------------------------------------------------------------------
    def set_train_steps(self, train_steps):
        """Lays the run (its loop and learning-rate decay) out for `train_steps`."""
        self.params = dataclasses.replace(self.params, train_steps=int(train_steps))
        self.decay_steps.assign(decay_steps(self.params))

    def _plan(self, step, seconds_left, pace, held_out):
        """The train_steps that fit in `seconds_left` at the run's pace (the same
        on every worker); evaluates until an evaluation after the first (which
        traces) has been timed."""
        evaluating = held_out is not None
        while evaluating and pace.evaluations < 2:
            started = time.perf_counter()
            self.evaluate(held_out)
            pace.record_evaluation(time.perf_counter() - started)
            seconds_left -= pace.eval_seconds
        planned = step + budget.steps_that_fit(
            seconds_left, pace.seconds_per_step(), pace.eval_seconds or 0.0,
            self.params.eval_every if evaluating else 0)
        # Workers time their own steps; they must agree on one plan.
        return round(float(self._across_replicas([planned], tf.distribute.ReduceOp.MEAN)[0]))

    def _across_replicas(self, values, reduce_op):
        """This process's `values` (floats) reduced with `reduce_op` over every replica."""
        local = tf.constant(values, tf.float32)
        return self.strategy.reduce(reduce_op, self.strategy.run(lambda: local),
                                    axis=None).numpy()

    def _on_any_worker(self, out_of_time, stop_requested):
        """Whether any worker ran out of time (their clocks differ), and sets
        `stop_requested` where any worker's is set (a signal reaches one process):
        a worker that stopped alone would leave the others waiting in the next
        step's all-reduce for ever."""
        total = self._across_replicas([out_of_time, stop_requested.is_set()],
                                      tf.distribute.ReduceOp.SUM)
        if total[1] > 0:
            stop_requested.set()
        return bool(total[0] > 0)

    def _adopt_plan(self, planned):
        self.set_train_steps(planned)
        self.planned_steps.assign(planned)
        if self.is_chief:
            self._write_params()

    def fit(self, held_out=None, max_seconds=None, progress=True, fit_schedule=False):
        """Trains until params.train_steps, max_seconds, early stopping or too many
        non-finite updates in a row; returns a TrainResult.

        fit_schedule (needs max_seconds): at the end of the warm-up, re-plan
        train_steps to what fits in the time left (budget.py); a run resumed
        after its plan keeps it.
        """
        if fit_schedule and max_seconds is None:
            raise ValueError("fit_schedule plans the run to fit max_seconds; give both")
        if fit_schedule and int(self.planned_steps.numpy()):
            self.set_train_steps(int(self.planned_steps.numpy()))
            if self.is_chief:
                print(f"keeps its planned schedule of {self.params.train_steps} steps")
        params = self.params
        writer = (tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
                  if self.is_chief else tf.summary.create_noop_writer())
        planning = fit_schedule and not int(self.planned_steps.numpy())
        # A planned run's once planned, so that the HParams tab, which keeps a
        # run's first record, shows its train_steps (one stopped before its
        # plan writes them when resumed and planned).
        if self.is_chief and not planning:
            summaries.write_hparams(writer, params)
        start_step = int(self.step.numpy())
        started, seconds_before = time.time(), float(self.train_seconds.numpy())
        bar = tqdm(total=params.train_steps, initial=start_step,
                   disable=not (progress and self.is_chief), dynamic_ncols=True,
                   unit="step", desc="train")
        window, window_start, eval_losses, last_loss = [], time.time(), {}, float("nan")
        history = {"loss": [], "eval_loss_ema": []}
        nonfinite_streak, evals_without_gain, stop_reason = 0, 0, None
        step = start_step
        pace = budget.Pace(start_step, params.warmup_steps)
        while step < params.train_steps or planning:  # (the plan replaces train_steps)
            step_started = time.perf_counter()
            loss, grad_norm, applied = self.train_step(self.iterator)
            step = int(self.step.numpy())
            pace.record_step(step, time.perf_counter() - step_started)
            if planning and step >= pace.plan_step:
                planning = False
                self._adopt_plan(self._plan(step, max_seconds - (time.time() - started),
                                            pace, held_out))
                params = self.params
                bar.total = params.train_steps
                bar.refresh()
                if self.is_chief:
                    summaries.write_hparams(writer, params)
                    bar.write(f"planned {params.train_steps} steps to fit --max_minutes "
                              f"({pace.seconds_per_step():.3f} s per step" +
                              (f", {pace.eval_seconds:.1f} s per held-out evaluation"
                               if pace.eval_seconds is not None else "") + ")" +
                              (f"; --train_steps={params.train_steps} repeats this "
                               "schedule" if step <= params.warmup_steps else ""))
            last_loss = float(loss.numpy())
            bar.update(1)
            if bool(applied.numpy()):
                nonfinite_streak = 0
                window.append(last_loss)
            elif not (self.loss_scaling and np.isfinite(last_loss)):
                # (a float16 gradient overflow with a finite loss only lowers the scale)
                nonfinite_streak += 1
                if nonfinite_streak >= params.max_nonfinite:
                    stop_reason = (f"stopped: {nonfinite_streak} non-finite updates in a "
                                   f"row at step {step} (loss {last_loss}); the last good "
                                   "checkpoint is intact. Lower --learning_rate or "
                                   "--clip_norm.")
                    break
            if window and (step % params.log_every == 0 or step == params.train_steps):
                elapsed = time.time() - window_start
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", np.mean(window))
                    tf.summary.scalar("grad_norm", grad_norm)
                    tf.summary.scalar("learning_rate", self.optimizer.learning_rate)
                    tf.summary.scalar("examples_per_second",
                                      len(window) * self.global_batch / max(elapsed, 1e-9))
                    tf.summary.scalar("skipped_updates", self.skipped)
                history["loss"].append((step, float(np.mean(window))))
                bar.set_postfix(loss=f"{np.mean(window):.4f}")
                window, window_start = [], time.time()
            if params.sample_every and step % params.sample_every == 0 and self.is_chief \
                    and self.encoding is not None:
                # The same noise at every step (from --seed): the pieces evolve
                # with the weights alone.
                summaries.write_samples(writer, step, self.ema_model, params, self.encoding,
                                        seed=params.seed,
                                        time_warp=self.time_warp_curve()["probabilities"])
            out_of_time = max_seconds is not None and time.time() - started > max_seconds
            if self.multi_worker:
                out_of_time = self._on_any_worker(out_of_time, self.stop_requested)
            if self.stop_requested.is_set() and not stop_reason:
                stop_reason = (f"interrupted at step {step}: checkpoint saved; the same "
                               "command resumes the run")
            self.train_seconds.assign(seconds_before + time.time() - started)
            # (Also where time runs out: the export describes the final weights.)
            if held_out is not None and (step % params.eval_every == 0 or out_of_time
                                         or step == params.train_steps):
                eval_started = time.perf_counter()
                eval_losses = self.evaluate(held_out)
                pace.record_evaluation(time.perf_counter() - eval_started)
                with writer.as_default(step=step):
                    for name, value in eval_losses.items():
                        tf.summary.scalar(name, value)
                history["eval_loss_ema"].append((step, eval_losses["eval_loss_ema"]))
                if eval_losses["eval_loss_ema"] < float(self.best_eval_loss.numpy()):
                    self.best_eval_loss.assign(eval_losses["eval_loss_ema"])
                    evals_without_gain = 0
                    self.save(self.best_manager)
                else:
                    evals_without_gain += 1
                    if params.patience and evals_without_gain >= params.patience:
                        stop_reason = (f"early stop at step {step}: held-out loss has not "
                                       f"improved for {evals_without_gain} evaluations "
                                       f"(best {float(self.best_eval_loss.numpy()):.4f})")
            # Never checkpoint inside a non-finite streak: the last save stays good.
            if nonfinite_streak == 0 and (step % params.ckpt_every == 0 or out_of_time
                                          or step == params.train_steps or stop_reason):
                self.save()
            if out_of_time or stop_reason:
                break
        bar.close()
        writer.flush()
        if self.is_chief and history["loss"]:
            summaries.save_loss_plot(os.path.join(self.model_dir, "loss.png"), history)
        return TrainResult(step=step, seconds=time.time() - started, last_loss=last_loss,
                           eval_losses=eval_losses, stop_reason=stop_reason,
                           skipped=int(self.skipped.numpy()),
                           interrupted=self.stop_requested.is_set())
