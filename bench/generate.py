"""What a user waits for: `generate.py --n 8` per sampler and step count.

  python bench/generate.py [--weights weights/midi] [--n 8]
  python bench/generate.py --weights weights/wave --n 1,8

Runs the real CLI in a subprocess for each sampler:steps pair and reports the
sampling time (network + sampler), the total including decoding and writing
MIDI/WAV/PNG, and the wall time including start-up (TensorFlow import, weights
loading, graph tracing). For waveform weights it adds the real-time factor:
sampling seconds / seconds of audio generated (below 1 is faster than real
time). Prints a table and writes bench/results/generate[_<weights>].json.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("weights", os.path.join("weights", "midi"), "weights folder")
flags.DEFINE_list("n", ["8"], "pieces per run (a list runs each batch size)")
flags.DEFINE_list("runs", ["ddpm:1000", "ddim:50", "dpmpp:20", "dpmpp:10"],
                  "sampler:steps pairs")
flags.DEFINE_string("json", "", "output (default bench/results/generate_<weights>.json)")
FLAGS = flags.FLAGS
REPORT = re.compile(r"sampling ([\d.]+) s, total ([\d.]+) s")


def clip_seconds(weights_folder):
    """Seconds of audio in one generated clip, or None for symbolic weights."""
    sys.path.insert(0, ROOT)
    import params as params_lib
    with open(os.path.join(ROOT, weights_folder, "params.json"), encoding="utf-8") as handle:
        params = params_lib.Params.from_dict(json.load(handle))
    if params.domain != "wave":
        return None
    return params_lib.sample_length(params) / params_lib.model_rate(params)


def main(argv):
    del argv
    seconds = clip_seconds(FLAGS.weights)
    rows = []
    for n in map(int, FLAGS.n):
        for spec in FLAGS.runs:
            sampler, steps = spec.split(":")
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "generate.py", folder, f"--n={n}",
                     f"--weights={FLAGS.weights}", f"--sampler={sampler}", f"--steps={steps}",
                     "--progress=false"], cwd=ROOT, capture_output=True, text=True,
                    check=True)
                wall = time.perf_counter() - started
            sampling, total = map(float, REPORT.search(result.stdout).groups())
            rows.append({"n": n, "sampler": sampler, "steps": int(steps),
                         "sampling_seconds": sampling, "total_seconds": total,
                         "wall_seconds": wall,
                         "real_time_factor": sampling / (n * seconds) if seconds else None})
    print(f"generate.py with {FLAGS.weights}"
          + (f" ({seconds:.2f} s clips)" if seconds else ""))
    print(f"{'n':>3} {'sampler':8} {'steps':>6} {'sampling s':>11} {'+ write s':>10} "
          f"{'wall s':>8}" + (f" {'RTF':>6}" if seconds else ""))
    for row in rows:
        print(f"{row['n']:3d} {row['sampler']:8} {row['steps']:6d} "
              f"{row['sampling_seconds']:11.1f} {row['total_seconds']:10.1f} "
              f"{row['wall_seconds']:8.1f}"
              + (f" {row['real_time_factor']:6.3f}" if seconds else ""))
    path = FLAGS.json or os.path.join(
        "bench", "results", f"generate_{os.path.basename(os.path.normpath(FLAGS.weights))}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"weights": FLAGS.weights, "clip_seconds": seconds, "rows": rows}, handle,
                  indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
