"""Lists the pieces of each symbolic dataset as (piece_id, midi_path, split).

The train/test split is decided per piece from a SHA-1 of its id, so it does
not depend on Python's hash seed, on the file order, or on which other pieces
exist: adding files never moves a piece from one split to the other.
"""

import csv
import glob
import hashlib
import importlib.metadata
import json
import os
import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

from data import progress as progress_lib
from data.midi_io import atomic_output

TRAIN, TEST = "train", "test"
DATASETS = ("bach", "folder", "lakh", "maestro", "palestrina")


class Piece(NamedTuple):
    piece_id: str
    midi_path: str
    split: str


class Skipped(NamedTuple):
    name: str
    reason: str


class Corpus(NamedTuple):
    pieces: List[Piece]
    skipped: List[Skipped]  # sources that could not be listed or converted


def split_of(piece_id: str, test_fraction: float) -> str:
    """'test' for about `test_fraction` of ids, chosen by SHA-1 of the id."""
    digest = hashlib.sha1(piece_id.encode("utf-8")).hexdigest()
    position = int(digest[:15], 16) / float(16 ** 15)  # uniform in [0, 1)
    return TEST if position < test_fraction else TRAIN


def list_pieces(params, progress: bool = True) -> Corpus:
    """The pieces of `params.dataset` (converting music21's scores on first use)."""
    if params.dataset in MUSIC21_CORPORA:
        return music21_pieces(MUSIC21_CORPORA[params.dataset], params.cache_dir,
                              params.test_fraction, progress=progress)
    if params.dataset == "folder":
        return folder_pieces(params.data_dir, params.test_fraction)
    if params.dataset == "lakh":
        return lakh_pieces(params.data_dir, params.test_fraction)
    if params.dataset == "maestro":
        return maestro_pieces(params.data_dir)
    raise ValueError(f"unknown dataset {params.dataset!r}; choose one of {', '.join(DATASETS)}")


MIDI_EXTENSIONS = (".mid", ".midi")


def dataset_label(params) -> str:
    """How messages name the data: the dataset and, for a user's folder, its path."""
    where = f" at {params.data_dir}" if params.data_dir else ""
    return f"dataset {params.dataset!r}{where}"


# --- folder -------------------------------------------------------------

def unreadable_folder(name: str, error: OSError) -> Skipped:
    """The Skipped entry of a folder that could not be listed ("name/")."""
    return Skipped(name + "/", f"unreadable folder ({error.strerror})")


def files_under(folder: str, extensions: Tuple[str, ...]) -> Tuple[List[str], List[Skipped]]:
    """Every file below `folder` ending in one of `extensions` (any letter case),
    sorted, and a Skipped entry for each subfolder that could not be listed
    (os.walk would pass over it without a word)."""
    found, unreadable = [], []

    def note_unreadable(error):
        name = os.path.relpath(error.filename, folder).replace(os.sep, "/")
        unreadable.append(unreadable_folder(name, error))

    for root, dirs, files in os.walk(folder, onerror=note_unreadable):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in files
                     if name.lower().endswith(extensions))
    return sorted(found), unreadable


def _require_folder(folder: str, dataset: str) -> None:
    if not folder:
        raise ValueError(f"dataset {dataset!r} needs --data_dir")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: data_dir for dataset {dataset!r} is not a folder")


def folder_pieces(data_dir: str, test_fraction: float) -> Corpus:
    """Any folder of MIDI files; ids are paths relative to it."""
    _require_folder(data_dir, "folder")
    pieces = []
    paths, unreadable = files_under(data_dir, MIDI_EXTENSIONS)
    for path in paths:
        piece_id = os.path.relpath(path, data_dir).replace(os.sep, "/")
        pieces.append(Piece(piece_id, path, split_of(piece_id, test_fraction)))
    return Corpus(pieces, unreadable)


# --- Lakh MIDI ---------------------------------------------------------

def lakh_pieces(data_dir: str, test_fraction: float) -> Corpus:
    """Lakh MIDI's `lmd_full/<first hex digit>/<md5>.mid`; data_dir may be
    lmd_full itself or the folder that contains it. Ids are the md5s."""
    _require_folder(data_dir, "lakh")
    root = data_dir
    if os.path.isdir(os.path.join(data_dir, "lmd_full")):
        root = os.path.join(data_dir, "lmd_full")
    pieces, unreadable = [], []
    for shard in (format(digit, "x") for digit in range(16)):  # Lakh's 16 shards
        if not os.path.isdir(os.path.join(root, shard)):
            continue
        try:
            names = os.listdir(os.path.join(root, shard))
        except OSError as error:  # a glob would pass over it without a word
            unreadable.append(unreadable_folder(shard, error))
            continue
        for name in sorted(n for n in names if n.endswith(".mid")):
            piece_id = name[:-len(".mid")]
            pieces.append(Piece(piece_id, os.path.join(root, shard, name),
                                split_of(piece_id, test_fraction)))
    if not pieces:
        raise FileNotFoundError(
            f"{data_dir}: no Lakh files (expected lmd_full/<hex digit>/<md5>.mid)"
            + "".join(f"; {s.name}: {s.reason}" for s in unreadable))
    return Corpus(pieces, unreadable)


# --- MAESTRO -------------------------------------------------------------

def maestro_pieces(data_dir: str) -> Corpus:
    """MAESTRO v3 from `maestro-v3.0.0.csv` and its own split column.

    MAESTRO's `test` split is the held-out split, so results compare with
    published ones; its `validation` split is merged into train (this project
    has two splits). `test_fraction` is not used. Rows whose MIDI file is
    missing are reported as skipped.
    """
    _require_folder(data_dir, "maestro")
    csv_paths = sorted(glob.glob(os.path.join(glob.escape(data_dir), "maestro-v*.csv")))
    if not csv_paths:
        raise FileNotFoundError(f"{data_dir}: no maestro-v*.csv (MAESTRO's metadata table)")
    csv_path = csv_paths[-1]
    pieces, skipped = [], []
    with open(csv_path, newline="", encoding="utf-8") as table:
        for row in csv.DictReader(table):
            piece_id = row["midi_filename"]
            path = os.path.join(data_dir, *piece_id.split("/"))
            if not os.path.isfile(path):
                skipped.append(Skipped(piece_id, f"listed in {os.path.basename(csv_path)} "
                                                 "but missing on disk"))
                continue
            split = TEST if row["split"].strip() == "test" else TRAIN
            pieces.append(Piece(piece_id, path, split))
    pieces.sort()
    return Corpus(pieces, skipped)


# --- music21's corpora (Bach, Palestrina) ---------------------------------

class Music21Corpus(NamedTuple):
    """One composer's scores in music21's corpus, converted to MIDI on first use.

    Args:
        composer: music21's composer folder.
        folder: the MIDI folder under cache_dir.
        suffixes: score formats taken, in order of preference (a piece held
            twice converts from the first that works).
        time_scale: every note value multiplied by this.
        ids_with_suffix: piece ids are file names ("Agnus.mid"), as the
            folder dataset gives them for the converted folder, instead of
            names ("bwv1.6").
    """
    composer: str
    folder: str
    suffixes: Tuple[str, ...]
    time_scale: float = 1.0
    ids_with_suffix: bool = False


MUSIC21_CORPORA = {
    # Some chorales are there twice (.mxl and .krn). The .rntxt files are
    # Roman-numeral analyses, not Bach's notes, so they are left out. Ids are
    # names, as when the shipped weights were trained (ids decide the split).
    "bach": Music21Corpus("bach", "bach_midi", (".mxl", ".xml", ".musicxml", ".krn")),
    # 1,318 Humdrum masses and motets. Their scores keep the original note
    # values (the half note is the beat), twice a modern edition's; halved,
    # 99.3% of their durations and onset gaps fall on the Bach onehot
    # encoding's vocabularies (README, "Pretraining on Palestrina").
    "palestrina": Music21Corpus("palestrina", "palestrina_midi", (".krn",),
                                time_scale=0.5, ids_with_suffix=True),
}


def _read_manifest(manifest_path: str, time_scale: float) -> Optional[dict]:
    """The manifest if it matches this music21 and every file it lists exists."""
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    folder = os.path.dirname(manifest_path)
    if (manifest.get("music21_version") != _music21_version()
            or manifest.get("time_scale", 1.0) != time_scale
            or not all(os.path.exists(os.path.join(folder, name + ".mid"))
                       for name in manifest.get("pieces", []))):
        return None
    return manifest


def music21_sources(spec: Music21Corpus) -> List[Tuple[str, List[str]]]:
    """(piece name, score paths in order of preference) for one composer."""
    from music21 import corpus  # slow import; only these datasets need it
    by_name = {}
    for path in corpus.getComposer(spec.composer):
        path = str(path)
        stem, suffix = os.path.splitext(os.path.basename(path))
        if suffix.lower() in spec.suffixes:
            by_name.setdefault(stem, []).append(path)
    return [(name, sorted(paths, key=lambda p: spec.suffixes.index(
        os.path.splitext(p)[1].lower()))) for name, paths in sorted(by_name.items())]


def _set_programs_to_piano(midi_file, midi_module) -> None:
    """Labels every part as GM piano (program 0).

    music21 derives programs from the score's part names, inconsistently
    (most chorale parts come out as piano, but some sopranos as oboe, some
    whole chorales as choir, continuo as organ). All the parts are the
    composer's voices and belong together, so the MIDI files are written as
    keyboard reductions and the default programs="piano" keeps every part.
    """
    for track in midi_file.tracks:
        for event in track.events:
            if event.type == midi_module.ChannelVoiceMessages.PROGRAM_CHANGE:
                event.data = 0


def convert_score(job: Tuple[str, Sequence[str], str, float]) -> Tuple[str, Optional[str]]:
    """Pool worker: writes one score as MIDI, its note values times
    `time_scale`. Returns (name, failure reason or None)."""
    name, score_paths, midi_path, time_scale = job
    from music21 import converter, midi  # imported in the worker process
    reasons = []
    for score_path in score_paths:
        try:
            score = converter.parse(score_path)
            if time_scale != 1.0:
                score = score.augmentOrDiminish(time_scale)
            midi_file = midi.translate.streamToMidiFile(score)
            _set_programs_to_piano(midi_file, midi)
            with atomic_output(midi_path, suffix=".mid") as temp_path:
                midi_file.open(temp_path, "wb")
                try:
                    midi_file.write()
                finally:
                    midi_file.close()
            return name, None
        # music21's many parsers raise whatever their input provokes (XML,
        # zip, Humdrum, music21's own errors); in a worker, one uncaught error
        # would end the whole conversion, so every failure is recorded with its
        # type and message and reported as a skipped piece.
        except Exception as error:  # noqa: BLE001 - recorded, never silenced
            message = " ".join(str(error).split())[:200]
            reasons.append(f"{os.path.basename(score_path)}: {type(error).__name__}: {message}")
    return name, "music21 could not convert it (" + "; ".join(reasons) + ")"


def build_music21_midi(spec: Music21Corpus, cache_dir: str, sources=None, workers: int = 2,
                       progress: bool = True) -> Tuple[List[Tuple[str, str]], List[Skipped]]:
    """Converts the composer's scores to `<cache_dir>/<spec.folder>/<name>.mid`.

    Files already there are kept (every file appears by atomic rename, so an
    existing file is complete). Returns ((name, midi path) for the pieces
    available, skipped sources with reasons). `sources` defaults to all of
    music21_sources(spec); tests pass a few.
    """
    sources = music21_sources(spec) if sources is None else list(sources)
    folder = os.path.join(cache_dir, spec.folder)
    os.makedirs(folder, exist_ok=True)
    midi_path = {name: os.path.join(folder, name + ".mid") for name, _ in sources}
    jobs = [(name, paths, midi_path[name], spec.time_scale) for name, paths in sources
            if not os.path.exists(midi_path[name])]
    failures = {}
    if jobs:
        started = time.time()
        what = spec.composer.capitalize()
        for name, reason in progress_lib.map_jobs(convert_score, jobs, workers,
                                                  f"converting {what} to MIDI", progress):
            if reason:
                failures[name] = reason
        progress_lib.note(f"converted {len(jobs) - len(failures)} of {len(jobs)} {what} scores "
                          f"to MIDI in {time.time() - started:.0f} s ({folder})", progress)
    available = [(name, midi_path[name]) for name, _ in sources
                 if name not in failures and os.path.exists(midi_path[name])]
    skipped = [Skipped(name, reason) for name, reason in sorted(failures.items())]
    return available, skipped


def _music21_version() -> str:
    try:
        return importlib.metadata.version("music21")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def music21_pieces(spec: Music21Corpus, cache_dir: str, test_fraction: float, sources=None,
                   workers: int = 2, progress: bool = True) -> Corpus:
    """One composer of music21's corpus, converted to MIDI on first use.

    A manifest written after a complete conversion lets later runs list the
    pieces without importing music21 (seconds) while the files are all there.
    """
    folder = os.path.join(cache_dir, spec.folder)
    manifest_path = os.path.join(folder, "manifest.json")
    manifest = _read_manifest(manifest_path, spec.time_scale) if sources is None else None
    if manifest is not None:
        available = [(name, os.path.join(folder, name + ".mid")) for name in manifest["pieces"]]
        skipped = [Skipped(name, reason) for name, reason in manifest["skipped"]]
    else:
        available, skipped = build_music21_midi(spec, cache_dir, sources, workers, progress)
        if sources is None:
            with atomic_output(manifest_path, suffix=".json") as temp_path:
                with open(temp_path, "w", encoding="utf-8") as out:
                    json.dump({"music21_version": _music21_version(),
                               "time_scale": spec.time_scale,
                               "pieces": [name for name, _ in available],
                               "skipped": [list(s) for s in skipped]}, out, indent=1)
    ids = [name + ".mid" if spec.ids_with_suffix else name for name, _ in available]
    pieces = sorted(Piece(piece_id, path, split_of(piece_id, test_fraction))
                    for piece_id, (_, path) in zip(ids, available))
    return Corpus(pieces, skipped)


def bach_pieces(cache_dir: str, test_fraction: float, sources=None,
                workers: int = 2, progress: bool = True) -> Corpus:
    """music21's Bach corpus; ids are names such as 'bwv1.6'."""
    return music21_pieces(MUSIC21_CORPORA["bach"], cache_dir, test_fraction, sources,
                          workers, progress)
