"""Helpers shared by the benchmarks that drive the command-line tools."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (key in evaluate.py's rows, column title) of the markdown tables, per domain.
WAVE_COLUMNS = [("clips", "clips"), ("fd", "FD"), ("fd_clip", "FD-clip"), ("kid", "KID"),
                ("flatness_w1", "flat-W1"), ("flatness_median", "flat-med", ".2e"),
                ("rms", "rms")]
COLUMNS = [("diatonic_fit", "diatonic"), ("js_interval", "JS int"),
           ("js_pitch_class", "JS pc"), ("chord_fraction", "chords"),
           ("chord_seconds", "2nds in chords"),
           ("on_grid", "on grid"), ("js_duration", "JS dur"),
           ("pitch_consistency", "P-cons"), ("duration_consistency", "D-cons"),
           ("js_range", "JS range"), ("js_density", "JS dens"), ("longest_copy", "copy")]


def run(command):
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


DATA_FIELDS = {
    "midi": ("dataset", "data_dir", "seq_len", "programs", "max_beats", "transpose",
             "test_fraction"),
    "wave": ("dataset", "data_dir", "sample_rate", "clip_samples", "segment_samples",
             "downsample", "cutoff_hz", "filter_taps", "test_fraction"),
}


def weights_domain(weights):
    with open(os.path.join(ROOT, weights, "params.json"), encoding="utf-8") as handle:
        return json.load(handle)["domain"]


def data_flags(weights):
    """evaluate.py flags that reproduce the data parameters a model was trained on."""
    with open(os.path.join(ROOT, weights, "params.json"), encoding="utf-8") as handle:
        params = json.load(handle)
    domain = params["domain"]
    return [f"--domain={domain}"] + [f"--{field}={params[field]}"
                                     for field in DATA_FIELDS[domain]]


def generate(python, weights, samples, sampler, steps, n, extra=()):
    """generate.py: n samples of `weights` into `samples` (replacing its files)."""
    run([python, "generate.py", samples, f"--weights={weights}", f"--n={n}",
         f"--sampler={sampler}", f"--steps={steps}", "--png=false", "--overwrite",
         "--progress=false", *extra])


def generate_and_evaluate(python, weights, samples, sampler, steps, n, reuse=False,
                          evaluate_flags=()):
    """generate.py then evaluate.py (on the weights' own data); returns its rows.

    reuse: return the rows of an earlier evaluation of the same samples folder.
    """
    domain = weights_domain(weights)
    evaluation = os.path.join(samples, "evaluation.json")
    if reuse and os.path.exists(os.path.join(ROOT, evaluation)):
        with open(os.path.join(ROOT, evaluation), encoding="utf-8") as handle:
            return json.load(handle)["rows"]
    extra = [] if domain == "wave" else ["--wav=false"]
    generate(python, weights, samples, sampler, steps, n, [f"--domain={domain}", *extra])
    run([python, "evaluate.py", f"--generated={samples}", f"--json={evaluation}",
         "--overwrite", *data_flags(weights), *evaluate_flags])
    with open(evaluation, encoding="utf-8") as handle:
        return json.load(handle)["rows"]


def _format(value, spec=".3f"):
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def markdown_table(reference_rows, labelled_rows, label_title="set", columns=COLUMNS):
    """Reference rows (evaluate.py's floor/baselines) then (label, row) pairs."""
    lines = [f"| {label_title} | " + " | ".join(column[1] for column in columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for label, row in [(row["set"], row) for row in reference_rows] + list(labelled_rows):
        lines.append(f"| {label} | " + " | ".join(
            _format(row.get(key), *spec) for key, _, *spec in columns) + " |")
    return "\n".join(lines)


def reference_rows(rows):
    return [row for row in rows if not row["set"].startswith("generated")]
