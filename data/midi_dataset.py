"""Builds (or reuses) the cached tf.data datasets of encoded note segments.

Layout of one cache, `<cache_dir>/midi-<key>/`:
  train/, test/   tf.data.Dataset.save output; elements {"notes": float32 [seq_len, F]}
  stats.json      the encoding's statistics (fitted on the train split only,
                  or another corpus's, given by `encoding_from`)
  summary.json    what was read, skipped and produced

The key hashes the data parameters, the encoding's version and the source
files (ids, sizes, mtimes), so changing any of them builds a new cache. A
cache is built in a temporary folder and renamed into place, so a folder
named midi-<key> is always complete.
"""

import hashlib
import json
import os
import time
from typing import Dict, Iterator, List, Tuple

import numpy as np
import tensorflow as tf

from data import cache, corpora, encodings, midi_io
from data import notes as notes_lib
from data import progress as progress_lib

# Bump when the pipeline's output changes for the same inputs.
FORMAT_VERSION = 1
DATA_FIELDS = ("dataset", "data_dir", "seq_len", "hop", "train_hop", "programs",
               "max_beats", "transpose", "encoding", "encoding_from", "test_fraction")
SPLITS = (corpora.TRAIN, corpora.TEST)
# Segments are encoded and handed to TensorFlow this many at a time, so memory
# stays bounded by the raw segments, not by their transposed copies.
_CHUNK = 1024


class PreparedData(cache.Prepared):
    """A symbolic cache: {"notes": float32 [seq_len, features]} per example."""

    @property
    def seq_len(self) -> int:
        return int(self.summary["seq_len"])

    @property
    def num_features(self) -> int:
        return int(self.encoding.num_features)

    def summary_text(self) -> str:
        return format_summary(self.summary)


def data_parameters(params) -> dict:
    values = {field: getattr(params, field) for field in DATA_FIELDS}
    values["programs"] = ",".join(midi_io.normalize_programs(params.programs))
    # Caches built before these fields existed keep their keys.
    for field in ("train_hop", "encoding_from"):
        if not values[field]:
            del values[field]
    return values


def stats_from(folder: str, encoding: str) -> dict:
    """The statistics of `encoding` kept in `folder`: a weights folder's
    encoding.json, or a data cache (read as PreparedData.load reads it).
    Pretraining on one corpus with another's statistics keeps the classes of
    the one-hot groups meaning the same notes in both."""
    weights_file = os.path.join(folder, "encoding.json")
    try:
        if os.path.exists(weights_file):
            with open(weights_file, encoding="utf-8") as handle:
                config = json.load(handle)
            found, stats = config["name"], config["stats"]
        else:
            cached = PreparedData.load(folder)
            found, stats = cached.summary["encoding"], cached.stats
    except FileNotFoundError:
        raise ValueError(f"{folder}: --encoding_from needs a weights folder (encoding.json) "
                         "or a data cache (stats.json and summary.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder}: cannot read the encoding statistics "
                         f"({type(error).__name__}: {error})") from None
    if found != encoding:
        raise ValueError(f"{folder}: its statistics are for encoding {found!r}, not "
                         f"--encoding={encoding}")
    return stats


def cache_key(params, corpus: corpora.Corpus, fixed_stats=None) -> str:
    """Hash of the data parameters, the encoding's version, every source
    file's id, size and mtime, and the statistics given by `encoding_from`
    (their contents: the folder may change)."""
    sources = []
    for piece in corpus.pieces:
        try:
            stat = os.stat(piece.midi_path)
            sources.append([piece.piece_id, piece.split, stat.st_size, stat.st_mtime_ns])
        except OSError:
            sources.append([piece.piece_id, piece.split, None, None])
    description = {"format": FORMAT_VERSION, "params": data_parameters(params),
                   "sources": sources, "skipped_sources": [list(s) for s in corpus.skipped]}
    version = encodings.encoding_class(params.encoding).version
    if version != 1:  # version 1 leaves the keys of caches built before versions alone
        description["encoding_version"] = version
    if fixed_stats is not None:
        description["encoding_stats"] = fixed_stats
    blob = json.dumps(description, sort_keys=True).encode("utf-8")
    return hashlib.sha1(blob).hexdigest()[:16]


def segments_of(piece: np.ndarray, seq_len: int, hop: int) -> List[np.ndarray]:
    """Windows of `seq_len` notes every `hop` notes; the remainder is dropped.

    Each window's first delta is reset to 0: a segment starts at its first note.
    """
    windows = []
    for start in range(0, len(piece) - seq_len + 1, hop):
        window = piece[start:start + seq_len].copy()
        window[0, notes_lib.DELTA] = 0.0
        windows.append(window)
    return windows


def split_hop(params, split: str) -> int:
    """Window hop for `split`: `train_hop` (when set) multiplies the training
    windows; the held-out split keeps `hop`, so its scores stay comparable."""
    if split == corpora.TRAIN and params.train_hop > 0:
        return params.train_hop
    return params.hop


def transpositions(segment: np.ndarray, max_shift: int) -> List[int]:
    """Shifts in [-max_shift, max_shift] that keep every pitch in 0..127."""
    low, high = segment[:, notes_lib.PITCH].min(), segment[:, notes_lib.PITCH].max()
    return [shift for shift in range(-max_shift, max_shift + 1)
            if low + shift >= 0 and high + shift <= 127]


def transposed(segment: np.ndarray, shift: int) -> np.ndarray:
    if shift == 0:
        return segment
    moved = segment.copy()
    moved[:, notes_lib.PITCH] += shift
    return moved


def prepare(params, progress: bool = True) -> PreparedData:
    """The prepared datasets for `params`, built on first use."""
    fixed_stats = None
    if params.encoding_from:
        fixed_stats = stats_from(params.encoding_from, params.encoding)
    corpus = corpora.list_pieces(params, progress=progress)
    cache_path = os.path.join(params.cache_dir, "midi-" + cache_key(params, corpus, fixed_stats))
    if os.path.exists(os.path.join(cache_path, "summary.json")):
        prepared = PreparedData.load(cache_path)
        prepared.summary["reused"] = True
        return prepared
    return _build(params, corpus, cache_path, fixed_stats, progress)


def load_split(prepared: PreparedData, split: str) -> tf.data.Dataset:
    """The saved split as a tf.data.Dataset of {"notes": float32 [seq_len, F]}."""
    return prepared.load_split(split)


def _read_segments(params, corpus, progress) -> Tuple[Dict[str, List[np.ndarray]], dict]:
    """Reads every piece; a file that fails is recorded and skipped."""
    segments = {split: [] for split in SPLITS}
    counts = {"pieces": {s: 0 for s in SPLITS}, "notes": {s: 0 for s in SPLITS},
              "too_short": 0, "read": 0}
    skipped = [{"file": s.name, "reason": s.reason} for s in corpus.skipped]
    for piece in progress_lib.bar(corpus.pieces, desc="reading MIDI", enabled=progress):
        try:
            notes = midi_io.read_midi(piece.midi_path, params.programs, params.max_beats)
        except midi_io.MidiReadError as error:
            skipped.append({"file": piece.piece_id, "reason": error.reason})
            continue
        counts["read"] += 1
        counts["pieces"][piece.split] += 1
        counts["notes"][piece.split] += len(notes)
        windows = segments_of(notes, params.seq_len, split_hop(params, piece.split))
        if not windows:
            counts["too_short"] += 1
        segments[piece.split].extend(windows)
    counts["skipped"] = skipped
    return segments, counts


def _encoded_chunks(encoding, segments, order) -> Iterator[np.ndarray]:
    """Encoded segments in `order` ((segment index, shift) pairs), in chunks."""
    for begin in range(0, len(order), _CHUNK):
        yield np.stack([encoding.encode(transposed(segments[i], shift))
                        for i, shift in order[begin:begin + _CHUNK]])


def _save_split(path, encoding, segments, order, seq_len) -> None:
    spec = tf.TensorSpec([None, seq_len, encoding.num_features], tf.float32)
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"notes": chunk} for chunk in _encoded_chunks(encoding, segments, order)),
        output_signature={"notes": spec}).unbatch()
    # One shard keeps the saved order when loaded back.
    dataset.save(path, shard_func=lambda element: tf.constant(0, tf.int64))


def _build(params, corpus, cache_path, fixed_stats, progress) -> PreparedData:
    started = time.time()
    segments, counts = _read_segments(params, corpus, progress)
    train_order = [(i, shift) for i, segment in enumerate(segments[corpora.TRAIN])
                   for shift in transpositions(segment, params.transpose)]
    if not train_order:
        raise ValueError(
            f"no training segments of {params.seq_len} notes in "
            f"{corpora.dataset_label(params)} ({counts['read']} files read, "
            f"{len(counts['skipped'])} skipped, {counts['too_short']} too short)")
    # A fixed shuffle so neighbouring examples are not transpositions of one
    # segment (shuffle buffers downstream are small); deterministic by design.
    train_order = [train_order[i] for i in
                   np.random.default_rng(0).permutation(len(train_order))]
    test_order = [(i, 0) for i in range(len(segments[corpora.TEST]))]

    if fixed_stats is None:
        encoding = encodings.get_encoding(params.encoding)
        stats = encoding.fit(transposed(segments[corpora.TRAIN][i], shift)
                             for i, shift in train_order)
    else:
        encoding, stats = encodings.get_encoding(params.encoding, fixed_stats), fixed_stats

    summary = {
        "dataset": params.dataset, "data_parameters": data_parameters(params),
        "encoding": encoding.name, "num_features": encoding.num_features,
        "seq_len": params.seq_len, "cache_path": cache_path,
        **cache.file_counts(len(corpus.pieces), corpus.skipped, counts["skipped"]),
        "files_read": counts["read"],
        "skipped": counts["skipped"], "pieces": counts["pieces"],
        "pieces_too_short": counts["too_short"], "notes": counts["notes"],
        "segments": {s: len(segments[s]) for s in SPLITS},
        "examples": {corpora.TRAIN: len(train_order), corpora.TEST: len(test_order)},
        "stats": stats, "format": FORMAT_VERSION,
    }

    with cache.building(cache_path) as temp_path:
        _save_split(os.path.join(temp_path, corpora.TRAIN), encoding,
                    segments[corpora.TRAIN], train_order, params.seq_len)
        _save_split(os.path.join(temp_path, corpora.TEST), encoding,
                    segments[corpora.TEST], test_order, params.seq_len)
        summary["build_seconds"] = round(time.time() - started, 1)
        cache.write_json(temp_path, {"stats.json": stats, "summary.json": summary})
    prepared = PreparedData.load(cache_path)
    prepared.summary["reused"] = False
    return prepared


def _train_hop_text(data_params: dict) -> str:
    train_hop = data_params.get("train_hop", 0)  # caches built before train_hop lack it
    return f" (train {train_hop})" if train_hop else ""


def _stats_source(data_params: dict) -> str:
    source = data_params.get("encoding_from")
    return f"from {source}" if source else "train split"


def format_summary(summary: dict, max_skipped_lines: int = 20) -> str:
    p = summary["data_parameters"]
    train, test = corpora.TRAIN, corpora.TEST
    lines = [
        f"MIDI data {summary['dataset']!r}: programs={p['programs']} seq_len={p['seq_len']} "
        f"hop={p['hop']}{_train_hop_text(p)} max_beats={p['max_beats']:g} "
        f"transpose=+-{p['transpose']} encoding={summary['encoding']} test_fraction={p['test_fraction']:g}",
    ] + cache.source_lines(summary, max_skipped_lines)
    lines += [
        f"pieces: {summary['pieces'][train]} train, {summary['pieces'][test]} test; "
        f"{summary['pieces_too_short']} shorter than {summary['seq_len']} notes (no segment)",
        f"notes: {summary['notes'][train]:,} train, {summary['notes'][test]:,} test",
        f"segments of {summary['seq_len']} notes: {summary['segments'][train]:,} train "
        f"({summary['examples'][train]:,} with transpositions), "
        f"{summary['segments'][test]:,} test",
    ]
    stats = summary["stats"]
    if "minimum" in stats and "features" in stats:
        ranges = ", ".join(f"{name} [{lo:.4g}, {hi:.4g}]" for name, lo, hi in
                           zip(stats["features"], stats["minimum"], stats["maximum"]))
        lines.append(f"statistics ({_stats_source(p)}, {summary['encoding']}): {ranges}; "
                     f"mean velocity {stats.get('mean_velocity', float('nan')):.1f}")
    else:
        lines.append(f"statistics ({_stats_source(p)}): {json.dumps(stats)}")
    return "\n".join(lines)
