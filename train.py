"""Trains a diffusion model on music.

  python train.py                                # Bach chorales, CPU default preset
  python train.py --data_dir=DIR --dataset=folder --model_dir=runs/mine
  python train.py --prepare_only                 # build the data cache and stop
  python train.py --domain=wave                  # waveforms: rendered Bach (wave_cpu)
  python train.py --domain=wave --dataset=gtzan --data_dir=DIR   # GTZAN
  python train.py --export=weights/midi          # export the EMA weights when done

Every field of params.py is a flag (--preset picks the starting values; without
it --domain picks the domain's default preset). A run
resumes when --model_dir already holds a checkpoint (--restart deletes it and starts
afresh; --overwrite only replaces an existing --export).
"""

import math
import os
import shutil
import sys

from absl import app, flags

import data
import params as params_lib
from training.weights import STORAGE_DTYPES  # (light: TensorFlow loads later)

params_lib.define_flags()
flags.DEFINE_string("model_dir", None, "checkpoints and TensorBoard logs "
                    "(default runs/<preset>)")
flags.DEFINE_boolean("prepare_only", False, "build the dataset cache, print its summary, stop")
flags.DEFINE_string("export", None, "write the EMA weights folder here after training")
flags.DEFINE_enum("export_dtype", "float32", list(STORAGE_DTYPES),
                  "how --export stores the weights (float16 halves the file)")
flags.DEFINE_boolean("export_only", False, "restore the latest checkpoint of --model_dir "
                     "and export it (with --export_average, the average), training nothing")
flags.DEFINE_string("init_from", None, "start a new run from an exported weights folder "
                    "(fine-tuning, e.g. weights/wave on your own audio); ignored when "
                    "--model_dir already holds a checkpoint")
flags.DEFINE_boolean("overwrite", False, "replace an existing --export folder")
flags.DEFINE_boolean("restart", False, "delete --model_dir (checkpoints and logs) and "
                     "start the run afresh instead of resuming it")
flags.DEFINE_float("max_minutes", None, "stop (with a checkpoint) after this many minutes")
flags.DEFINE_boolean("fit_schedule", False, "with --max_minutes: at the end of the warm-up, "
                     "set --train_steps to the steps that fit in the minutes left at the "
                     "measured pace, so the learning rate has decayed when time is up "
                     "(a resumed run keeps its plan)")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multiworker"],
                  "tf.distribute strategy; auto = multiworker when TF_CONFIG names a "
                  "cluster, mirrored when several GPUs (or --logical_cpus) are visible")
flags.DEFINE_integer("logical_cpus", 1, "split the CPU into N logical devices "
                     "(tests the multi-device path on one machine)")
flags.DEFINE_enum("mixed_precision", "off", ["off", "auto", "float16", "bfloat16"],
                  "mixed precision: auto = mixed_float16 with loss scaling on GPU, "
                  "mixed_bfloat16 elsewhere")
flags.DEFINE_boolean("deterministic", True, "TensorFlow op determinism (with --seed, "
                     "a run and its resumption give identical weights)")
flags.DEFINE_boolean("progress", True, "show progress bars")
FLAGS = flags.FLAGS


def configure_tensorflow():
    """Device split, determinism and precision: all before any op runs.

    Returns True when float16 loss scaling is needed.
    """
    import keras
    import tensorflow as tf

    from training import distribute

    distribute.split_cpu(FLAGS.logical_cpus)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    precision = FLAGS.mixed_precision
    if precision == "auto":
        precision = "float16" if tf.config.list_physical_devices("GPU") else "bfloat16"
    if precision != "off":
        keras.mixed_precision.set_global_policy(f"mixed_{precision}")
    return precision == "float16"


def export(trainer, params, prepared, held_out, step, minutes, eval_losses):
    """Writes the EMA weights (or the average of the latest checkpoints' EMA
    weights) to --export, with the held-out loss of exactly what is written."""
    from training import weights

    averaged = None
    if params.export_average > 1:
        averaged = trainer.average_checkpoints(params.export_average)
        print(f"averaged the EMA weights of the checkpoints at steps {averaged}")
    # The loop evaluates its final weights; an average, or an export without a
    # loop (--export_only, a finished run resumed), needs its own evaluation.
    # (A local computation: under several workers the chief needs no other.)
    if held_out is not None and (averaged or not eval_losses):
        eval_losses = trainer.evaluate(held_out)
        print(f"held-out loss of the exported weights: {eval_losses['eval_loss_ema']:.4f}")
    total = float(trainer.train_seconds.numpy())
    metadata = {
        "step": step, "train_minutes_this_run": minutes,
        # Over every run of the model_dir (None: it resumed a checkpoint that
        # predates the count).
        "train_minutes": None if math.isnan(total) else total / 60,
        "eval_losses": eval_losses,
        "averaged_checkpoints": averaged, "parameters": trainer.model.count_params(),
        "initialised_from": FLAGS.init_from, "time_warp": trainer.time_warp_curve(),
        "data": {k: prepared.summary.get(k) for k in
                 ("files_read", "examples", "notes", "hours", "cache_path")
                 if k in prepared.summary},
    }
    out = weights.export(FLAGS.export, params, prepared.encoding, trainer.ema_model,
                         metadata, overwrite=FLAGS.overwrite, dtype=FLAGS.export_dtype)
    print(f"exported EMA weights to {out}")


def _inside(path, folder) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_flags(params, model_dir):
    """Refuses flag combinations before any data is prepared or anything is
    deleted, so that a misused flag costs neither time nor a run (the flag
    checks come before TensorFlow loads, so they answer in a second)."""
    if FLAGS.prepare_only:
        return
    for flag in ("export_average", "export_only"):
        if FLAGS[flag].present and not FLAGS.export:
            raise app.UsageError(f"--{flag} writes to --export; pass it")
    if FLAGS.overwrite and not FLAGS.export:
        raise app.UsageError("--overwrite replaces --export, and none was given; to "
                             "start --model_dir afresh pass --restart")
    if FLAGS.export and os.path.exists(FLAGS.export) and not FLAGS.overwrite:
        raise app.UsageError(f"{FLAGS.export} already exists; pass --overwrite to replace "
                             "it (the run in --model_dir is kept either way)")
    if FLAGS.fit_schedule and FLAGS.max_minutes is None:
        raise app.UsageError("--fit_schedule fits the run to --max_minutes; pass it")
    if FLAGS.export_only and FLAGS.restart:
        raise app.UsageError("--restart would delete the run that --export_only exports")
    if FLAGS.restart:
        for flag, path in (("init_from", FLAGS.init_from), ("cache_dir", params.cache_dir)):
            if path and _inside(path, model_dir):
                raise app.UsageError(f"--restart would delete --{flag}={path}, which is "
                                     f"inside --model_dir={model_dir}")
    from training import trainer as trainer_lib, weights

    resuming = not FLAGS.restart and trainer_lib.latest_checkpoint(model_dir)
    if FLAGS.export_only and not resuming:
        raise ValueError(f"{model_dir} holds no checkpoint to export; train it first")
    if FLAGS.init_from and not resuming:  # (ignored when the run resumes)
        weights.check_folder(FLAGS.init_from)


def main(argv):
    del argv
    params = params_lib.from_flags()
    model_dir = FLAGS.model_dir or os.path.join("runs", params_lib.preset_name())
    check_flags(params, model_dir)
    dataset_lib = data.dataset_module(params)

    prepared = dataset_lib.prepare(params, progress=FLAGS.progress)
    print(prepared.summary_text())
    if FLAGS.prepare_only:
        return 0

    from training import distribute, interrupt, pipeline, trainer as trainer_lib, weights

    if FLAGS.restart and os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
        print(f"--restart: deleted {model_dir}")
    loss_scaling = configure_tensorflow()
    strategy = distribute.choose_strategy(FLAGS.strategy)
    is_chief = distribute.is_chief(strategy)
    from training import sampling

    trainer = trainer_lib.Trainer(params, prepared.num_features, model_dir, strategy,
                                  jit_compile=params.jit_compile, is_chief=is_chief,
                                  loss_scaling=loss_scaling,
                                  groups=sampling.categorical_groups(params, prepared.encoding),
                                  keep_checkpoints=max(3, params.export_average),
                                  rhythm=prepared.encoding.rhythm_values)
    print(f"model: {params.model}, {trainer.model.count_params():,} parameters; "
          f"replicas: {strategy.num_replicas_in_sync}; model_dir: {model_dir}")
    trainer.attach(dataset_lib.load_split(prepared, "train"), prepared.encoding)
    if trainer.restore_or_start():
        print(f"resumed from step {int(trainer.step.numpy())}")
    elif FLAGS.init_from:
        source = weights.load(FLAGS.init_from)
        trainer.initialise_from(source.model, FLAGS.init_from, source.encoding.name)
        warning = weights.statistics_warning(FLAGS.init_from, source.encoding, prepared.encoding)
        if warning:
            print(warning)
        print(f"initialised from {FLAGS.init_from} ({source.metadata.get('step', '?')} steps)")
    held_out = None
    if prepared.num_examples("test"):
        held_out = pipeline.held_out_batches(
            dataset_lib.load_split(prepared, "test"), params.seed, params.timesteps,
            params.batch_size, params.eval_batches, key=trainer_lib.data_key(params),
            crop=trainer_lib.train_crop(params))
    else:
        print("warning: the held-out split has no segments; held-out loss and early "
              "stopping are off")
    if FLAGS.export_only:
        step, minutes, eval_losses = int(trainer.step.numpy()), 0.0, {}
    else:
        max_seconds = None if FLAGS.max_minutes is None else FLAGS.max_minutes * 60
        with interrupt.stop_on_signals(trainer.stop_requested):
            result = trainer.fit(held_out, max_seconds=max_seconds, progress=FLAGS.progress,
                                 fit_schedule=FLAGS.fit_schedule)
        print(f"stopped at step {result.step} after {result.seconds / 60:.1f} min; "
              f"loss {result.last_loss:.4f}; held-out {result.eval_losses}; "
              f"skipped updates {result.skipped}")
        if result.stop_reason:
            print(result.stop_reason)
            if "non-finite" in result.stop_reason:
                return 1
        if result.interrupted:
            if FLAGS.export:
                print("not exported; --export_only exports the run as it stands")
            return 130
        step, minutes, eval_losses = result.step, result.seconds / 60, result.eval_losses
    if FLAGS.export and is_chief:
        export(trainer, trainer.params, prepared, held_out, step, minutes, eval_losses)
    return 0


if __name__ == "__main__":
    try:
        app.run(main)
    except Exception as error:  # one line for the errors a user can fix
        from training.weights import WeightsError
        if not isinstance(error, (ValueError, FileExistsError, FileNotFoundError,
                                  NotADirectoryError, WeightsError)):
            raise
        sys.exit(f"error: {error}")
