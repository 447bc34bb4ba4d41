"""Reading and writing MIDI files as note arrays (see data/notes.py).

Timing is kept in beats taken from the file's own ticks: beats = ticks /
ticks-per-beat. Tempo changes move notes in seconds but not in beats, so a
piece reads the same at any tempo and at any tick resolution (music21 writes
10,080 ticks per quarter, most sequencers 96-960).
"""

import contextlib
import os
import struct
import tempfile
import warnings
from typing import FrozenSet, Tuple

import mido
import numpy as np
import pretty_midi

from data import notes as notes_lib

# pretty_midi refuses files whose last tick exceeds 1e7, which a few minutes of
# music at music21's 10,080 ticks per beat already reaches. It allocates one
# float64 per tick, so the ceiling still guards against corrupt files that
# claim billions of ticks (5e7 ticks = 400 MB, about 80 minutes at 10,080 tpq).
MAX_TICKS = 50_000_000

# General MIDI groups its 128 programs in 16 families of 8.
PROGRAM_FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings",
    "ensemble", "brass", "reed", "pipe", "synth_lead", "synth_pad",
    "synth_effects", "ethnic", "percussive", "sound_effects",
)

DRUM_CHANNEL = 9
_MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)

# What mido and pretty_midi raise on malformed files; anything else is a bug
# and should surface rather than be recorded as a bad file.
_PARSE_ERRORS = (mido.KeySignatureError, OSError, EOFError, ValueError, KeyError, IndexError,
                 TypeError, struct.error, ZeroDivisionError, OverflowError)


class MidiReadError(Exception):
    """A MIDI file that cannot be used, with a one-line reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # keep it on one line
        super().__init__(f"{self.path}: {self.reason}")


def normalize_programs(programs: str) -> Tuple[str, ...]:
    """Canonical sorted tuple of family names, so "strings, piano" == "piano,strings"."""
    names = sorted({name.strip().lower() for name in str(programs).split(",")
                    if name.strip()})
    if not names:
        raise ValueError("programs is empty; name at least one GM family or 'all'")
    unknown = [n for n in names if n != "all" and n not in PROGRAM_FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown program family {', '.join(repr(n) for n in unknown)}; "
            f"choose from all, {', '.join(PROGRAM_FAMILIES)}")
    return tuple(names)


def program_numbers(programs: str) -> FrozenSet[int]:
    """The GM program numbers (0-127) selected by a comma list of families."""
    names = normalize_programs(programs)
    if "all" in names:
        return frozenset(range(128))
    return frozenset(program for name in names
                     for program in range(PROGRAM_FAMILIES.index(name) * 8,
                                          PROGRAM_FAMILIES.index(name) * 8 + 8))


def load_pretty_midi(path) -> pretty_midi.PrettyMIDI:
    """pretty_midi's view of a file; any parse failure becomes MidiReadError."""
    try:
        if os.path.getsize(path) == 0:
            raise MidiReadError(path, "empty file (0 bytes)")
    except OSError:
        pass  # reported by the parser below with its own reason
    pretty_midi.pretty_midi.MAX_TICK = max(pretty_midi.pretty_midi.MAX_TICK, MAX_TICKS)
    try:
        with warnings.catch_warnings():
            # Tempo events on non-zero tracks are common and harmless here:
            # beats come from ticks, not from the tempo map.
            warnings.simplefilter("ignore")
            midi = pretty_midi.PrettyMIDI(os.fspath(path))
    except FileNotFoundError:
        raise MidiReadError(path, "file not found") from None
    except PermissionError:
        raise MidiReadError(path, "unreadable: permission denied") from None
    except IsADirectoryError:
        raise MidiReadError(path, "unreadable: is a folder") from None
    except _PARSE_ERRORS as error:
        raise MidiReadError(path, f"corrupt MIDI ({type(error).__name__}: {error})") from None
    if midi.resolution <= 0:
        raise MidiReadError(path, f"unsupported timing division {midi.resolution}")
    return midi


def read_midi(path, programs: str = "piano", max_beats: float = 8.0) -> np.ndarray:
    """Reads the notes of the selected program families, merged, in beats.

    Drum tracks are never kept. Durations and onset gaps above `max_beats` are
    clipped to it (a long fermata or rest should not cost the whole file).
    Raises MidiReadError when the file cannot be parsed or has no notes in the
    selected programs.
    """
    wanted = program_numbers(programs)
    midi = load_pretty_midi(path)
    kept = [inst for inst in midi.instruments
            if not inst.is_drum and inst.program in wanted and inst.notes]
    rows = [(note.pitch, midi.time_to_tick(note.start), midi.time_to_tick(note.end),
             note.velocity) for inst in kept for note in inst.notes]
    if not rows:
        raise MidiReadError(path, f"empty: no notes in programs {programs!r}")
    pitch, start_tick, end_tick, velocity = np.asarray(rows, np.float64).T
    playable = end_tick > start_tick  # zero-length notes make no sound
    if not playable.any():
        raise MidiReadError(path, "empty: all notes have zero length")

    beats_per_tick = 1.0 / midi.resolution
    start_beats = start_tick[playable] * beats_per_tick
    duration_beats = (end_tick[playable] - start_tick[playable]) * beats_per_tick
    piece = notes_lib.from_onsets(pitch[playable], start_beats, duration_beats,
                                  velocity[playable])
    return clip_beats(piece, max_beats)


def clip_beats(piece: np.ndarray, max_beats: float) -> np.ndarray:
    """Clips durations and onset gaps to `max_beats` (returns a copy)."""
    piece = np.array(piece, np.float64, copy=True)
    piece[:, notes_lib.DURATION] = np.clip(piece[:, notes_lib.DURATION], 0.0, max_beats)
    piece[:, notes_lib.DELTA] = np.clip(piece[:, notes_lib.DELTA], 0.0, max_beats)
    return piece


@contextlib.contextmanager
def atomic_output(path, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    Readers never see a half-written file, and a crash leaves only a stray
    temporary file, never a truncated file under the real name.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix + ".tmp")
    os.close(handle)
    try:
        yield temp_path
        # mkstemp makes owner-only files; results are meant to be shared.
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)


def playable_notes(piece: np.ndarray) -> np.ndarray:
    """A copy without rows holding NaN or infinity and with negative durations
    and gaps raised to 0, so that even a diverged sample can be written."""
    piece = np.asarray(piece, np.float64).reshape(-1, notes_lib.NUM_COLUMNS)
    piece = piece[np.isfinite(piece).all(axis=1)].copy()
    piece[:, [notes_lib.DURATION, notes_lib.DELTA]] = np.maximum(
        piece[:, [notes_lib.DURATION, notes_lib.DELTA]], 0.0)
    return piece


def _assign_channels(pitches, start_ticks, end_ticks) -> np.ndarray:
    """A channel per note so that no two sounding notes share (channel, pitch).

    MIDI cannot represent two overlapping notes of one pitch on one channel
    (the first note-off ends both), so overlapping repeats and doubled voices
    go to other melodic channels and survive a round trip.
    """
    channels = np.zeros(len(pitches), np.int64)
    busy_until = {}  # (channel, pitch) -> end tick of the note sounding there
    for i in np.argsort(start_ticks, kind="stable"):
        free = [c for c in _MELODIC_CHANNELS
                if busy_until.get((c, pitches[i]), -1) <= start_ticks[i]]
        # With 15 channels busy on one pitch, reuse the one that frees first.
        channel = free[0] if free else min(
            _MELODIC_CHANNELS, key=lambda c: busy_until[(c, pitches[i])])
        channels[i] = channel
        busy_until[(channel, pitches[i])] = end_ticks[i]
    return channels


def write_midi(piece: np.ndarray, path, tempo_bpm: float = 120.0, program: int = 0,
               ticks_per_beat: int = 480) -> int:
    """Writes a note array as a one-track MIDI file; returns the notes written.

    Rows holding NaN or infinity are dropped, negative gaps count as 0.
    Pitches are rounded to the nearest MIDI note and clipped to 0-127,
    velocities rounded and clipped to 1-127, times rounded to ticks; notes
    whose length rounds to zero ticks are skipped. Written atomically.
    """
    piece = playable_notes(piece)
    onset = notes_lib.onsets(piece)
    start_ticks = np.round(onset * ticks_per_beat).astype(np.int64)
    end_ticks = np.round((onset + piece[:, notes_lib.DURATION])
                         * ticks_per_beat).astype(np.int64)
    keep = end_ticks > start_ticks
    pitches = np.clip(np.round(piece[keep, notes_lib.PITCH]), 0, 127).astype(np.int64)
    velocities = np.clip(np.round(piece[keep, notes_lib.VELOCITY]), 1, 127).astype(np.int64)
    start_ticks, end_ticks = start_ticks[keep], end_ticks[keep]
    channels = _assign_channels(pitches, start_ticks, end_ticks)

    # (tick, order, message): at equal ticks note-offs go first so a repeated
    # note is released before it is struck again.
    events = []
    for channel in sorted(set(channels.tolist()) or {0}):
        events.append((0, 0, mido.Message("program_change", channel=channel,
                                          program=int(program))))
    for p, v, s, e, c in zip(pitches.tolist(), velocities.tolist(), start_ticks.tolist(),
                             end_ticks.tolist(), channels.tolist()):
        events.append((e, 1, mido.Message("note_off", channel=c, note=p, velocity=0)))
        events.append((s, 2, mido.Message("note_on", channel=c, note=p, velocity=v)))
    events.sort(key=lambda event: (event[0], event[1]))

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    previous_tick = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - previous_tick))
        previous_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi_file = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi_file.tracks.append(track)
    with atomic_output(path, suffix=".mid") as temp_path:
        midi_file.save(temp_path)
    return int(keep.sum())

