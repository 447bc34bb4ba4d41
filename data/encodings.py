"""Note encodings: note arrays [L, 4] <-> model features float32 [L, F].

An encoding's statistics are fitted on the training split only and travel
with the model (get_config), so a fresh checkout can decode what a trained
model generates. New encodings register themselves with @register_encoding.
"""

import math
from typing import Dict, Iterable, Optional, Type

import numpy as np

from data import notes as notes_lib

DEFAULT_VELOCITY = 80

_REGISTRY: Dict[str, Type["NoteEncoding"]] = {}


def register_encoding(cls):
    """Class decorator: makes `cls` available to get_encoding under cls.name."""
    if cls.name in _REGISTRY:
        raise ValueError(f"encoding {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_encodings():
    return sorted(_REGISTRY)


def encoding_class(name: str) -> Type["NoteEncoding"]:
    """The registered class of the encoding called `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; choose one of "
                         f"{', '.join(available_encodings())}") from None


def get_encoding(name: str, stats: Optional[dict] = None) -> "NoteEncoding":
    """The encoding called `name`, fitted with `stats` if given."""
    return encoding_class(name)(stats)


def from_config(config: dict) -> "NoteEncoding":
    """Inverse of NoteEncoding.get_config()."""
    return get_encoding(config["name"], config.get("stats"))


class NoteEncoding:
    """Interface. Subclasses set `name` and `num_features` and implement
    `_compute_stats`, `_encode` and `_decode`. Where the width depends on the
    statistics (vocabulary sizes), `num_features` is a property that raises
    ValueError until the encoding is fitted."""

    name: str = ""
    num_features: int = 0
    # First channel of a 12-wide pitch-class one-hot group, if there is one
    # (models.layers.IntervalFeatures reads it).
    pitch_class_start: Optional[int] = None
    # How many leading categorical groups hold the note's absolute pitch, when
    # no other group carries anything of the pitch (None otherwise;
    # bench/context_probe.py hides them).
    pitch_groups: Optional[int] = None
    # Whether categorical group 0 is the pitch, one class per semitone from
    # stats["min_pitch"] up (models.layers.PitchViews folds it).
    semitone_group: bool = False
    # Bump when encode() writes different features for the same notes: the
    # symbolic caches hold encoded segments and are keyed by it.
    version: int = 1

    def __init__(self, stats: Optional[dict] = None):
        self.stats = dict(stats) if stats is not None else None

    def fit(self, note_arrays: Iterable[np.ndarray]) -> dict:
        """Computes statistics from `note_arrays` alone, keeps and returns them."""
        self.stats = self._compute_stats(
            [np.asarray(a, np.float64).reshape(-1, notes_lib.NUM_COLUMNS)
             for a in note_arrays])
        return self.stats

    def encode(self, piece: np.ndarray) -> np.ndarray:
        self._require_stats()
        piece = np.asarray(piece, np.float64).reshape(-1, notes_lib.NUM_COLUMNS)
        return self._encode(piece).astype(np.float32)

    def decode(self, features: np.ndarray) -> np.ndarray:
        self._require_stats()
        features = np.asarray(features, np.float64).reshape(-1, self.num_features)
        return self._decode(features)

    @property
    def categorical_groups(self):
        """Sizes of the one-hot groups that tile the features, in order, or None
        when the features are not one-hot codes (see the categorical objective)."""
        return None

    @property
    def rhythm_values(self):
        """(duration values, onset-gap values) in beats of the duration and
        gap classes, or None when rhythm is not coded as classes."""
        return None

    def get_config(self) -> dict:
        # Some encodings' width depends on their statistics (vocabulary sizes):
        # an unfitted one reports None.
        try:
            num_features = self.num_features
        except ValueError:
            num_features = None
        return {"name": self.name, "num_features": num_features, "stats": self.stats}

    def _require_stats(self):
        if self.stats is None:
            raise ValueError(f"encoding {self.name!r} has no statistics: "
                             "call fit() on the training split or pass stats")

    def _compute_stats(self, note_arrays):
        raise NotImplementedError

    def _encode(self, piece):
        raise NotImplementedError

    def _decode(self, features):
        raise NotImplementedError


class _MinMaxTriples(NoteEncoding):
    """The seed's (pitch feature, duration, delta) triples, each min-max scaled
    to [low, high] with the training split's range. Velocity is not modelled:
    decoding uses the training mean velocity."""

    num_features = 3
    feature_names = ("pitch", "duration", "delta")
    low, high = 0.0, 1.0

    def _pitch_feature(self, midi_pitch):
        raise NotImplementedError

    def _midi_pitch(self, pitch_feature):
        raise NotImplementedError

    def _raw_features(self, piece):
        return np.stack([self._pitch_feature(piece[:, notes_lib.PITCH]),
                         piece[:, notes_lib.DURATION], piece[:, notes_lib.DELTA]], axis=1)

    def _compute_stats(self, note_arrays):
        stacked = (np.concatenate(note_arrays) if note_arrays
                   else notes_lib.empty())
        if len(stacked) == 0:
            raise ValueError(f"cannot fit encoding {self.name!r}: no notes")
        raw = self._raw_features(stacked)
        return {
            "encoding": self.name,
            "features": list(self.feature_names),
            "minimum": [float(v) for v in raw.min(axis=0)],
            "maximum": [float(v) for v in raw.max(axis=0)],
            "mean_velocity": float(stacked[:, notes_lib.VELOCITY].mean()),
            "num_notes": int(len(stacked)),
        }

    def _range(self):
        minimum = np.asarray(self.stats["minimum"], np.float64)
        maximum = np.asarray(self.stats["maximum"], np.float64)
        # A constant feature (e.g. no chords at all) would divide by zero.
        span = np.where(maximum > minimum, maximum - minimum, 1.0)
        return minimum, span

    def _encode(self, piece):
        minimum, span = self._range()
        unit = (self._raw_features(piece) - minimum) / span
        return self.low + unit * (self.high - self.low)

    def _decode(self, features):
        minimum, span = self._range()
        unit = (np.clip(features, self.low, self.high) - self.low) / (self.high - self.low)
        raw = minimum + unit * span
        pitch = np.clip(np.round(self._midi_pitch(raw[:, 0])), 0, 127)
        velocity = self.stats.get("mean_velocity", DEFAULT_VELOCITY)
        velocity = DEFAULT_VELOCITY if velocity is None or math.isnan(velocity) else velocity
        return np.stack([pitch, np.maximum(raw[:, 1], 0.0), np.maximum(raw[:, 2], 0.0),
                         np.full(len(raw), float(round(velocity)))], axis=1)


@register_encoding
class SeedHz(_MinMaxTriples):
    """As published (seed 003): pitch as frequency in Hz, all in [0, 1].
    Linear Hz squeezes the low octaves into a tiny part of the range."""

    name = "seed_hz"
    feature_names = ("frequency_hz", "duration", "delta")
    low, high = 0.0, 1.0

    def _pitch_feature(self, midi_pitch):
        return 440.0 * 2.0 ** ((np.asarray(midi_pitch, np.float64) - 69.0) / 12.0)

    def _midi_pitch(self, pitch_feature):
        hz = np.maximum(np.asarray(pitch_feature, np.float64), 1e-6)
        return 69.0 + 12.0 * np.log2(hz / 440.0)


@register_encoding
class SeedLog(_MinMaxTriples):
    """Pitch as its MIDI number (log frequency: equal steps per semitone),
    duration and delta, each scaled to [-1, 1]."""

    name = "seed_log"
    feature_names = ("midi_pitch", "duration", "delta")
    low, high = -1.0, 1.0

    def _pitch_feature(self, midi_pitch):
        return np.asarray(midi_pitch, np.float64)

    def _midi_pitch(self, pitch_feature):
        return pitch_feature


# --- exactly decodable encodings --------------------------------------------
#
# The seed's min-max scaled triples ask the model for +-0.015 precision: a
# semitone is 0.033 units and common durations sit 0.03 apart (REFERENCE.md
# section 7). The encodings below put pitch, duration and onset gap on a
# finite grid fitted on the training split and decode by argmax, threshold or
# snapping, so ANY real-valued array (noisy, out of range) decodes to valid
# notes and errors smaller than half a grid step vanish.

# Rhythm values are counted on a grid of 1/48 beat (covers 1/16 notes, triplets
# and sextuplets); a value below 1/96 beat rounds to 0 (an onset gap of 0 is a
# chord note; durations are at least one grid step).
RHYTHM_GRID = 48
MAX_DURATION_CLASSES = 16
MAX_DELTA_CLASSES = 16


def _velocity(stats) -> float:
    velocity = stats.get("mean_velocity", DEFAULT_VELOCITY)
    if velocity is None or math.isnan(velocity):
        velocity = DEFAULT_VELOCITY
    return float(round(velocity))


def quantize_rhythm(values) -> np.ndarray:
    """Values (beats) rounded to the 1/RHYTHM_GRID beat grid, at least 0."""
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.round(np.maximum(values, 0.0) * RHYTHM_GRID) / RHYTHM_GRID


def rhythm_vocabulary(values, max_classes: int, include_zero: bool) -> list:
    """The distinct grid values of `values`, most frequent first (ties: the
    smaller value), capped at `max_classes`, returned sorted ascending.

    With include_zero (onset gaps) 0 is always an entry; without it (durations)
    values are at least one grid step, so 0 never is.
    """
    quantized = quantize_rhythm(values)
    if not include_zero:
        quantized = np.maximum(quantized, 1.0 / RHYTHM_GRID)
    grid, counts = np.unique(np.round(quantized * RHYTHM_GRID).astype(np.int64),
                             return_counts=True)
    ranked = [int(g) for g, _ in sorted(zip(grid, counts), key=lambda gc: (-gc[1], gc[0]))]
    if include_zero:
        ranked = [0] + [g for g in ranked if g != 0][:max(max_classes - 1, 0)]
    else:
        ranked = ranked[:max_classes]
    return sorted(g / RHYTHM_GRID for g in ranked)


def vocabulary_index(values, vocabulary) -> np.ndarray:
    """Index into the ascending `vocabulary` of the entry nearest each value.

    Values are first rounded to the 1/RHYTHM_GRID grid. Nearness is measured in
    log2 space (0.375 maps to 0.5, not 0.25, among {0.25, 0.5}); a value that
    rounds to 0 maps to the vocabulary's 0 if it has one (onset gaps: chords),
    else to its smallest entry, and 0 is never the nearest entry of a nonzero
    value (unless the vocabulary holds nothing else).
    """
    vocabulary = np.asarray(vocabulary, np.float64)
    quantized = quantize_rhythm(values).reshape(-1)
    positive = np.flatnonzero(vocabulary > 0)
    index = np.zeros(len(quantized), np.int64)
    if len(positive) == 0 or len(quantized) == 0:
        return index
    is_zero = quantized <= 0
    has_zero = vocabulary[0] <= 0
    safe = np.where(is_zero, vocabulary[positive[0]], quantized)
    distance = np.abs(np.log2(safe)[:, None] - np.log2(vocabulary[positive])[None, :])
    index = positive[np.argmin(distance, axis=1)]
    if has_zero:
        index[is_zero] = 0
    return index


def snap_log2(log_values, vocabulary) -> np.ndarray:
    """The nonzero vocabulary entry nearest each log2 value (0 if none)."""
    vocabulary = np.asarray(vocabulary, np.float64)
    positive = vocabulary[vocabulary > 0]
    log_values = np.nan_to_num(np.asarray(log_values, np.float64).reshape(-1),
                               nan=0.0, posinf=1e6, neginf=-1e6)
    if len(positive) == 0:
        return np.zeros(len(log_values))
    distance = np.abs(log_values[:, None] - np.log2(positive)[None, :])
    return positive[np.argmin(distance, axis=1)]


def _gray(index: np.ndarray) -> np.ndarray:
    return index ^ (index >> 1)


def _from_gray(gray: np.ndarray) -> np.ndarray:
    index = gray.copy()
    shift = gray >> 1
    while shift.any():
        index ^= shift
        shift >>= 1
    return index


def _bits_needed(num_values: int) -> int:
    return max(1, int(math.ceil(math.log2(max(num_values, 1)))))


def _to_bits(index: np.ndarray, num_bits: int) -> np.ndarray:
    """Gray code of each index as num_bits values in {-1, +1}, most significant first."""
    gray = _gray(np.asarray(index, np.int64))
    shifts = np.arange(num_bits - 1, -1, -1)
    return ((gray[:, None] >> shifts[None, :]) & 1) * 2.0 - 1.0


def _from_bits(features: np.ndarray, num_values: int) -> np.ndarray:
    """Inverse of _to_bits: threshold at 0, Gray-decode, clip to num_values - 1."""
    num_bits = features.shape[1]
    bits = (np.nan_to_num(features) > 0).astype(np.int64)
    gray = (bits << np.arange(num_bits - 1, -1, -1)[None, :]).sum(axis=1)
    return np.minimum(_from_gray(gray), num_values - 1)


def _one_hot(index: np.ndarray, size: int) -> np.ndarray:
    """+1 at `index`, -1 elsewhere (the analog-bits scaling of a one-hot vector)."""
    out = -np.ones((len(index), size))
    out[np.arange(len(index)), index] = 1.0
    return out


def _argmax(features: np.ndarray) -> np.ndarray:
    return np.argmax(np.nan_to_num(features, nan=-np.inf), axis=1)


class _RhythmVocabularyEncoding(NoteEncoding):
    """Shared statistics: the training split's pitch range, mean velocity and
    duration / onset-gap vocabularies (see rhythm_vocabulary), all in JSON.

    Velocity is not modelled: decoding uses the training mean velocity.
    """

    max_duration_classes = MAX_DURATION_CLASSES
    max_delta_classes = MAX_DELTA_CLASSES

    def _compute_stats(self, note_arrays):
        stacked = np.concatenate(note_arrays) if note_arrays else notes_lib.empty()
        if len(stacked) == 0:
            raise ValueError(f"cannot fit encoding {self.name!r}: no notes")
        pitch = stacked[:, notes_lib.PITCH]
        durations = stacked[:, notes_lib.DURATION]
        deltas = stacked[:, notes_lib.DELTA]
        duration_vocabulary = rhythm_vocabulary(durations, self.max_duration_classes, False)
        delta_vocabulary = rhythm_vocabulary(deltas, self.max_delta_classes, True)
        stats = {
            "encoding": self.name,
            "min_pitch": int(np.round(pitch.min())),
            "max_pitch": int(np.round(pitch.max())),
            "duration_vocabulary": duration_vocabulary,
            "delta_vocabulary": delta_vocabulary,
            "rhythm_grid": RHYTHM_GRID,
            # Share of the training notes whose value is a vocabulary entry.
            "duration_coverage": _coverage(durations, duration_vocabulary),
            "delta_coverage": _coverage(deltas, delta_vocabulary),
            "mean_velocity": float(stacked[:, notes_lib.VELOCITY].mean()),
            "num_notes": int(len(stacked)),
        }
        stats.update(self._extra_stats(stacked, stats))
        return stats

    def _extra_stats(self, stacked, stats) -> dict:
        return {}

    @property
    def num_features(self) -> int:
        self._require_stats()
        return int(sum(self._group_sizes()))

    def _group_sizes(self):
        raise NotImplementedError

    # Shortcuts to the fitted statistics.
    @property
    def _durations(self) -> np.ndarray:
        return np.asarray(self.stats["duration_vocabulary"], np.float64)

    @property
    def _deltas(self) -> np.ndarray:
        return np.asarray(self.stats["delta_vocabulary"], np.float64)

    @property
    def _num_pitches(self) -> int:
        return int(self.stats["max_pitch"]) - int(self.stats["min_pitch"]) + 1

    @property
    def rhythm_values(self):
        return self._durations.tolist(), self._deltas.tolist()

    def _split(self, features):
        bounds = np.cumsum(self._group_sizes())[:-1]
        return np.split(features, bounds, axis=1)

    def _notes(self, pitch, duration, delta):
        pitch = np.clip(np.round(np.asarray(pitch, np.float64)), 0, 127)
        return np.stack([pitch, duration, delta, np.full(len(pitch), _velocity(self.stats))],
                        axis=1).reshape(-1, notes_lib.NUM_COLUMNS)


def _coverage(values, vocabulary) -> float:
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return 1.0
    vocabulary = np.asarray(vocabulary, np.float64)
    exact = np.isclose(values[:, None], vocabulary[None, :], rtol=0.0, atol=1e-9).any(axis=1)
    return float(exact.mean())


class _OneHotEncoding(_RhythmVocabularyEncoding):
    """Every group a one-hot code in {-1, +1}: the categorical objective reads
    the group sizes, and the duration and onset-gap groups are shared."""

    @property
    def categorical_groups(self):
        self._require_stats()
        return list(self._group_sizes())

    def _rhythm_one_hots(self, piece, delta_index) -> list:
        """The duration and onset-gap groups of `piece` (gap classes given)."""
        duration_index = vocabulary_index(piece[:, notes_lib.DURATION], self._durations)
        return [_one_hot(duration_index, len(self._durations)),
                _one_hot(delta_index, len(self._deltas))]


@register_encoding
class OneHot(_OneHotEncoding):
    """One-hot classes scaled to {-1, +1}, decoded by argmax per group.

    The "analog bits" convention of Chen, Zhang & Hinton 2022 (Analog Bits:
    Generating Discrete Data using Diffusion Models with Self-Conditioning,
    arXiv:2208.04202), applied to one-hot codes, as in their one-hot baseline;
    argmax decoding of a continuous relaxation follows Hoogeboom et al. 2021
    (Argmax Flows and Multinomial Diffusion). Feature layout, in order:

      [0, 12)          pitch class (pitch % 12), one-hot
      next O           octave (pitch // 12) over the training split's octaves
                       min_pitch // 12 .. max_pitch // 12, one-hot
      next D           duration class over stats["duration_vocabulary"], one-hot
      next G           onset-gap class over stats["delta_vocabulary"], one-hot
      [next 12         onehot_intervals only: (pitch - previous pitch) mod 12]
      [next K          chord_size only: notes left in its chord from this note on]

    Hot entries are +1, the others -1 (float32). Encoding maps pitches outside
    the training octaves to the nearest one and rhythm values to the nearest
    vocabulary entry in log2 space (vocabulary_index). Decoding takes the
    argmax of each group; a pitch outside 0..127 is clipped. Bach chorales with
    +-5 transposition: 12 + 6 + 16 + 12 = 46 features.
    """

    name = "onehot"
    pitch_class_start = 0
    pitch_groups = 2  # pitch class, octave

    @property
    def _min_octave(self) -> int:
        return int(self.stats["min_pitch"]) // 12

    @property
    def _num_octaves(self) -> int:
        return int(self.stats["max_pitch"]) // 12 - self._min_octave + 1

    def _group_sizes(self):
        return [12, self._num_octaves, len(self._durations), len(self._deltas),
                *self._extra_group_sizes()]

    def _extra_group_sizes(self) -> list:
        """Widths of the groups after the four above (subclasses)."""
        return []

    def _extra_groups(self, pitch, delta_index) -> list:
        """The one-hot groups whose widths _extra_group_sizes gives."""
        return []

    def _encode(self, piece):
        delta = vocabulary_index(piece[:, notes_lib.DELTA], self._deltas)
        pitch = np.round(piece[:, notes_lib.PITCH]).astype(np.int64)
        pitch_class, octave = self._pitch_codes(pitch, delta)
        groups = [
            _one_hot(pitch_class, 12),
            _one_hot(octave, self._num_octaves),
            *self._rhythm_one_hots(piece, delta),
            *self._extra_groups(pitch, delta),
        ]
        return np.concatenate(groups, axis=1).reshape(len(piece), self.num_features)

    def _decode(self, features):
        # Extra groups, where present, are not read: pitch is absolute.
        pitch_class, octave, duration, delta = self._split(features)[:4]
        delta = _argmax(delta)
        pitch = self._pitches(_argmax(pitch_class), _argmax(octave), delta)
        return self._notes(pitch, self._durations[_argmax(duration)], self._deltas[delta])

    def _pitch_codes(self, pitch, delta_index):
        """(pitch-class index, octave index) of each note."""
        del delta_index  # absolute pitch: the rhythm does not matter
        octave = np.clip(pitch // 12 - self._min_octave, 0, self._num_octaves - 1)
        return pitch % 12, octave

    def _pitches(self, pitch_class, octave, delta_index):
        """Inverse of _pitch_codes: MIDI pitches (not yet clipped to 0..127)."""
        del delta_index
        return 12 * (self._min_octave + octave) + pitch_class


@register_encoding
class ChordIntervals(OneHot):
    """The one-hot layout of `onehot`, with each chord note's pitch written as
    the interval above the previous note.

    A chord note is one whose onset-gap class is 0, other than the segment's
    first note. Notes of a chord are sorted by pitch (data/notes.py), so the
    interval from the previous note is >= 0 semitones. Its pitch-class group then
    holds interval % 12 and its octave group interval // 12, capped at the last
    octave class; every other note keeps its absolute pitch class and octave.
    Decoding reads the gap first, then the pitch, note by note, adding each
    chord note's interval to the decoded pitch before it. The width and
    categorical groups equal onehot's.

    Why: with absolute pitches each note of a chord is chosen from a marginal
    over pitches, and two notes chosen together land a semitone or a tone apart
    (a cluster) far more often than in chorale harmony. As intervals, the
    chord's consonance is one categorical choice per note, whose marginal
    (thirds, fifths, sixths, octaves) is what the model learns first. A chord
    note below the note before it (unsorted input) is written as a unison.
    """

    name = "chord_intervals"
    pitch_class_start = None  # a chord note's group holds an interval
    pitch_groups = None
    # "previous": the interval above the note before; "head": above the
    # chord's first (lowest) note.
    anchor = "previous"

    def _chord_notes(self, delta_index):
        chord = np.asarray(delta_index) == 0
        chord[:1] = False  # the segment's first note has no note before it
        return chord

    def _anchors(self, chord):
        """Index of the note each note's interval is measured from."""
        index = np.arange(len(chord))
        if self.anchor == "previous":
            return np.maximum(index - 1, 0)
        return np.maximum.accumulate(np.where(chord, 0, index))

    def _pitch_codes(self, pitch, delta_index):
        chord = self._chord_notes(delta_index)
        interval = np.maximum(pitch - pitch[self._anchors(chord)], 0)
        pitch_class, octave = super()._pitch_codes(pitch, delta_index)
        return (np.where(chord, interval % 12, pitch_class),
                np.where(chord, np.minimum(interval // 12, self._num_octaves - 1), octave))

    def _pitches(self, pitch_class, octave, delta_index):
        absolute = super()._pitches(pitch_class, octave, delta_index)
        chord = self._chord_notes(delta_index)
        anchors = self._anchors(chord)
        interval = 12 * octave + pitch_class
        pitch = np.clip(np.asarray(absolute, np.int64), 0, 127)
        for i in np.flatnonzero(chord):
            # Each chord note stacks on a decoded (clipped) note before it.
            pitch[i] = min(pitch[anchors[i]] + interval[i], 127)
        return pitch


@register_encoding
class OneHotIntervals(OneHot):
    """The `onehot` layout plus a fifth one-hot group: (pitch - previous
    pitch) mod 12, 0 for the segment's first note. Decoding reads only the
    absolute groups; the interval group is a redundant view of the melody and
    chords for the network to denoise alongside them. 58 features on Bach."""

    name = "onehot_intervals"
    pitch_groups = None  # the interval group carries pitch too

    def _extra_group_sizes(self):
        return [12]

    def _extra_groups(self, pitch, delta_index):
        return [_one_hot(np.diff(pitch, prepend=pitch[:1]) % 12, 12)]


@register_encoding
class ChordHead(ChordIntervals):
    """`chord_intervals` measured from the chord's first (lowest) note instead
    of the note before: no chain of intervals inside a chord, and the span
    above the lowest note bounds the chord's register."""

    name = "chord_head"
    anchor = "head"


MAX_CHORD_SIZE = 8


def chord_runs(delta_index, max_size: int = MAX_CHORD_SIZE):
    """(head flags, notes left in the chord from each note on) of a segment.

    A chord is a head note and the onset-gap-class-0 notes right after it; the
    segment's first note is always a head, and a run longer than max_size is
    cut into chords of max_size notes (their heads keep gap class 0). A head's
    count is its chord's size; the count falls by one per note after it.
    """
    follows = np.asarray(delta_index) == 0
    follows[:1] = False
    index = np.arange(len(follows))
    run = np.cumsum(~follows) - 1
    head = (index - np.flatnonzero(~follows)[run]) % max_size == 0
    chord = np.cumsum(head) - 1
    left = np.bincount(chord)[chord] - (index - np.flatnonzero(head)[chord])
    return head, left.astype(np.int64)


@register_encoding
class ChordSize(OneHot):
    """The `onehot` layout plus a group counting the notes left in the note's
    chord, itself included (1..K, K = the largest chord of the training split,
    at most MAX_CHORD_SIZE; see chord_runs): a chord's first note (its head)
    carries the chord's size, the next one size - 1, and so on down to 1.

    Decoding walks the segment chord by chord: a head's count says how many
    notes its chord has; those after it get onset gap 0 whatever their gap
    groups say, the head keeps its own gap class, and the note after the chord
    is the next head. Followers' counts are not read, but they are why the walk
    resynchronises: should it land inside an intended chord, that note's count
    ends its chord where the network meant (with the size on every note, one
    wrong count shifted every later chord: 9-minute pilot, chord notes 0.77).

    Why: with gap classes alone a chord's size is the number of its notes that
    each chose gap 0, so the sampler counts it through several independent
    choices: the shipped one-hot model writes too few four-note chords
    and too many of 5+ notes, where most of its semitone clusters are. Here
    the size is one categorical choice, whose marginal the network learns
    directly. 54 features on Bach (K = 8).
    """

    name = "chord_size"

    def _compute_stats(self, note_arrays):
        # Per segment, not on _extra_stats' concatenation: there each segment's
        # first note (gap 0) would join the chord that ends the one before.
        stats = super()._compute_stats(note_arrays)
        deltas = stats["delta_vocabulary"]
        stats["max_chord_size"] = max(
            int(chord_runs(vocabulary_index(notes[:, notes_lib.DELTA], deltas))[1].max())
            for notes in note_arrays if len(notes))
        return stats

    def _extra_group_sizes(self):
        return [int(self.stats["max_chord_size"])]

    def _extra_groups(self, pitch, delta_index):
        size = int(self.stats["max_chord_size"])
        return [_one_hot(chord_runs(delta_index, size)[1] - 1, size)]

    def _decode(self, features):
        pitch_class, octave, duration, delta, count = self._split(features)
        count = _argmax(count) + 1
        head = np.zeros(len(features), bool)
        note = 0
        while note < len(features):
            head[note] = True
            note += int(count[note])
        delta = np.where(head, _argmax(delta), 0)
        pitch = self._pitches(_argmax(pitch_class), _argmax(octave), delta)
        return self._notes(pitch, self._durations[_argmax(duration)], self._deltas[delta])


@register_encoding
class OneHotPitch(_OneHotEncoding):
    """`onehot` with the pitch as one class per semitone of the training
    range instead of pitch class and octave. Feature layout, in order:

      [0, P)     pitch - min_pitch, P = max_pitch - min_pitch + 1, one-hot
      next D     duration class over stats["duration_vocabulary"], one-hot
      next G     onset-gap class over stats["delta_vocabulary"], one-hot

    Hot entries are +1, the others -1; decoding takes each group's argmax.
    Pitches outside the training range are clipped to it. Bach chorales with
    +-5 transposition: 63 + 16 + 12 = 91 features.

    Why: the categorical objective predicts each group on its own given x_t,
    so with pitch class and octave every sampling step draws a note's register
    and pitch class as two independent choices (a note the network hesitates
    between B3 and C4 for can move towards B4 or C3, a seventh or ninth away).
    One pitch group makes them one choice. Nothing then ties a pitch class's
    octaves together; models.layers.PitchViews (--pitch_views) does. Better
    intervals at the guide's size; at full size better intervals and register
    but worse key, so not the default: README, "One pitch group".
    """

    name = "onehot_pitch"
    pitch_groups = 1
    semitone_group = True

    def _group_sizes(self):
        return [self._num_pitches, len(self._durations), len(self._deltas)]

    def _encode(self, piece):
        pitch = np.clip(np.round(piece[:, notes_lib.PITCH]).astype(np.int64)
                        - int(self.stats["min_pitch"]), 0, self._num_pitches - 1)
        return np.concatenate([
            _one_hot(pitch, self._num_pitches),
            *self._rhythm_one_hots(piece, vocabulary_index(piece[:, notes_lib.DELTA],
                                                           self._deltas)),
        ], axis=1).reshape(len(piece), self.num_features)

    def _decode(self, features):
        pitch, duration, delta = self._split(features)
        return self._notes(int(self.stats["min_pitch"]) + _argmax(pitch),
                           self._durations[_argmax(duration)], self._deltas[_argmax(delta)])


@register_encoding
class AnalogBits(_RhythmVocabularyEncoding):
    """Analog bits (Chen, Zhang & Hinton 2022, arXiv:2208.04202): each discrete
    index is written as binary digits in {-1, +1}, decoded by thresholding at 0.

    Indices are written in reflected binary Gray code (index ^ (index >> 1)),
    most significant bit first, so neighbouring pitches / neighbouring
    vocabulary entries differ in exactly one bit. Feature layout, in order:

      [0, P)     pitch index (pitch - min_pitch), P = ceil(log2(pitch range)) bits
      next B     duration class (index into stats["duration_vocabulary"], ascending)
      next C     onset-gap class (index into stats["delta_vocabulary"], ascending)

    Each group has at least 1 bit. Encoding clips pitches to the training range
    and maps rhythm values to the nearest vocabulary entry in log2 space;
    decoding clips an index past the end of its range to the last entry. Bach
    chorales with +-5 transposition: 6 + 4 + 4 = 14 features.
    """

    name = "analog_bits"

    def _group_sizes(self):
        return [_bits_needed(self._num_pitches), _bits_needed(len(self._durations)),
                _bits_needed(len(self._deltas))]

    def _encode(self, piece):
        pitch_bits, duration_bits, delta_bits = self._group_sizes()
        pitch_index = np.clip(np.round(piece[:, notes_lib.PITCH]).astype(np.int64)
                              - int(self.stats["min_pitch"]), 0, self._num_pitches - 1)
        return np.concatenate([
            _to_bits(pitch_index, pitch_bits),
            _to_bits(vocabulary_index(piece[:, notes_lib.DURATION], self._durations),
                     duration_bits),
            _to_bits(vocabulary_index(piece[:, notes_lib.DELTA], self._deltas), delta_bits),
        ], axis=1).reshape(len(piece), self.num_features)

    def _decode(self, features):
        pitch, duration, delta = self._split(features)
        return self._notes(int(self.stats["min_pitch"]) + _from_bits(pitch, self._num_pitches),
                           self._durations[_from_bits(duration, len(self._durations))],
                           self._deltas[_from_bits(delta, len(self._deltas))])


def _robust_center_scale(values, minimum_scale: float):
    """Center and half-width of the 1st..99th percentile range of `values`
    (so the central 98% of the training values lie in [-1, 1]); a half-width
    below `minimum_scale` is raised to it."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return 0.0, float(minimum_scale)
    low, high = np.percentile(values, [1.0, 99.0])
    return float((low + high) / 2.0), float(max((high - low) / 2.0, minimum_scale))


@register_encoding
class LogGrid(_RhythmVocabularyEncoding):
    """Continuous features on robust scales, snapped to the grid on decoding.

    Log-time features as in event-based music encodings (e.g. the log-spaced
    time shifts of Oore et al. 2018, This Time with Feeling), with scales taken
    from the training split's 1st..99th percentiles instead of min-max of the
    extremes, so one 8-beat fermata does not squeeze all common values together.
    Feature layout, in order:

      0  pitch:    (pitch - pitch_center) / pitch_scale
      1  duration: (log2(duration) - log_duration_center) / log_duration_scale
      2  chord:    +1 if the onset gap is 0 (a chord note), -1 otherwise
      3  gap:      (log2(delta) - log_delta_center) / log_delta_scale; a chord
                   note (delta 0) uses the smallest nonzero vocabulary entry

    Durations and gaps are first mapped to their vocabulary entries (nearest in
    log2 space), centers / scales are those of the mapped training values.
    Decoding: the nearest integer pitch (clipped to 0..127); the duration
    vocabulary entry nearest in log2 space; delta 0 when chord > 0, else the
    nonzero gap vocabulary entry nearest in log2 space. Always 4 features.
    """

    name = "log_grid"

    def _group_sizes(self):
        return [1, 1, 1, 1]

    def _smallest_gap(self) -> float:
        positive = self._deltas[self._deltas > 0]
        return float(positive[0]) if len(positive) else 1.0 / RHYTHM_GRID

    def _extra_stats(self, stacked, stats):
        durations = np.asarray(stats["duration_vocabulary"], np.float64)[
            vocabulary_index(stacked[:, notes_lib.DURATION], stats["duration_vocabulary"])]
        deltas = np.asarray(stats["delta_vocabulary"], np.float64)[
            vocabulary_index(stacked[:, notes_lib.DELTA], stats["delta_vocabulary"])]
        pitch_center, pitch_scale = _robust_center_scale(stacked[:, notes_lib.PITCH], 1.0)
        duration_center, duration_scale = _robust_center_scale(np.log2(durations), 1.0)
        delta_center, delta_scale = _robust_center_scale(np.log2(deltas[deltas > 0]), 1.0)
        return {"pitch_center": pitch_center, "pitch_scale": pitch_scale,
                "log_duration_center": duration_center, "log_duration_scale": duration_scale,
                "log_delta_center": delta_center, "log_delta_scale": delta_scale}

    def _encode(self, piece):
        s = self.stats
        duration = self._durations[vocabulary_index(piece[:, notes_lib.DURATION],
                                                    self._durations)]
        delta = self._deltas[vocabulary_index(piece[:, notes_lib.DELTA], self._deltas)]
        chord = delta <= 0
        gap = np.where(chord, self._smallest_gap(), delta)
        return np.stack([
            (np.round(piece[:, notes_lib.PITCH]) - s["pitch_center"]) / s["pitch_scale"],
            (np.log2(duration) - s["log_duration_center"]) / s["log_duration_scale"],
            np.where(chord, 1.0, -1.0),
            (np.log2(gap) - s["log_delta_center"]) / s["log_delta_scale"],
        ], axis=1).reshape(len(piece), 4)

    def _decode(self, features):
        s = self.stats
        features = np.nan_to_num(features, nan=0.0, posinf=1e6, neginf=-1e6)
        pitch = s["pitch_center"] + features[:, 0] * s["pitch_scale"]
        duration = snap_log2(s["log_duration_center"] + features[:, 1] * s["log_duration_scale"],
                             self._durations)
        gap = snap_log2(s["log_delta_center"] + features[:, 3] * s["log_delta_scale"],
                        self._deltas)
        return self._notes(pitch, duration, np.where(features[:, 2] > 0, 0.0, gap))


# Registers the waveform domain's "encoding" (a fitted gain) for from_config.
from data import wave_encoding  # noqa: E402,F401  pylint: disable=wrong-import-position
