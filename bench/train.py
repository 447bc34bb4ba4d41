"""Training throughput: steps/s, examples/s, FLOPs and model-FLOPs utilisation.

  python bench/train.py [--presets midi_cpu,midi_paper,wave_cpu] [--steps 20]

For each preset, with and without XLA (--jit_compile): the median time of a
training step on the Bach default's real batches (notes, or the rendered
audio for waveform presets), the FLOPs of one step
(counted by TensorFlow's profiler on the traced step: forward, backward and
optimizer), and those FLOPs per second divided by this machine's measured
float32 matmul rate (model-FLOPs utilisation). The input pipeline is timed
alone: it must deliver at least 10x the examples/s the step consumes. Prints a
table and writes bench/results/train.json.
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import data  # noqa: E402
import params as params_lib  # noqa: E402

flags.DEFINE_list("presets", ["midi_cpu", "midi_paper", "wave_cpu"], "presets to measure")
flags.DEFINE_integer("steps", 20, "timed steps per configuration (median)")
flags.DEFINE_integer("batch_size", 32, "global batch for every symbolic preset (same work "
                     "per step); waveform presets keep their own batch and crop")
flags.DEFINE_string("json", os.path.join("bench", "results", "train.json"), "output")
FLAGS = flags.FLAGS


def matmul_flops_per_second(tf, size=2048, repeats=10):
    """This machine's float32 matmul rate (the denominator of MFU)."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul().numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - started)
    return 2 * size ** 3 / statistics.median(times)


def step_flops(tf, trainer, batch):
    """FLOPs of one training step, from the profiler on its traced graph."""
    function = tf.function(lambda b: trainer._replica_gradients(b))
    graph = function.get_concrete_function(batch).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def _stream(trainer):
    from training import pipeline, trainer as trainer_lib

    return pipeline.training_stream(trainer.train_dataset, 0, trainer.params.timesteps,
                                    trainer.global_batch, key=trainer_lib.data_key(trainer.params),
                                    crop=trainer_lib.train_crop(trainer.params))


def input_examples_per_second(tf, trainer, batches=200):
    stream = _stream(trainer)
    iterator = iter(stream)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * trainer.global_batch / (time.perf_counter() - started)


def measure(tf, preset, jit_compile, prepared, matmul_rate, tmp_dir):
    from training import sampling, trainer as trainer_lib

    params = params_lib.get_preset(preset)
    if params.domain != "wave":
        params = params.replace(batch_size=FLAGS.batch_size)
    trainer = trainer_lib.Trainer(params, prepared.num_features,
                                  os.path.join(tmp_dir, f"{preset}_{jit_compile}"),
                                  jit_compile=jit_compile,
                                  groups=sampling.categorical_groups(params, prepared.encoding),
                                  rhythm=prepared.encoding.rhythm_values)
    trainer.attach(data.dataset_module(params).load_split(prepared, "train"),
                   prepared.encoding)
    trainer.restore_or_start()
    started = time.perf_counter()
    trainer.train_step(trainer.iterator)[0].numpy()  # trace (and XLA compile)
    compile_seconds = time.perf_counter() - started
    times = []
    for _ in range(FLAGS.steps):
        started = time.perf_counter()
        trainer.train_step(trainer.iterator)[0].numpy()
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    batch = next(iter(_stream(trainer)))
    # Counted on the plain graph: an XLA-compiled step hides its ops from the
    # profiler, and compilation does not change the model's arithmetic.
    if jit_compile:
        trainer._replica_gradients = trainer._replica_gradients.python_function
    flops = step_flops(tf, trainer, batch)
    return {"preset": preset, "jit_compile": jit_compile,
            "parameters": trainer.model.count_params(), "batch": trainer.global_batch,
            "step_seconds": seconds, "steps_per_second": 1 / seconds,
            "examples_per_second": trainer.global_batch / seconds,
            "first_step_seconds": compile_seconds, "step_gflop": flops / 1e9,
            "mfu": flops / seconds / matmul_rate,
            "input_examples_per_second": input_examples_per_second(tf, trainer)}


def main(argv):
    del argv
    import tempfile

    import tensorflow as tf

    matmul_rate = matmul_flops_per_second(tf)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        for preset in FLAGS.presets:
            params = params_lib.get_preset(preset)
            prepared = data.dataset_module(params).prepare(params, progress=False)
            for jit_compile in (False, True):
                rows.append(measure(tf, preset, jit_compile, prepared, matmul_rate, tmp_dir))
    print(f"float32 matmul: {matmul_rate / 1e9:.0f} GFLOP/s on {os.cpu_count()} cores")
    print(f"{'preset':12} {'xla':>4} {'params':>11} {'steps/s':>8} {'ex/s':>7} "
          f"{'GFLOP/step':>11} {'MFU':>6} {'input ex/s':>11} {'input/step':>11}")
    for row in rows:
        print(f"{row['preset']:12} {'on' if row['jit_compile'] else 'off':>4} "
              f"{row['parameters']:11,} {row['steps_per_second']:8.2f} "
              f"{row['examples_per_second']:7.0f} {row['step_gflop']:11.2f} "
              f"{row['mfu']:6.1%} {row['input_examples_per_second']:11.0f} "
              f"{row['input_examples_per_second'] / row['examples_per_second']:10.0f}x")
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"matmul_flops_per_second": matmul_rate, "rows": rows}, handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
