"""Which intervals make MIDI samples' interval histogram differ from Bach's (TRAIN split).

  python bench/interval_breakdown.py --weights weights/midi [--n 80] [--seed 0]
  python bench/interval_breakdown.py --generated samples/run1 [--name run1]

Generates n pieces with the weights' default sampler (or reads --generated)
and compares them with every training segment: the interval bins with the
largest shares of the Jensen-Shannon divergence (evaluate.py's JS int), with
the share of each bin that lies inside chords (to a note of the same onset), and,
per onset gap, how often a note moves by a step (1-2 semitones) from the row
before and how often an onset steps from a note ending there (its voice:
metrics.midi.voice_step_shares_by_gap). The held-out split is never read, so
what this shows may guide training choices. Prints markdown tables and writes
bench/results/intervals_<name>.json.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

sys.path.insert(0, common.ROOT)

flags.DEFINE_string("weights", os.path.join("weights", "midi"), "MIDI weights folder "
                    "(its data parameters pick the training split)")
flags.DEFINE_string("generated", None, "score these MIDI files instead of generating")
flags.DEFINE_integer("n", 80, "pieces to generate")
flags.DEFINE_integer("seed", 0, "generate.py --seed")
flags.DEFINE_integer("top", 12, "interval bins listed")
flags.DEFINE_float("min_share", 0.001, "onset gaps rarer than this in Bach are not listed")
flags.DEFINE_string("out_dir", os.path.join("runs", "interval_breakdown"), "samples")
flags.DEFINE_string("name", None, "names the samples folder and the JSON (default: the "
                    "weights or --generated folder's name)")
FLAGS = flags.FLAGS


def interval_rows(generated_hist, reference_hist, top, generated_chord, reference_chord):
    """The `top` interval bins by JS term: (interval, Bach share, generated share,
    term, Bach's and the generated share of the bin inside chords), where
    *_chord are the in-chord parts of the histograms (onset gap 0)."""
    from metrics import midi as midi_metrics

    terms = midi_metrics.js_terms(generated_hist, reference_hist)
    generated = generated_hist / generated_hist.sum()
    reference = reference_hist / reference_hist.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        generated_inside = generated_chord / generated_hist
        reference_inside = reference_chord / reference_hist
    order = sorted(range(len(terms)), key=lambda k: -terms[k])[:top]
    return [(k - midi_metrics.INTERVAL_CLIP, float(reference[k]), float(generated[k]),
             float(terms[k]), float(reference_inside[k]), float(generated_inside[k]))
            for k in order]


def gap_rows(generated, reference, min_share):
    """(gap, Bach note share, generated note share, Bach step share, generated step
    share) from two {gap: (count, step share)} dicts (notes or onsets)."""
    total_generated = sum(count for count, _ in generated.values())
    total_reference = sum(count for count, _ in reference.values())
    rows = []
    for gap, (count, step_share) in reference.items():
        if count / total_reference < min_share:
            continue
        generated_count, generated_step = generated.get(gap, (0, float("nan")))
        rows.append((gap, count / total_reference, generated_count / total_generated,
                     step_share, generated_step))
    return rows


def print_gap_table(counted, steps, rows):
    print(f"\n| onset gap (beats) | Bach {counted} | generated {counted} | Bach {steps} | "
          f"generated {steps} |\n|---|---|---|---|---|")
    for gap, bach_share, generated_share, bach_step, generated_step in rows:
        print(f"| {gap:g} | {bach_share:.3f} | {generated_share:.3f} | {bach_step:.3f} | "
              f"{generated_step:.3f} |")


def main(argv):
    del argv
    import evaluate
    import params as params_lib
    from data import corpora
    from metrics import midi as midi_metrics

    os.chdir(common.ROOT)
    with open(os.path.join(FLAGS.weights, "params.json"), encoding="utf-8") as handle:
        params = params_lib.Params.from_dict(json.load(handle))
    if params.domain != "midi":
        raise app.UsageError(f"{FLAGS.weights}: MIDI weights only (domain {params.domain!r})")
    samples = FLAGS.generated
    name = FLAGS.name or os.path.basename(os.path.normpath(samples or FLAGS.weights))
    if samples is None:
        samples = os.path.join(FLAGS.out_dir, f"{name}_seed{FLAGS.seed}")
        common.generate(sys.executable, FLAGS.weights, samples, params.sampler,
                        params.sample_steps, FLAGS.n, [f"--seed={FLAGS.seed}", "--wav=false"])
    pieces, _, failed = evaluate.load_generated(samples, params.max_beats)
    if not pieces:
        raise app.UsageError(f"{samples}: no readable MIDI files ({len(failed)} failed)")
    segments = evaluate.reference_segments(
        evaluate.load_reference_pieces(params, corpora.TRAIN), params.seq_len)
    generated_hist = sum(midi_metrics.interval_histogram(p) for p in pieces)
    reference_hist = sum(midi_metrics.interval_histogram(s) for s in segments)
    intervals = interval_rows(
        generated_hist, reference_hist, FLAGS.top,
        sum(midi_metrics.interval_histogram(p, in_chord=True) for p in pieces),
        sum(midi_metrics.interval_histogram(s, in_chord=True) for s in segments))
    gaps = gap_rows(midi_metrics.step_shares_by_gap(pieces),
                    midi_metrics.step_shares_by_gap(segments), FLAGS.min_share)
    voices = gap_rows(midi_metrics.voice_step_shares_by_gap(pieces),
                      midi_metrics.voice_step_shares_by_gap(segments), FLAGS.min_share)
    js = midi_metrics.js_divergence(generated_hist, reference_hist)
    print(f"{len(pieces)} pieces of {samples} against {len(segments)} training segments: "
          f"JS int {js:.4f}\n")
    print("| interval | Bach | generated | ratio | JS term | in chords: Bach | generated |"
          "\n|---|---|---|---|---|---|---|")
    for interval, bach, generated, term, bach_inside, generated_inside in intervals:
        ratio = generated / bach if bach else float("inf")
        print(f"| {interval:+d} | {bach:.4f} | {generated:.4f} | {ratio:.2f} | {term:.5f} | "
              f"{bach_inside:.2f} | {generated_inside:.2f} |")
    print_gap_table("notes", "steps", gaps)
    print_gap_table("onsets", "voice steps", voices)
    path = os.path.join("bench", "results", f"intervals_{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    evaluate.write_json(path, {
        "weights": FLAGS.weights, "generated": samples, "pieces": len(pieces),
        "reference": "train split", "train_segments": len(segments), "js_interval": js,
        "intervals": [dict(zip(("interval", "bach", "generated", "js_term",
                                "bach_in_chords", "generated_in_chords"), row))
                      for row in intervals],
        "gaps": [dict(zip(("gap", "bach_notes", "generated_notes", "bach_steps",
                           "generated_steps"), row)) for row in gaps],
        "voice_steps": [dict(zip(("gap", "bach_onsets", "generated_onsets", "bach_steps",
                                  "generated_steps"), row)) for row in voices]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    app.run(main)
