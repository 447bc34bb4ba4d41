"""Compares symbolic-domain variants (encodings, objectives) at equal training time.

  python bench/variants.py --minutes 10 --variants midi_seed,midi_onehot,midi_bits
  python bench/variants.py --variants midi_categorical:model=transformer:causal=false

A variant is a preset of params.py, optionally followed by :field=value
overrides (passed to train.py as --field=value; not for tuple fields, whose
commas would split the variant list).

For each preset: train.py for --minutes on the Bach default (same seed, same
step budget cap), export the EMA weights, generate --n pieces with 20-step
DPM-Solver++, score them with evaluate.py against the held-out split. Prints a
markdown table and writes bench/results/variants.json. Never tunes on the test
split: the held-out split is only scored, after training.
"""

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

flags.DEFINE_list("variants", ["midi_seed", "midi_onehot", "midi_bits", "midi_loggrid"],
                  "presets of params.py to compare, each optionally with "
                  ":field=value overrides")
flags.DEFINE_float("minutes", 10.0, "training time per variant")
flags.DEFINE_integer("train_steps", 3000, "step budget (learning-rate schedule length)")
flags.DEFINE_integer("n", 80, "generated pieces per variant (the held-out split has 80)")
flags.DEFINE_string("out_dir", os.path.join("runs", "variants"), "runs and samples")
flags.DEFINE_string("json", os.path.join("bench", "results", "variants.json"), "results")
flags.DEFINE_boolean("skip_trained", True, "reuse a variant whose export already exists")
FLAGS = flags.FLAGS


def variant(spec):
    preset, *overrides = spec.split(":")
    folder = os.path.join(FLAGS.out_dir, spec.replace(":", "_").replace("=", "-"))
    export = os.path.join(folder, "export")
    started = time.time()
    if not (FLAGS.skip_trained and os.path.isdir(os.path.join(common.ROOT, export))):
        # Overrides come last: absl keeps a flag's last value.
        common.run([sys.executable, "train.py", f"--preset={preset}",
                    f"--model_dir={folder}/run", f"--max_minutes={FLAGS.minutes}",
                    f"--train_steps={FLAGS.train_steps}", "--eval_every=1000000",
                    "--ckpt_every=1000", "--sample_every=0", f"--export={export}",
                    "--restart", "--overwrite", "--progress=false",
                    *(f"--{override}" for override in overrides)])
    train_seconds = time.time() - started
    rows = common.generate_and_evaluate(sys.executable, export,
                                        os.path.join(folder, "samples"), "dpmpp", 20, FLAGS.n,
                                        reuse=FLAGS.skip_trained)
    with open(os.path.join(common.ROOT, export, "metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    return {"preset": spec, "steps": metadata["step"], "train_seconds": train_seconds,
            "rows": rows}


def main(argv):
    del argv
    results = [variant(preset) for preset in FLAGS.variants]
    table = common.markdown_table(
        common.reference_rows(results[0]["rows"]),
        [(f"{r['preset']} ({r['steps']} steps)", r["rows"][-1]) for r in results])
    print(table)
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"minutes": FLAGS.minutes, "results": results, "table": table},
                  handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
