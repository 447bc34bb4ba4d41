"""Compares symbolic-domain variants (encodings, objectives) at equal training time.

  python bench/variants.py --minutes 10 --variants midi_seed,midi_onehot,midi_bits

For each preset: train.py for --minutes on the Bach default (same seed, same
step budget cap), export the EMA weights, generate --n pieces with 20-step
DPM-Solver++, score them with evaluate.py against the held-out split. Prints a
markdown table and writes bench/results/variants.json. Never tunes on the test
split: the held-out split is only scored, after training.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_list("variants", ["midi_seed", "midi_onehot", "midi_bits", "midi_loggrid"],
                  "presets of params.py to compare")
flags.DEFINE_float("minutes", 10.0, "training time per variant")
flags.DEFINE_integer("train_steps", 3000, "step budget (learning-rate schedule length)")
flags.DEFINE_integer("n", 80, "generated pieces per variant (the held-out split has 80)")
flags.DEFINE_string("out_dir", os.path.join("runs", "variants"), "runs and samples")
flags.DEFINE_string("json", os.path.join("bench", "results", "variants.json"), "results")
flags.DEFINE_boolean("skip_trained", True, "reuse a variant whose export already exists")
FLAGS = flags.FLAGS

COLUMNS = [("diatonic_fit", "diatonic"), ("js_interval", "JS int"),
           ("js_pitch_class", "JS pc"), ("chord_fraction", "chords"),
           ("on_grid", "on grid"), ("js_duration", "JS dur"),
           ("pitch_consistency", "P-cons"), ("duration_consistency", "D-cons"),
           ("longest_copy", "copy")]


def run(command):
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def variant(preset):
    folder = os.path.join(FLAGS.out_dir, preset)
    export = os.path.join(folder, "export")
    samples = os.path.join(folder, "samples")
    evaluation = os.path.join(folder, "evaluation.json")
    python = sys.executable
    started = time.time()
    if not (FLAGS.skip_trained and os.path.isdir(export)):
        run([python, "train.py", f"--preset={preset}", f"--model_dir={folder}/run",
             f"--max_minutes={FLAGS.minutes}", f"--train_steps={FLAGS.train_steps}",
             "--eval_every=1000000", "--ckpt_every=1000", f"--export={export}",
             "--overwrite", "--progress=false"])
    train_seconds = time.time() - started
    run([python, "generate.py", samples, f"--weights={export}", f"--n={FLAGS.n}",
         "--sampler=dpmpp", "--steps=20", "--wav=false", "--png=false", "--overwrite",
         "--progress=false"])
    run([python, "evaluate.py", "--domain=midi", f"--generated={samples}",
         f"--json={evaluation}", f"--preset={preset}"])
    with open(evaluation, encoding="utf-8") as handle:
        rows = json.load(handle)["rows"]
    with open(os.path.join(export, "metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    return {"preset": preset, "steps": metadata["step"], "train_seconds": train_seconds,
            "rows": rows}


def table(results):
    header = "| set | steps | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    references = [row for row in results[0]["rows"] if not row["set"].startswith("generated")]
    for row in references:
        lines.append(f"| {row['set']} | - | " + " | ".join(
            _format(row.get(key)) for key, _ in COLUMNS) + " |")
    for result in results:
        row = result["rows"][-1]
        lines.append(f"| {result['preset']} | {result['steps']} | " + " | ".join(
            _format(row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def _format(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def main(argv):
    del argv
    results = [variant(preset) for preset in FLAGS.variants]
    print(table(results))
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"minutes": FLAGS.minutes, "results": results}, handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
