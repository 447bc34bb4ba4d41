"""What a user waits for: `generate.py --n 8` per sampler and step count.

  python bench/generate.py [--weights weights/midi] [--n 8]

Runs the real CLI in a subprocess for each sampler:steps pair and reports the
sampling time (network + sampler), the total including decoding and writing
MIDI/WAV/PNG, and the wall time including start-up (TensorFlow import, weights
loading, graph tracing). Prints a table and writes bench/results/generate.json.
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
flags.DEFINE_integer("n", 8, "pieces per run")
flags.DEFINE_list("runs", ["ddpm:1000", "ddim:50", "dpmpp:20", "dpmpp:10"],
                  "sampler:steps pairs")
flags.DEFINE_string("json", os.path.join("bench", "results", "generate.json"), "output")
FLAGS = flags.FLAGS
REPORT = re.compile(r"sampling ([\d.]+) s, total ([\d.]+) s")


def main(argv):
    del argv
    rows = []
    for spec in FLAGS.runs:
        sampler, steps = spec.split(":")
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "generate.py", folder, f"--n={FLAGS.n}",
                 f"--weights={FLAGS.weights}", f"--sampler={sampler}", f"--steps={steps}",
                 "--progress=false"], cwd=ROOT, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
        sampling, total = map(float, REPORT.search(result.stdout).groups())
        rows.append({"sampler": sampler, "steps": int(steps), "sampling_seconds": sampling,
                     "total_seconds": total, "wall_seconds": wall})
    print(f"generate.py --n {FLAGS.n} with {FLAGS.weights}")
    print(f"{'sampler':8} {'steps':>6} {'sampling s':>11} {'+ write s':>10} {'wall s':>8}")
    for row in rows:
        print(f"{row['sampler']:8} {row['steps']:6d} {row['sampling_seconds']:11.1f} "
              f"{row['total_seconds']:10.1f} {row['wall_seconds']:8.1f}")
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"weights": FLAGS.weights, "n": FLAGS.n, "rows": rows}, handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
