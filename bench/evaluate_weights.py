"""Scores a weights folder's samples per sampler with evaluate.py.

  python bench/evaluate_weights.py --weights weights/midi --n 80
  python bench/evaluate_weights.py --weights weights/wave --runs dpmpp:20:32,ddim:50:32,ddpm:1000:8

For each sampler:steps[:n] run: generate n (default --n) pieces, evaluate them against the
held-out split, and record the sampling time. Prints a markdown table (with
evaluate.py's reference rows) and writes bench/results/<name>.json.
"""

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

flags.DEFINE_string("weights", os.path.join("weights", "midi"), "weights folder")
flags.DEFINE_list("runs", ["ddpm:1000", "ddim:50", "dpmpp:20"],
                  "sampler:steps or sampler:steps:n runs")
flags.DEFINE_integer("n", 80, "pieces per sampler (the held-out split has 80 segments)")
flags.DEFINE_integer("max_reference", 500, "evaluate.py --max_reference for waveform weights")
flags.DEFINE_string("out_dir", os.path.join("runs", "evaluate_weights"), "samples")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    name = os.path.basename(os.path.normpath(FLAGS.weights))
    wave = common.weights_domain(FLAGS.weights) == "wave"
    evaluate_flags = [f"--max_reference={FLAGS.max_reference}"] if wave else []
    results = []
    for spec in FLAGS.runs:
        sampler, steps, *count = spec.split(":")
        n = int(count[0]) if count else FLAGS.n
        samples = os.path.join(FLAGS.out_dir, name, f"{sampler}{steps}")
        started = time.time()
        rows = common.generate_and_evaluate(
            sys.executable, FLAGS.weights, samples, sampler, steps, n,
            evaluate_flags=evaluate_flags)
        results.append({"sampler": sampler, "steps": int(steps), "n": n, "rows": rows,
                        "seconds": time.time() - started})
    # Waveform floors depend on the clip count ("n=K" rows): keep every run's.
    references = []
    for result in results if wave else results[:1]:
        references += [row for row in common.reference_rows(result["rows"])
                       if row not in references]
    table = common.markdown_table(
        references,
        [(f"{r['sampler']} {r['steps']} steps", r["rows"][-1]) for r in results],
        columns=common.WAVE_COLUMNS if wave else common.COLUMNS)
    print(table)
    path = os.path.join("bench", "results", f"evaluate_{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"weights": FLAGS.weights, "results": results,
                   "table": table}, handle, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
