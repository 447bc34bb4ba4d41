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


def get_encoding(name: str, stats: Optional[dict] = None) -> "NoteEncoding":
    """The encoding called `name`, fitted with `stats` if given."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; choose one of "
                         f"{', '.join(available_encodings())}") from None
    return cls(stats)


def from_config(config: dict) -> "NoteEncoding":
    """Inverse of NoteEncoding.get_config()."""
    return get_encoding(config["name"], config.get("stats"))


class NoteEncoding:
    """Interface. Subclasses set `name` and `num_features` and implement
    `_compute_stats`, `_encode` and `_decode`."""

    name: str = ""
    num_features: int = 0

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

    def get_config(self) -> dict:
        return {"name": self.name, "num_features": self.num_features, "stats": self.stats}

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
