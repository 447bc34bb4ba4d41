"""Chooses sampling settings of MIDI weights on the TRAIN split, never the held-out one.

  python bench/tune_on_train.py --weights weights/midi \
      --runs dpmpp:20,dpmpp_sde:20:spacing=uniform,dpmpp:20:temperature=0.8

Each sampler:steps[:flag=value...] run (extra generate.py flags) generates n
pieces with generate.py (once per --seeds value; the table shows the mean over
seeds, and the largest copy) and scores them with evaluate.py's metrics against the
training segments, less n of them that score as the floor row (the held-out
split is what bench/evaluate_weights.py reports, so choosing a sampler or
temperature on it would tune on the test set). Prints a markdown table and
writes bench/results/tune_<name>.json.
"""

import json
import os
import shutil
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

sys.path.insert(0, common.ROOT)

flags.DEFINE_string("weights", os.path.join("weights", "midi"), "MIDI weights folder")
flags.DEFINE_list("runs", ["dpmpp:20", "dpmpp_sde:20"],
                  "sampler:steps[:flag=value...] runs (flags passed to generate.py)")
flags.DEFINE_integer("n", 80, "pieces per run")
flags.DEFINE_integer("seed", 0, "picks the floor's segments; generate.py --seed unless --seeds")
flags.DEFINE_list("seeds", None, "generate.py --seed values of every run (metrics averaged)")
flags.DEFINE_string("out_dir", os.path.join("runs", "tune_on_train"), "samples")
FLAGS = flags.FLAGS


def mean_row(rows):
    """Each numeric metric's mean over the rows; the longest copy is the largest."""
    combined = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if key in ("longest_copy", "copies"):
            combined[key] = max(values)
        elif all(isinstance(value, (int, float)) for value in values):
            combined[key] = sum(values) / len(values)
        else:
            combined[key] = values[0]
    return combined


def main(argv):
    del argv
    import evaluate
    import params as params_lib
    from data import corpora
    from metrics import midi as midi_metrics

    os.chdir(common.ROOT)  # generate.py runs there: one base for every path
    with open(os.path.join(FLAGS.weights, "params.json"), encoding="utf-8") as handle:
        params = params_lib.Params.from_dict(json.load(handle))
    if params.domain != "midi":
        raise app.UsageError(f"{FLAGS.weights}: MIDI weights only (domain {params.domain!r})")
    train_pieces = evaluate.load_reference_pieces(params, corpora.TRAIN)
    segments = evaluate.reference_segments(train_pieces, params.seq_len)
    # n real segments kept out of the reference give the sampling-noise floor.
    floor_indices = set(evaluate.subset_indices(len(segments), FLAGS.n, [FLAGS.seed, 5]))
    floor_pieces = [s for i, s in enumerate(segments) if i in floor_indices]
    reference = midi_metrics.summarize_set(
        [s for i, s in enumerate(segments) if i not in floor_indices])
    index = midi_metrics.TrainIndex(train_pieces,
                                    range(-params.transpose, params.transpose + 1))
    name = os.path.basename(os.path.normpath(FLAGS.weights))
    results = []
    seeds = [int(seed) for seed in FLAGS.seeds] if FLAGS.seeds else [FLAGS.seed]
    for spec in FLAGS.runs:
        sampler, steps, *settings = spec.split(":")
        rows, counts, skipped = [], [], 0
        for seed in seeds:
            samples = os.path.join(FLAGS.out_dir, name, spec.replace(":", "_").replace(
                "=", "-") + f"_seed{seed}")
            shutil.rmtree(samples, ignore_errors=True)  # score this run's pieces only
            common.generate(sys.executable, FLAGS.weights, samples, sampler, steps, FLAGS.n,
                            [f"--seed={seed}", "--wav=false",
                             *(f"--{setting}" for setting in settings)])
            pieces, _, failed = evaluate.load_generated(samples, params.max_beats)
            rows.append(midi_metrics.evaluate_set(pieces, reference, index))
            counts.append(len(pieces))
            skipped += len(failed)
        results.append({"run": spec, "seeds": seeds, "n": counts, "skipped": skipped,
                        "row": mean_row(rows), "seed_rows": rows})
    floor = {"set": f"train n={len(floor_pieces)} (floor)",
             **midi_metrics.evaluate_set(floor_pieces, reference)}
    print(common.markdown_table([floor], [(r["run"], r["row"]) for r in results],
                                label_title="run (vs train)"))
    path = os.path.join("bench", "results", f"tune_{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    evaluate.write_json(path, {"weights": FLAGS.weights, "reference": "train split",
                               "train_segments": len(segments), "floor": floor,
                               "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
