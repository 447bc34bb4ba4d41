"""Scores a folder of generated MIDI or WAV files against the held-out split.

    python evaluate.py --domain=midi --generated samples/run1 [--preset midi_wide]
        [--dataset bach] [--json out.json] [--max_reference N] [--seed 0]
    python evaluate.py --domain=wave --generated samples/wave1 [--preset ...]
        [--json out.json] [--max_reference N] [--seed 0]

Prints one table row per set and writes the same numbers as JSON (default
`<generated>/evaluation.json`, written atomically; an existing file is replaced
only with --overwrite). Rows:

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
  train segments        the same training segments as they are: what a model
                        that reproduced its training data exactly would score
                        against the held-out split (the sampling noise of as
                        many pieces, and the shift between the splits).
  generated             the model's files.

Random, shuffled, train segments and generated are scored against the held-out segments
(histogram references and Consistency/Variance ground truth); the floor uses
train as reference so that it is not compared with itself. Copies are searched
in the whole train pieces under the transpositions the model was trained with
(+-params.transpose). Metric definitions: metrics/midi.py.

--domain=wave reads the folder's .wav files (mono mix, resampled to the
dataset's model rate when written at another rate) and the clips of
data/wave_dataset.py. Every row is scored against the held-out clips:

  held-out vs train (floor)       train clips: what real audio of this dataset
                                  scores.
  held-out vs train n=K (floor)   the same with K = the number of generated
                                  clips (only when fewer than train): Frechet
                                  distances grow as samples shrink.
  noise shaped to train spectrum  Gaussian noise with the train clips' average
    (ceiling)                     power spectrum and RMS, as many clips as
                                  held-out: right level and tilt, no music.
  generated: <folder>             the model's files.

A last line says whether the generated FD is nearer the floor or the ceiling.
Metric definitions: metrics/audio.py.
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
    flags.DEFINE_string("generated", None,
                        "folder of generated .mid/.midi files (--domain=midi) "
                        "or .wav files (--domain=wave)")
    flags.DEFINE_string("json", None, "JSON output (default <generated>/evaluation.json)")
    flags.DEFINE_boolean("overwrite", False, "replace an existing JSON output")
    flags.DEFINE_integer("max_reference", 0,
                         "cap on held-out and train segments (midi) or clips "
                         "(wave) used as references (seeded random subset; 0 = all)")


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


def reference_segments(pieces, seq_len: int) -> List[np.ndarray]:
    """Segments of seq_len notes of every piece (hop = seq_len, no transposition)."""
    return [segment for piece in pieces
            for segment in midi_metrics.cut_segments(piece, seq_len, seq_len)]


def load_reference_segments(params, split: str) -> List[np.ndarray]:
    """Segments of params.seq_len notes of one split's pieces."""
    return reference_segments(load_reference_pieces(params, split), params.seq_len)


def load_reference(params) -> ReferenceSets:
    skipped = []
    corpus = corpora.list_pieces(params)
    test_pieces = load_reference_pieces(params, corpora.TEST, skipped, corpus)
    train_pieces = load_reference_pieces(params, corpora.TRAIN, skipped, corpus)
    return ReferenceSets(reference_segments(test_pieces, params.seq_len),
                         reference_segments(train_pieces, params.seq_len), train_pieces,
                         skipped)


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


def subset_indices(count: int, limit: int, seed) -> List[int]:
    """Sorted indices of a seeded random subset of `limit` out of `count` items
    (all of them when limit <= 0 or count <= limit)."""
    if limit <= 0 or count <= limit:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, limit, replace=False).tolist())


def _subset(items: Sequence, limit: int, seed) -> list:
    """A seeded random subset of `limit` items (all of them when limit <= 0), in order."""
    return [items[i] for i in subset_indices(len(items), limit, seed)]


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
    train_segments = _subset(reference.train, len(test), [seed, 4])
    rows.append(row("shuffled", midi_metrics.shuffled_notes(train_segments, seed=seed),
                    test_summary))
    rows.append(row("train segments", train_segments, test_summary))
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


def json_output(generated_dir: str, json_path: Optional[str] = None) -> str:
    """Where an evaluation of generated_dir is written (--json, else beside the files)."""
    return json_path or os.path.join(generated_dir, "evaluation.json")


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
    json_path = json_output(generated_dir, json_path)
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
    "chord_seconds": "share of steps between consecutive notes of one onset that are "
                     "1-2 semitones (chord clusters; Bach about 0.013)",
    "on_grid": "share of durations within 1/32 beat of the 1/8-beat grid (chance 0.5)",
    "longest_copy": ("longest run of (pitch, duration, delta) found verbatim in the "
                     "train pieces (1/48-beat rounding, +-transpose semitones)"),
    "copies": "pieces with a copied run >= copy_threshold notes",
}


# ---------------------------------------------------------------------------
# --domain=wave
# ---------------------------------------------------------------------------

WAVE_EXTENSIONS = (".wav",)

# (key, header, format) of the printed wave table; JSON rows hold every key.
WAVE_TABLE_COLUMNS = (
    ("set", "set", "s"),
    ("clips", "clips", "d"),
    ("frames_used", "frames", "d"),
    ("fd", "FD", ".2f"),
    ("fd_clip", "FD-clip", ".2f"),
    ("kid", "KID", ".4f"),
    ("kid_std", "KID-std", ".4f"),
    ("flatness_w1", "flat-W1", ".3f"),
    ("flatness_median", "flat-med", ".2e"),
    ("rms", "rms", ".4f"),
)

WAVE_FLOOR = "held-out vs train (floor)"
WAVE_CEILING = "noise shaped to train spectrum (ceiling)"


def _wave_names(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: --generated is not a folder")
    return sorted(name for name in os.listdir(folder)
                  if name.lower().endswith(WAVE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, name)))


def load_generated_wave(folder: str, sample_rate: int):
    """(clips, file names, [(file name, reason)]) for the .wav files in a folder.

    A file that cannot be read is skipped with its one-line reason.
    """
    from data import audio_io
    clips, kept, skipped = [], [], []
    for name in _wave_names(folder):
        try:  # the training data's reader: channels averaged, resampled to the model rate
            clips.append(audio_io.read_audio(os.path.join(folder, name), sample_rate))
            kept.append(name)
        except audio_io.AudioReadError as error:
            skipped.append((name, error.reason))
    return clips, kept, skipped


def _audio_metrics():
    # metrics.audio imports librosa (seconds): only the wave branch pays for it.
    from metrics import audio
    return audio


def build_wave_rows(generated: List[np.ndarray], train: List[np.ndarray],
                    test: List[np.ndarray], sample_rate: int, generated_name: str,
                    seed: int = 0) -> List[dict]:
    """The wave table's rows (module docstring), each a dict with a "set" key."""
    audio_metrics = _audio_metrics()
    sets = {WAVE_FLOOR: train}
    if 0 < len(generated) < len(train):
        sets[f"held-out vs train n={len(generated)} (floor)"] = _subset(
            train, len(generated), [seed, 3])
    # As many noise clips as held-out ones, as long as the median train clip.
    length = int(np.median([len(audio_metrics.as_mono(c)) for c in train]))
    sets[WAVE_CEILING] = list(audio_metrics.shaped_noise(train, len(test), length,
                                                         seed=[seed, 4]))
    sets[generated_name] = generated
    scores = audio_metrics.evaluate_sets(sets, test, sample_rate, seed=seed)
    return [{"set": name, **scores[name]} for name in sets]


def fd_verdict(rows: List[dict]) -> dict:
    """Where the generated FD lies between the floor and the ceiling.

    position = (generated - floor) / (ceiling - floor): 0 at the floor, 1 at the
    ceiling. The floor is the size-matched one when the table has it (FD grows
    as samples shrink); the generated row is the last.
    """
    floors = [r for r in rows if r["set"].endswith("(floor)")]
    floor = floors[-1]
    ceiling = next(r for r in rows if r["set"] == WAVE_CEILING)
    generated = rows[-1]
    span = ceiling["fd"] - floor["fd"]
    if not span > 0:
        return {"position": None, "floor_set": floor["set"],
                "text": (f"no verdict: the ceiling FD ({ceiling['fd']:.2f}) is not above "
                         f"the floor FD ({floor['fd']:.2f})")}
    position = (generated["fd"] - floor["fd"]) / span
    if position < 0:
        where = "below the floor"
    elif position > 1:
        where = "beyond the ceiling"
    else:
        where = f"{position:.0%} of the way from the floor to the ceiling"
    nearer = "floor" if position < 0.5 else "ceiling"
    return {"position": position, "floor_set": floor["set"],
            "text": (f"generated FD {generated['fd']:.2f} is {where} (floor "
                     f"{floor['fd']:.2f}: {floor['set']}; ceiling {ceiling['fd']:.2f}): "
                     f"closer to the {nearer}.")}


def evaluate_wave_folder(generated_dir: str, reference_train: Sequence,
                         reference_test: Sequence, sample_rate: int,
                         json_path: Optional[str] = None, seed: int = 0,
                         max_reference: int = 0, params=None, out=None) -> dict:
    """Reads the folder's .wav files, scores, prints and writes; returns the JSON payload.

    reference_train / reference_test: real clips (numpy, [samples] or
    [samples, 1]) at `sample_rate`; each is cut to a seeded subset of
    `max_reference` clips when longer (0 = all). `params` only goes into the
    JSON.
    """
    audio_metrics = _audio_metrics()
    out = out or sys.stdout
    started = time.time()
    generated, names, skipped = load_generated_wave(generated_dir, sample_rate)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=out)
    if not generated:
        raise ValueError(f"{generated_dir}: no readable .wav files ({len(skipped)} skipped)")
    test = [audio_metrics.as_mono(c) for c in _subset(reference_test, max_reference,
                                                        [seed, 1])]
    train = [audio_metrics.as_mono(c) for c in _subset(reference_train, max_reference,
                                                         [seed, 2])]
    if not test or not train:
        raise ValueError(f"the reference has {len(test)} held-out and {len(train)} train "
                         "clips; both must be non-empty")
    generated_name = "generated: " + os.path.basename(os.path.normpath(generated_dir))
    rows = build_wave_rows(generated, train, test, sample_rate, generated_name, seed)
    verdict = fd_verdict(rows)
    seconds = time.time() - started

    print(midi_metrics.format_table(rows, WAVE_TABLE_COLUMNS), file=out)
    print(f"{len(generated)} generated clips vs {len(test)} held-out / {len(train)} train "
          f"clips at {sample_rate} Hz; {seconds:.1f} s. All rows against held-out; lower "
          "FD/KID/flat-W1 is better. FD: log-mel frames; KID: the same frames, "
          "standardised; flat-W1: log10 spectral flatness, in decades.", file=out)
    print(verdict["text"], file=out)
    payload = {
        "domain": "wave",
        "generated": os.path.abspath(generated_dir),
        "files": names,
        "skipped": [{"file": n, "reason": r} for n, r in skipped],
        "params": params.to_dict() if params is not None else None,
        "sample_rate": sample_rate,
        "seed": seed,
        "max_reference": max_reference,
        "reference": {"test_clips": len(test), "train_clips": len(train),
                      "test_seconds": sum(len(c) for c in test) / sample_rate,
                      "train_seconds": sum(len(c) for c in train) / sample_rate,
                      "test_rms": audio_metrics.rms(test),
                      "train_rms": audio_metrics.rms(train)},
        "rows": rows,
        "fd_position": verdict["position"],
        "verdict": verdict["text"],
        "definitions": wave_definitions(),
        "seconds": seconds,
    }
    json_path = json_output(generated_dir, json_path)
    write_json(json_path, payload)
    print(f"wrote {json_path}", file=out)
    return payload


def wave_definitions() -> dict:
    """What each wave column means (goes into the JSON)."""
    audio_metrics = _audio_metrics()
    return {
        "features": (f"log-mel frames: natural log of mel power + 1e-10, "
                     f"{audio_metrics.N_MELS} Slaney mel bands from 0 Hz to the Nyquist "
                     f"frequency, {audio_metrics.N_FFT}-point Hann STFT, hop "
                     f"{audio_metrics.HOP}, uncentred frames; at most "
                     f"{audio_metrics.MAX_FRAMES} frames per set (seeded subsample)"),
        "fd": "Frechet distance of Gaussians fitted to the pooled log-mel frames (FID formula)",
        "fd_clip": ("Frechet distance of per-clip [mean, std] log-mel (2 x n_mels dims; "
                    "biased upward unless both sets have well over that many clips)"),
        "kid": ("unbiased MMD^2 with kernel (x.y/d + 1)^3 (Binkowski et al. 2018), mean "
                f"and std over {audio_metrics.EVAL_KID_SUBSETS} subsets of up to "
                f"{audio_metrics.KID_SUBSET_SIZE} frames; frames centred on the "
                "held-out mean and divided by its root mean per-band variance"),
        "flatness_w1": ("1-D Wasserstein distance between log10 spectral-flatness "
                        "distributions of the frames (decades); flatness_median: the "
                        "set's median frame flatness"),
        "rms": "root mean square over all samples of the set",
        "fd_position": "(FD generated - FD floor) / (FD ceiling - FD floor)",
    }


def load_wave_reference(params, max_reference: int = 0):
    """(train clips, held-out clips, model rate) from data/wave_dataset.py.

    Raw clips (scaled=False) at the model rate, as 1-D float32. With
    max_reference > 0 only the clips of the same seeded subset that
    evaluate_wave_folder would pick are kept while streaming the split.
    """
    from data import wave_dataset  # imports TensorFlow: only for --domain=wave

    prepared = wave_dataset.prepare(params, progress=True)

    def clips(split, tag):
        keep = set(subset_indices(prepared.num_examples(split), max_reference,
                                   [params.seed, tag]))
        dataset = wave_dataset.load_split(prepared, split, scaled=False)
        return [example["audio"].reshape(-1)
                for index, example in enumerate(dataset.as_numpy_iterator())
                if index in keep]

    return clips(corpora.TRAIN, 2), clips(corpora.TEST, 1), int(prepared.model_rate)


def evaluate_wave(generated_dir: str, params, json_path: Optional[str] = None,
                  max_reference: int = 0) -> dict:
    """The --domain=wave command: loads the reference clips, then scores."""
    if not _wave_names(generated_dir):  # fail before preparing the dataset
        raise ValueError(f"{generated_dir}: no .wav files")
    train, test, sample_rate = load_wave_reference(params, max_reference)
    return evaluate_wave_folder(generated_dir, train, test, sample_rate, json_path,
                                seed=params.seed, max_reference=max_reference,
                                params=params)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        params = params_lib.from_flags()
    except ValueError as error:  # an inconsistent --domain/--preset/--model combination
        raise app.UsageError(str(error)) from None
    if not FLAGS.generated:
        raise app.UsageError("--generated FOLDER is required")
    json_path = json_output(FLAGS.generated, FLAGS.json)
    if os.path.exists(json_path) and not FLAGS.overwrite:
        print(f"error: {json_path} already exists; pass --overwrite to replace it, or "
              "--json=FILE", file=sys.stderr)
        return 1
    try:
        if params.domain == "wave":
            evaluate_wave(FLAGS.generated, params, json_path, FLAGS.max_reference)
        else:
            evaluate_folder(FLAGS.generated, params, json_path, FLAGS.max_reference)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
