"""Builds (or reuses) the cached tf.data datasets of waveform segments.

Sources (params.dataset):
  gtzan   GTZAN as users have it: the Kaggle layout
          Data/genres_original/<genre>/<genre>.000NN.wav or the original
          genres/<genre>/<genre>.000NN.au; --data_dir may name the folder
          that holds either, or genres_original / genres itself. Label: genre.
  folder  any folder of audio files (wav, flac, ogg, au, ...); label: the
          first-level subfolder (0 for files at the top).
  bach    the symbolic domain's Bach corpus rendered with General MIDI
          soundfont at params.sample_rate (built on first use), the same
          piece-level train/test split.

Each file is decoded to mono at params.sample_rate, cut to its first
params.clip_samples samples (0: the whole file) and split into every full
segment of params.segment_samples (the seed's 6 x 110,000 of a 30 s clip);
each segment is low-passed at params.cutoff_hz and decimated by
params.downsample (36,667 samples at 7350 Hz with the seed's values).

Layout of one cache, `<cache_dir>/wave-<key>/`:
  train/, test/   tf.data.Dataset.save output; elements
                  {"audio": float32 [samples, 1] raw, "label": int32}
  stats.json      the waveform gain, fitted on the train split only
  summary.json    what was read, skipped and produced
"""

import hashlib
import json
import os
import time
from typing import List, NamedTuple

import numpy as np
import tensorflow as tf

from data import audio_io, cache, corpora, dsp, encodings
from data import progress as progress_lib
from params import model_rate, sample_length as segment_length

FORMAT_VERSION = 1
DATASETS = ("bach", "gtzan", "folder")
DATA_FIELDS = ("dataset", "data_dir", "sample_rate", "clip_samples", "segment_samples",
               "downsample", "cutoff_hz", "filter_taps", "test_fraction")
SPLITS = (corpora.TRAIN, corpora.TEST)
BACH_WAV_FOLDER = "bach_wav"
_GTZAN_FOLDERS = (os.path.join("Data", "genres_original"), "genres_original", "genres")


class AudioSource(NamedTuple):
    piece_id: str
    path: str
    split: str
    label: int


class AudioCorpus(NamedTuple):
    sources: List[AudioSource]
    labels: List[str]
    skipped: List[corpora.Skipped]


class PreparedAudio(cache.Prepared):
    """A waveform cache: {"audio": float32 [samples, 1], "label": int32} per example."""

    @property
    def model_rate(self) -> int:
        return int(self.summary["model_rate"])

    @property
    def segment_length(self) -> int:
        return int(self.summary["segment_length"])

    @property
    def num_features(self) -> int:
        return 1

    def summary_text(self) -> str:
        return format_summary(self.summary)


# --- sources ------------------------------------------------------------------

def gtzan_root(data_dir: str) -> str:
    """The folder whose subfolders are the genres."""
    if not data_dir:
        raise ValueError("dataset 'gtzan' needs --data_dir (the folder holding "
                         "Data/genres_original or genres)")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{data_dir}: data_dir for dataset 'gtzan' is not a folder")
    for candidate in _GTZAN_FOLDERS:
        if os.path.isdir(os.path.join(data_dir, candidate)):
            return os.path.join(data_dir, candidate)
    return data_dir


def is_gtzan_tree(data_dir: str) -> bool:
    """Whether data_dir holds GTZAN's Kaggle or original layout."""
    return any(os.path.isdir(os.path.join(data_dir, candidate)) for candidate in _GTZAN_FOLDERS)


def labelled_sources(root: str, test_fraction: float) -> AudioCorpus:
    """Audio files under `root`, labelled by their first-level subfolder."""
    files, unreadable = corpora.files_under(root, audio_io.AUDIO_EXTENSIONS)
    relative = [os.path.relpath(path, root).replace(os.sep, "/") for path in files]
    labels = sorted({rel.split("/")[0] for rel in relative if "/" in rel})
    has_top_level = any("/" not in rel for rel in relative)
    if has_top_level:
        labels = [""] + labels
    index = {name: i for i, name in enumerate(labels)}
    sources = [AudioSource(rel, path, corpora.split_of(rel, test_fraction),
                           index[rel.split("/")[0] if "/" in rel else ""])
               for rel, path in zip(relative, files)]
    return AudioCorpus(sources, labels, unreadable)


def _render_job(job):
    from data import render
    name, midi_path, wav_path, sample_rate = job
    try:
        render.render_wav(midi_path, wav_path, sample_rate=sample_rate)
        return name, None
    except Exception as error:  # a bad score must not stop the corpus
        return name, f"cannot render ({str(error).splitlines()[0] if str(error) else error!r})"


def bach_audio(params, progress: bool = True) -> AudioCorpus:
    """The Bach corpus rendered to WAV under <cache_dir>/bach_wav_<rate>/."""
    corpus = corpora.bach_pieces(params.cache_dir, params.test_fraction, progress=progress)
    folder = os.path.join(params.cache_dir, f"{BACH_WAV_FOLDER}_{params.sample_rate}")
    os.makedirs(folder, exist_ok=True)
    wav_path = {piece.piece_id: os.path.join(folder, piece.piece_id + ".wav")
                for piece in corpus.pieces}
    jobs = [(piece.piece_id, piece.midi_path, wav_path[piece.piece_id], params.sample_rate)
            for piece in corpus.pieces if not os.path.exists(wav_path[piece.piece_id])]
    failures = {}
    if jobs:
        started = time.time()
        for name, reason in progress_lib.map_jobs(_render_job, jobs, 2,
                                                  "rendering Bach to audio", progress):
            if reason:
                failures[name] = reason
        progress_lib.note(f"rendered {len(jobs) - len(failures)} of {len(jobs)} pieces at "
                          f"{params.sample_rate} Hz in {time.time() - started:.0f} s "
                          f"({folder})", progress)
    sources = [AudioSource(p.piece_id, wav_path[p.piece_id], p.split, 0)
               for p in corpus.pieces if p.piece_id not in failures]
    skipped = list(corpus.skipped) + [corpora.Skipped(n, r) for n, r in sorted(failures.items())]
    return AudioCorpus(sources, ["bach"], skipped)


def list_sources(params, progress: bool = True) -> AudioCorpus:
    if params.dataset == "bach":
        return bach_audio(params, progress)
    if params.dataset == "gtzan":
        return labelled_sources(gtzan_root(params.data_dir), params.test_fraction)
    if params.dataset == "folder":
        if not params.data_dir or not os.path.isdir(params.data_dir):
            raise ValueError(f"dataset 'folder' needs --data_dir naming a folder "
                             f"(got {params.data_dir!r})")
        return labelled_sources(params.data_dir, params.test_fraction)
    raise ValueError(f"unknown waveform dataset {params.dataset!r}; choose one of "
                     f"{', '.join(DATASETS)}")


# --- segments -------------------------------------------------------------------

def segments_of(audio: np.ndarray, params) -> np.ndarray:
    """[n, segment_samples] full segments of the file's first clip_samples."""
    if params.clip_samples:
        audio = audio[:params.clip_samples]
    count = len(audio) // params.segment_samples
    return audio[:count * params.segment_samples].reshape(count, params.segment_samples)


def downsampled(segments: np.ndarray, params) -> np.ndarray:
    """Low-pass and decimate each segment: [n, segment_length(params)] float32."""
    if len(segments) == 0:
        return np.zeros([0, segment_length(params)], np.float32)
    return dsp.low_pass(segments, params.cutoff_hz, params.sample_rate, params.filter_taps,
                        params.downsample).numpy()


# --- cache -------------------------------------------------------------------------

def data_parameters(params) -> dict:
    return {field: getattr(params, field) for field in DATA_FIELDS}


def cache_key(params, corpus: AudioCorpus) -> str:
    sources = []
    for source in corpus.sources:
        try:
            stat = os.stat(source.path)
            sources.append([source.piece_id, source.split, source.label, stat.st_size,
                            stat.st_mtime_ns])
        except OSError:
            sources.append([source.piece_id, source.split, source.label, None, None])
    description = {"format": FORMAT_VERSION, "params": data_parameters(params),
                   "sources": sources, "skipped_sources": [list(s) for s in corpus.skipped]}
    return hashlib.sha1(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def prepare(params, progress: bool = True) -> PreparedAudio:
    """The prepared waveform datasets for `params`, built on first use."""
    if params.segment_samples <= 0 or params.downsample <= 0:
        raise ValueError("--segment_samples and --downsample must be positive")
    corpus = list_sources(params, progress)
    cache_path = os.path.join(params.cache_dir, "wave-" + cache_key(params, corpus))
    if os.path.exists(os.path.join(cache_path, "summary.json")):
        prepared = PreparedAudio.load(cache_path)
        prepared.summary["reused"] = True
        return prepared
    return _build(params, corpus, cache_path, progress)


def load_split(prepared: PreparedAudio, split: str, scaled: bool = True) -> tf.data.Dataset:
    """{"audio": float32 [samples, 1], "label": int32}; audio times the fitted
    gain (the model's features) when `scaled`, raw audio in [-1, 1] otherwise."""
    dataset = prepared.load_split(split)
    if scaled:
        gain = prepared.encoding.gain
        dataset = dataset.map(lambda e: {"audio": e["audio"] * gain, "label": e["label"]})
    return dataset


def _split_elements(params, sources, counts, progress, desc):
    """Yields {"audio", "label"} per segment of `sources`, counting as it goes."""
    for source in progress_lib.bar(sources, desc=desc, enabled=progress):
        try:
            audio = audio_io.read_audio(source.path, params.sample_rate)
        except audio_io.AudioReadError as error:
            counts["skipped"].append({"file": source.piece_id, "reason": error.reason})
            continue
        counts["read"] += 1
        counts["files"][source.split] += 1
        counts["seconds"][source.split] += len(audio) / params.sample_rate
        segments = downsampled(segments_of(audio, params), params)
        if not len(segments):
            counts["too_short"] += 1
        counts["examples"][source.split] += len(segments)
        if source.split == corpora.TRAIN:
            counts["sum_of_squares"] += float(np.sum(np.square(segments, dtype=np.float64)))
            counts["train_samples"] += segments.size
        for segment in segments:
            yield {"audio": segment[:, None], "label": np.int32(source.label)}


def _save_split(path, elements, length):
    signature = {"audio": tf.TensorSpec([length, 1], tf.float32),
                 "label": tf.TensorSpec([], tf.int32)}
    dataset = tf.data.Dataset.from_generator(lambda: elements, output_signature=signature)
    # One shard keeps the saved order when loaded back.
    dataset.save(path, shard_func=lambda element: tf.constant(0, tf.int64))


def _build(params, corpus, cache_path, progress) -> PreparedAudio:
    started = time.time()
    counts = {"read": 0, "too_short": 0, "files": {s: 0 for s in SPLITS},
              "seconds": {s: 0.0 for s in SPLITS}, "examples": {s: 0 for s in SPLITS},
              "sum_of_squares": 0.0, "train_samples": 0,
              "skipped": [{"file": s.name, "reason": s.reason} for s in corpus.skipped]}
    length = segment_length(params)
    with cache.building(cache_path) as temp_path:
        for split in SPLITS:
            sources = [s for s in corpus.sources if s.split == split]
            _save_split(os.path.join(temp_path, split),
                        _split_elements(params, sources, counts, progress,
                                        f"preparing {split} audio"), length)
        if not counts["examples"][corpora.TRAIN]:
            raise ValueError(
                f"no training segments of {params.segment_samples} samples in "
                f"{corpora.dataset_label(params)} ({counts['read']} files read, "
                f"{len(counts['skipped'])} skipped, {counts['too_short']} too short)")
        encoding = encodings.get_encoding("waveform")
        stats = encoding.fit_rms(counts["sum_of_squares"], counts["train_samples"])
        summary = {
            "domain": "wave", "dataset": params.dataset,
            "data_parameters": data_parameters(params), "encoding": encoding.name,
            "labels": corpus.labels, "model_rate": model_rate(params),
            "segment_length": length, "cache_path": cache_path,
            **cache.file_counts(len(corpus.sources), corpus.skipped, counts["skipped"]),
            "files_read": counts["read"],
            "skipped": counts["skipped"], "files": counts["files"],
            "files_too_short": counts["too_short"],
            "hours": {s: round(counts["seconds"][s] / 3600, 3) for s in SPLITS},
            "examples": counts["examples"], "stats": stats, "format": FORMAT_VERSION,
            "build_seconds": round(time.time() - started, 1),
        }
        cache.write_json(temp_path, {"stats.json": stats, "summary.json": summary})
    prepared = PreparedAudio.load(cache_path)
    prepared.summary["reused"] = False
    return prepared


def format_summary(summary: dict, max_skipped_lines: int = 20) -> str:
    p = summary["data_parameters"]
    train, test = corpora.TRAIN, corpora.TEST
    lines = [
        f"audio data {summary['dataset']!r}: {p['sample_rate']} Hz, clips of "
        f"{p['clip_samples'] or 'all'} samples in segments of {p['segment_samples']}, "
        f"low-pass {p['cutoff_hz']:g} Hz ({p['filter_taps']} taps), downsample "
        f"{p['downsample']} -> {summary['segment_length']:,} samples at "
        f"{summary['model_rate']} Hz; test_fraction={p['test_fraction']:g}",
    ] + cache.source_lines(summary, max_skipped_lines)
    labels = summary["labels"]
    lines += [
        f"labels: {len(labels)} ({', '.join(label or '(top level)' for label in labels[:12])}"
        + (", ..." if len(labels) > 12 else "") + ")",
        f"files: {summary['files'][train]} train, {summary['files'][test]} test "
        f"({summary['hours'][train]:.2f} h / {summary['hours'][test]:.2f} h); "
        f"{summary['files_too_short']} shorter than one segment",
        f"segments: {summary['examples'][train]:,} train, {summary['examples'][test]:,} test",
        f"statistics (train split): rms {summary['stats']['rms']:.4f}, gain "
        f"{summary['stats']['gain']:.3f} (to rms {summary['stats']['target_rms']})",
    ]
    return "\n".join(lines)
