"""Per-step overhead of the samplers: whole run vs N x one denoiser call.

  python bench/samplers.py [--weights weights/midi] [--batch 8] [--repeats 3]

The denoiser is a shipped network (the shipped CPU default by default). A ratio close to 1 means the sampling loop adds
nothing measurable to the network's own cost. Each run is timed after a
first, tracing run, alternately with single denoiser calls, so that both see
the same background load (a training run sharing the CPU skews a ratio of
figures taken minutes apart). Prints a table and writes
bench/results/samplers.json.
"""

import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_string("weights", os.path.join("weights", "midi"), "network to sample with")
flags.DEFINE_integer("batch", 8, "pieces per run")
flags.DEFINE_integer("repeats", 3, "timed repetitions (median reported)")
flags.DEFINE_list("runs", ["ddpm:1000", "ddpm:100", "ddim:50", "dpmpp:20", "dpmpp:10"],
                  "sampler:steps pairs")
flags.DEFINE_string("json", os.path.join("bench", "results", "samplers.json"), "output")
FLAGS = flags.FLAGS


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def alternate_seconds(call, run, calls_per_run, repeats):
    """Median seconds of one call and of one run, measured in turns."""
    call_times, run_times = [], []
    for _ in range(repeats):
        call_times.append(median_seconds(call, calls_per_run))
        run_times.append(median_seconds(run, 1))
    return statistics.median(call_times), statistics.median(run_times)


def main(argv):
    del argv
    import tensorflow as tf

    from diffusion import samplers
    from training import sampling, weights

    loaded = weights.load(FLAGS.weights)
    params, model = loaded.params, loaded.model
    features = loaded.encoding.num_features
    shape = [FLAGS.batch, params.seq_len, features]
    x = tf.random.stateless_normal(shape, [0, 1])
    t = tf.fill([FLAGS.batch], 500.0)
    denoiser, schedule = sampling.make_denoiser(
        model, params, shape, sampling.categorical_groups(params, loaded.encoding))
    one_call = tf.function(denoiser)
    one_call(x, t)  # trace

    def call():
        return one_call(x, t).numpy()

    call_seconds = median_seconds(call, max(FLAGS.repeats, 20))

    rows = []
    for spec in FLAGS.runs:
        name, steps = spec.split(":")
        steps = int(steps)
        sampler = samplers.get_sampler(name)

        def run():
            return sampler(denoiser, x, schedule, steps, 0).numpy()

        run()  # traces the compiled step (only the first run of each sampler)
        row_call_seconds, seconds = alternate_seconds(call, run, min(steps, 20), FLAGS.repeats)
        rows.append({"sampler": name, "steps": steps, "run_seconds": seconds,
                     "per_step_ms": 1000 * seconds / steps,
                     "call_seconds": row_call_seconds,
                     "ratio": seconds / (steps * row_call_seconds)})

    print(f"{FLAGS.weights} ({model.count_params():,} parameters), batch "
          f"{FLAGS.batch}, one denoiser call {1000 * call_seconds:.2f} ms (median)")
    print(f"{'sampler':8} {'steps':>6} {'run s':>8} {'ms/step':>8} {'call ms':>8} "
          f"{'run/(N x call)':>15}")
    for row in rows:
        print(f"{row['sampler']:8} {row['steps']:6d} {row['run_seconds']:8.2f} "
              f"{row['per_step_ms']:8.2f} {1000 * row['call_seconds']:8.2f} "
              f"{row['ratio']:15.3f}")
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"weights": FLAGS.weights, "batch": FLAGS.batch,
                   "parameters": model.count_params(), "call_seconds": call_seconds,
                   "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "rows": rows}, handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
