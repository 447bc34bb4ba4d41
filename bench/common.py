"""Helpers shared by the benchmarks that drive the command-line tools."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (key in evaluate.py's rows, column title) of the markdown tables.
COLUMNS = [("diatonic_fit", "diatonic"), ("js_interval", "JS int"),
           ("js_pitch_class", "JS pc"), ("chord_fraction", "chords"),
           ("on_grid", "on grid"), ("js_duration", "JS dur"),
           ("pitch_consistency", "P-cons"), ("duration_consistency", "D-cons"),
           ("longest_copy", "copy")]


def run(command):
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


DATA_FIELDS = ("dataset", "data_dir", "seq_len", "programs", "max_beats", "transpose",
               "test_fraction")


def data_flags(weights):
    """evaluate.py flags that reproduce the data parameters a model was trained on."""
    with open(os.path.join(ROOT, weights, "params.json"), encoding="utf-8") as handle:
        params = json.load(handle)
    return [f"--{field}={params[field]}" for field in DATA_FIELDS]


def generate_and_evaluate(python, weights, samples, sampler, steps, n, reuse=False):
    """generate.py then evaluate.py (on the weights' own data); returns its rows.

    reuse: return the rows of an earlier evaluation of the same samples folder.
    """
    evaluation = os.path.join(samples, "evaluation.json")
    if reuse and os.path.exists(os.path.join(ROOT, evaluation)):
        with open(os.path.join(ROOT, evaluation), encoding="utf-8") as handle:
            return json.load(handle)["rows"]
    run([python, "generate.py", samples, f"--weights={weights}", f"--n={n}",
         f"--sampler={sampler}", f"--steps={steps}", "--wav=false", "--png=false",
         "--overwrite", "--progress=false"])
    run([python, "evaluate.py", "--domain=midi", f"--generated={samples}",
         f"--json={evaluation}", *data_flags(weights)])
    with open(evaluation, encoding="utf-8") as handle:
        return json.load(handle)["rows"]


def _format(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(reference_rows, labelled_rows, label_title="set"):
    """Reference rows (evaluate.py's floor/baselines) then (label, row) pairs."""
    lines = [f"| {label_title} | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    for row in reference_rows:
        lines.append(f"| {row['set']} | " + " | ".join(
            _format(row.get(key)) for key, _ in COLUMNS) + " |")
    for label, row in labelled_rows:
        lines.append(f"| {label} | " + " | ".join(
            _format(row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def reference_rows(rows):
    return [row for row in rows if not row["set"].startswith("generated")]
