"""The training loop: a custom tf.function step under a tf.distribute strategy.

Everything a resumed run needs lives in one tf.train.Checkpoint: the model,
its EMA copy, the optimizer (moments and iteration count), the step counter
and the input iterator (which also fixes every t and noise draw, see
pipeline.py).
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import models
from data import midi_io
from diffusion import process, schedules
from training import pipeline

# Fields that may change when a run is resumed; any other change is refused.
RESUMABLE_FIELDS = {"train_steps", "log_every", "eval_every", "ckpt_every",
                    "eval_batches", "data_dir", "cache_dir"}
NUM_T_BUCKETS = 10


def learning_rate_schedule(params):
    """Linear warm-up to params.learning_rate, then cosine decay to 1% of it."""
    decay_steps = max(params.train_steps - params.warmup_steps, 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if params.warmup_steps else params.learning_rate,
        decay_steps=decay_steps, alpha=0.01,
        warmup_target=params.learning_rate if params.warmup_steps else None,
        warmup_steps=params.warmup_steps)


def build_denoiser(params, features):
    """A built model (weights created) for `params`.

    A self-conditioned model reads its previous x_0 estimate beside x_t, so it
    takes 2 * features inputs and still predicts `features` outputs.
    """
    model = models.build_model(params, features)
    input_features = features * (2 if params.self_condition else 1)
    model([tf.zeros([1, params.seq_len, input_features]), tf.zeros([1])])
    return model


def ema_decay_at(step, decay):
    """EMA decay with the usual warm-up, so early averages are not all init."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(decay, (1.0 + step) / (10.0 + step))


def check_resumable(saved: dict, current: dict, model_dir: str) -> None:
    changed = sorted(k for k in set(saved) | set(current)
                     if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(f"{model_dir} holds a run with other parameters ({details}); "
                         "use a new --model_dir, or --overwrite to start it afresh")


@dataclasses.dataclass
class TrainResult:
    step: int
    seconds: float
    last_loss: float
    eval_losses: dict


class Trainer:
    """Owns the model, its EMA copy, the optimizer and the checkpoint of a run.

    Args:
      params: a params.Params.
      features: per-element features of x_0 (e.g. 3 for note triples).
      model_dir: checkpoints, params.json and TensorBoard logs.
      strategy: a tf.distribute.Strategy (the default one on a single device).
    """

    def __init__(self, params, features, model_dir, strategy=None):
        self.params = params
        self.features = features
        self.model_dir = model_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.schedule = schedules.get_schedule(params.schedule, params.timesteps)
        self.global_batch = params.batch_size
        with self.strategy.scope():
            keras.utils.set_random_seed(params.seed)
            self.model = build_denoiser(params, features)
            self.ema_model = build_denoiser(params, features)
            self.ema_model.set_weights(self.model.get_weights())
            self.optimizer = keras.optimizers.AdamW(
                learning_rate=learning_rate_schedule(params),
                weight_decay=params.weight_decay)
            self.optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
            # Built here, inside the scope: a distributed first step cannot create them.
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.iterator = None
        self.checkpoint = None
        self.manager = None

    # -- steps ------------------------------------------------------------------
    def _losses(self, model, batch, training):
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
            params.prediction, params.loss_weighting, params.min_snr_gamma, mask)

    def _replica_gradients(self, batch):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            losses = self._losses(self.model, batch, training=True)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=self.global_batch)
        return loss, tape.gradient(loss, variables)

    @tf.function
    def train_step(self, iterator):
        """One optimizer step on one global batch; returns (loss, grad_norm)."""
        batch = next(iterator)
        loss, gradients = self.strategy.run(self._replica_gradients, args=(batch,))
        sum_ = tf.distribute.ReduceOp.SUM
        # Reduced here, in cross-replica context, so the clipping norm is that of
        # the global batch's gradient, not of each replica's share.
        loss = self.strategy.reduce(sum_, loss, axis=None)
        gradients = [self.strategy.reduce(sum_, g, axis=None) for g in gradients]
        gradients, grad_norm = tf.clip_by_global_norm(gradients, self.params.clip_norm)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        decay = ema_decay_at(self.step, self.params.ema_decay)
        for ema_variable, variable in zip(self.ema_model.weights, self.model.weights):
            ema_variable.assign(decay * ema_variable + (1.0 - decay) * variable)
        self.step.assign_add(1)
        return loss, grad_norm

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
    def attach(self, train_dataset):
        """Creates the distributed iterator and the checkpoint that tracks it."""
        stream = pipeline.training_stream(
            train_dataset, self.params.seed, self.params.timesteps, self.global_batch,
            fixed_batches=self.params.overfit_batches)
        self.iterator = iter(self.strategy.experimental_distribute_dataset(stream))
        # The weights are listed explicitly: TF's object graph does not reach
        # Keras 3 sublayers kept in Python lists (the U-Net's stages).
        self.checkpoint = tf.train.Checkpoint(
            model_weights=[v.value for v in self.model.weights],
            ema_weights=[v.value for v in self.ema_model.weights],
            optimizer=self.optimizer, step=self.step, iterator=self.iterator)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.model_dir, "checkpoints"), max_to_keep=3)

    def restore_or_start(self) -> bool:
        """Restores the latest checkpoint if there is one; True if it did."""
        self._write_params()
        latest = self.manager.latest_checkpoint
        if latest is None:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return True

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

    def save(self):
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    # -- the loop ----------------------------------------------------------------------
    def fit(self, held_out=None, max_seconds=None, progress=True, on_eval=None):
        """Trains until params.train_steps (or max_seconds); returns a TrainResult."""
        params = self.params
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "train"))
        start_step = int(self.step.numpy())
        started = time.time()
        bar = tqdm(total=params.train_steps, initial=start_step, disable=not progress,
                   dynamic_ncols=True, unit="step", desc="train")
        window_losses, window_start, eval_losses, last_loss = [], time.time(), {}, float("nan")
        step = start_step
        while step < params.train_steps:
            loss, grad_norm = self.train_step(self.iterator)
            step = int(self.step.numpy())
            last_loss = float(loss.numpy())
            window_losses.append(last_loss)
            bar.update(1)
            if step % params.log_every == 0 or step == params.train_steps:
                elapsed = time.time() - window_start
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", np.mean(window_losses))
                    tf.summary.scalar("grad_norm", grad_norm)
                    tf.summary.scalar("learning_rate",
                                      self.optimizer.learning_rate)
                    tf.summary.scalar("examples_per_second",
                                      len(window_losses) * self.global_batch / max(elapsed, 1e-9))
                bar.set_postfix(loss=f"{np.mean(window_losses):.4f}")
                window_losses, window_start = [], time.time()
            if held_out is not None and (step % params.eval_every == 0
                                         or step == params.train_steps):
                eval_losses = self.evaluate(held_out)
                with writer.as_default(step=step):
                    for name, value in eval_losses.items():
                        tf.summary.scalar(name, value)
                if on_eval is not None:
                    on_eval(step, eval_losses)
            out_of_time = max_seconds is not None and time.time() - started > max_seconds
            if step % params.ckpt_every == 0 or step == params.train_steps or out_of_time:
                self.save()
            if out_of_time:
                break
        bar.close()
        writer.flush()
        return TrainResult(step=step, seconds=time.time() - started, last_loss=last_loss,
                           eval_losses=eval_losses)
