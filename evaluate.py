"""Scores a folder of generated MIDI files against the held-out split.

    python evaluate.py --domain=midi --generated samples/run1 [--preset midi_cpu]
        [--dataset bach] [--json out.json] [--max_reference N] [--seed 0]

Prints one table row per set and writes the same numbers as JSON (default
`<generated>/evaluation.json`, written atomically). Rows:

  held-out (floor)      held-out real segments scored against the TRAIN split
                        (distribution references and the OA ground truth are
                        train; copies are searched in train). What real music
                        of this dataset scores: the best a model can hope for.
  held-out n=K (floor)  the same with only K held-out segments, K = the number
                        of generated pieces (only when fewer than held-out):
                        histogram distances grow as samples shrink, so this is
                        the floor to read the model's row against.
  random notes          pitch, duration, delta and velocity drawn independently
                        from the pooled training notes (pitch shifted at random
                        by up to +-params.transpose, the augmented marginal the
                        model sees), as many pieces and notes as the held-out
                        segments (seeded): the ceiling.
  shuffled              training segments (as many as held-out, seeded) with
                        their rows permuted: right marginals, no succession.
  generated             the model's files.

Random, shuffled and generated are scored against the held-out segments
(histogram references and Consistency/Variance ground truth); the floor uses
train as reference so that it is not compared with itself. Copies are searched
in the whole train pieces under the transpositions the model was trained with
(+-params.transpose). Metric definitions: metrics/midi.py.
"""

import dataclasses
import json
import math
import os
import sys
import time
from typing import List, Optional, Sequence

import numpy as np
from absl import app, flags

import params as params_lib
from data import corpora, midi_io
from metrics import midi as midi_metrics

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The Params flags (--preset, --domain, --dataset, --data_dir, --seed, ...)
    plus this command's own."""
    params_lib.define_flags()
    flags.DEFINE_string("generated", None, "folder of generated .mid/.midi files")
    flags.DEFINE_string("json", None, "JSON output (default <generated>/evaluation.json)")
    flags.DEFINE_integer("max_reference", 0,
                         "cap on held-out and train segments used as references "
                         "(seeded random subset; 0 = all)")


@dataclasses.dataclass
class ReferenceSets:
    """Real data to compare with: segments of each split, and whole train pieces."""
    test: List[np.ndarray]  # held-out segments of params.seq_len notes
    train: List[np.ndarray]  # train segments of params.seq_len notes
    train_pieces: List[np.ndarray]  # whole train pieces (memorisation index)
    skipped: List[str] = dataclasses.field(default_factory=list)


def load_reference_pieces(params, split: str, skipped: Optional[list] = None,
                          corpus: Optional[corpora.Corpus] = None) -> List[np.ndarray]:
    """Whole pieces of one split of params.dataset, untransposed.

    Listed by data.corpora (deterministic split) and read with
    data.midi_io.read_midi under the dataset's program filter and max_beats.
    Unreadable pieces are left out (and appended to `skipped` as text).
    """
    corpus = corpus or corpora.list_pieces(params)
    pieces = []
    for piece in corpus.pieces:
        if piece.split != split:
            continue
        try:
            pieces.append(midi_io.read_midi(piece.midi_path, programs=params.programs,
                                            max_beats=params.max_beats))
        except midi_io.MidiReadError as error:
            if skipped is not None:
                skipped.append(f"{piece.piece_id}: {error.reason}")
    return pieces


def load_reference_segments(params, split: str) -> List[np.ndarray]:
    """Segments of params.seq_len notes (hop = seq_len, no transposition)."""
    return [segment for piece in load_reference_pieces(params, split)
            for segment in midi_metrics.cut_segments(piece, params.seq_len, params.seq_len)]


def load_reference(params) -> ReferenceSets:
    skipped = []
    corpus = corpora.list_pieces(params)
    test_pieces = load_reference_pieces(params, corpora.TEST, skipped, corpus)
    train_pieces = load_reference_pieces(params, corpora.TRAIN, skipped, corpus)

    def cut(pieces):
        return [s for p in pieces
                for s in midi_metrics.cut_segments(p, params.seq_len, params.seq_len)]

    return ReferenceSets(cut(test_pieces), cut(train_pieces), train_pieces, skipped)


def load_generated(folder: str, max_beats: float):
    """(pieces, file names, [(file name, reason)]) for the MIDI files in a folder.

    Any instrument counts (programs="all"); a file that cannot be read is
    skipped with its one-line reason.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: --generated is not a folder")
    names = sorted(name for name in os.listdir(folder)
                   if name.lower().endswith((".mid", ".midi"))
                   and os.path.isfile(os.path.join(folder, name)))
    pieces, kept, skipped = [], [], []
    for name in names:
        try:
            pieces.append(midi_io.read_midi(os.path.join(folder, name), programs="all",
                                            max_beats=max_beats))
            kept.append(name)
        except midi_io.MidiReadError as error:
            skipped.append((name, error.reason))
    return pieces, kept, skipped


def _subset(items: Sequence, limit: int, seed) -> list:
    """A seeded random subset of `limit` items (all of them when limit <= 0), in order."""
    if limit <= 0 or len(items) <= limit:
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), limit, replace=False)
    return [items[i] for i in sorted(chosen)]


def build_rows(generated: List[np.ndarray], reference: ReferenceSets, params,
               generated_name: str = "generated", max_reference: int = 0,
               seed: int = 0) -> List[dict]:
    """The table's rows (see the module docstring), each a dict with a "set" key."""
    if not reference.test or not reference.train:
        raise ValueError(f"the reference has {len(reference.test)} held-out and "
                         f"{len(reference.train)} train segments of {params.seq_len} "
                         "notes; both must be non-empty")
    test = _subset(reference.test, max_reference, [seed, 1])
    train = _subset(reference.train, max_reference, [seed, 2])
    index = midi_metrics.TrainIndex(
        reference.train_pieces, range(-params.transpose, params.transpose + 1))
    test_summary = midi_metrics.summarize_set(test)
    train_summary = midi_metrics.summarize_set(train)

    def row(name, pieces, reference_summary):
        values = midi_metrics.evaluate_set(pieces, reference_summary, index)
        return {"set": name, **values}

    rows = [row("held-out (floor)", test, train_summary)]
    if 0 < len(generated) < len(test):
        matched = _subset(test, len(generated), [seed, 3])
        rows.append(row(f"held-out n={len(generated)} (floor)", matched, train_summary))
    rows.append(row("random notes",
                    midi_metrics.random_notes(reference.train, [len(s) for s in test],
                                              seed=seed, transpose=params.transpose),
                    test_summary))
    rows.append(row("shuffled",
                    midi_metrics.shuffled_notes(_subset(reference.train, len(test),
                                                        [seed, 4]), seed=seed),
                    test_summary))
    rows.append(row(generated_name, generated, test_summary))
    return rows


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path: str, payload: dict) -> None:
    """Writes JSON atomically (temporary file beside it + os.replace)."""
    with midi_io.atomic_output(path, suffix=".json") as temp_path:
        with open(temp_path, "w", encoding="utf-8") as handle:
            json.dump(_jsonable(payload), handle, indent=2, allow_nan=False)
            handle.write("\n")


def evaluate_folder(generated_dir: str, params, json_path: Optional[str] = None,
                    max_reference: int = 0, reference: Optional[ReferenceSets] = None,
                    out=None) -> dict:
    """Reads, scores, prints and writes; returns the JSON payload.

    `reference` defaults to load_reference(params); tests pass their own.
    """
    out = out or sys.stdout
    started = time.time()
    generated, names, skipped = load_generated(generated_dir, params.max_beats)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=out)
    if not generated:
        raise ValueError(f"{generated_dir}: no readable MIDI files "
                         f"({len(skipped)} skipped)")
    if reference is None:
        reference = load_reference(params)
    seed = params.seed
    generated_name = "generated: " + os.path.basename(os.path.normpath(generated_dir))
    rows = build_rows(generated, reference, params, generated_name, max_reference, seed)
    seconds = time.time() - started

    print(midi_metrics.format_table(rows), file=out)
    print(f"{len(generated)} generated pieces vs {len(reference.test)} held-out / "
          f"{len(reference.train)} train segments of {params.seq_len} notes "
          f"({params.dataset}); {seconds:.1f} s. Lower JS is better; cons/var/diatonic "
          "closer to the floor is better; copy = longest run found verbatim in train.",
          file=out)
    payload = {
        "generated": os.path.abspath(generated_dir),
        "files": names,
        "skipped": [{"file": n, "reason": r} for n, r in skipped],
        "params": params.to_dict(),
        "seed": seed,
        "max_reference": max_reference,
        "reference": {"dataset": params.dataset, "seq_len": params.seq_len,
                      "test_segments": len(reference.test),
                      "train_segments": len(reference.train),
                      "train_pieces": len(reference.train_pieces),
                      "unreadable": reference.skipped},
        "rows": rows,
        "definitions": DEFINITIONS,
        "seconds": seconds,
    }
    json_path = json_path or os.path.join(generated_dir, "evaluation.json")
    write_json(json_path, payload)
    print(f"wrote {json_path}", file=out)
    return payload


DEFINITIONS = {
    "pitch/duration consistency, variance": (
        "Mittal et al. 2021: 16th quantisation, 4-bar windows (4/4), 2-bar hop, "
        "Gaussian per window, OA of adjacent windows pooled over the set; "
        "max(0, 1-|mu-mu_GT|/mu_GT), max(0, 1-|var-var_GT|/var_GT); GT = the row's "
        "reference (train for the floor rows, held-out otherwise)"),
    "js_*": ("Jensen-Shannon divergence, base 2, in [0, 1], against the reference; "
             "pitch_class: per-piece histograms rotated to the Krumhansl-Schmuckler "
             "tonic then pooled; interval: successive pitch differences clipped to "
             "+-24; duration: half-octave log2 bins; range, density (notes/beat), "
             "polyphony (mean sounding notes): one value per piece"),
    "diatonic_fit": "mean over pieces of the best share of notes in one major scale",
    "chord_fraction": "share of notes after the first with |delta| < 1e-6",
    "on_grid": "share of durations within 1/32 beat of the 1/8-beat grid (chance 0.5)",
    "longest_copy": ("longest run of (pitch, duration, delta) found verbatim in the "
                     "train pieces (1/48-beat rounding, +-transpose semitones)"),
    "copies": "pieces with a copied run >= copy_threshold notes",
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    params = params_lib.from_flags()
    if params.domain != "midi":
        raise app.UsageError("evaluate.py scores --domain=midi only")
    if not FLAGS.generated:
        raise app.UsageError("--generated FOLDER is required")
    try:
        evaluate_folder(FLAGS.generated, params, FLAGS.json, FLAGS.max_reference)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
