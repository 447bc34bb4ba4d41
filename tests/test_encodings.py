"""Tests for data/encodings.py: the seed encodings and the registry."""

import json

import numpy as np
import pytest

from data import encodings
from data import notes as notes_lib


def _random_piece(rng, length=64, low=36, high=88):
    pitches = rng.integers(low, high + 1, size=length)
    durations = rng.choice([0.25, 0.5, 1.0, 1.5, 2.0, 4.0], size=length)
    starts = np.cumsum(rng.choice([0.0, 0.0, 0.5, 1.0], size=length))
    velocities = rng.integers(40, 110, size=length)
    return notes_lib.from_onsets(pitches, starts, durations, velocities)


@pytest.fixture
def pieces():
    rng = np.random.default_rng(7)
    return [_random_piece(rng) for _ in range(5)]


@pytest.mark.parametrize("name", ["seed_hz", "seed_log"])
def test_round_trip_recovers_pitch_exactly_and_times_to_float_precision(name, pieces):
    encoding = encodings.get_encoding(name)
    encoding.fit(pieces)
    for piece in pieces:
        features = encoding.encode(piece)
        assert features.dtype == np.float32
        assert features.shape == (len(piece), encoding.num_features)
        decoded = encoding.decode(features)
        np.testing.assert_array_equal(decoded[:, notes_lib.PITCH], piece[:, notes_lib.PITCH])
        np.testing.assert_allclose(decoded[:, notes_lib.DURATION],
                                   piece[:, notes_lib.DURATION], atol=1e-5)
        np.testing.assert_allclose(decoded[:, notes_lib.DELTA],
                                   piece[:, notes_lib.DELTA], atol=1e-5)


@pytest.mark.parametrize("name,low,high", [("seed_hz", 0.0, 1.0), ("seed_log", -1.0, 1.0)])
def test_training_data_fills_the_target_range(name, low, high, pieces):
    encoding = encodings.get_encoding(name)
    encoding.fit(pieces)
    features = np.concatenate([encoding.encode(p) for p in pieces])
    np.testing.assert_allclose(features.min(axis=0), low, atol=1e-6)
    np.testing.assert_allclose(features.max(axis=0), high, atol=1e-6)


def test_seed_hz_scales_frequency_not_midi_number():
    piece = notes_lib.from_onsets([57, 69, 81], [0, 1, 2], [1, 1, 1], [80, 80, 80])
    encoding = encodings.get_encoding("seed_hz")
    encoding.fit([piece])
    assert encoding.stats["minimum"][0] == pytest.approx(220.0)
    assert encoding.stats["maximum"][0] == pytest.approx(880.0)
    # A4 = 440 Hz is a third of the way from 220 to 880 Hz (linear in Hz).
    assert encoding.encode(piece)[1, 0] == pytest.approx(1.0 / 3.0, abs=1e-6)


def test_stats_come_only_from_what_fit_is_given(pieces):
    encoding = encodings.get_encoding("seed_log")
    stats = encoding.fit(pieces[:2])
    stacked = np.concatenate(pieces[:2])
    assert stats["minimum"][0] == stacked[:, notes_lib.PITCH].min()
    assert stats["maximum"][1] == stacked[:, notes_lib.DURATION].max()
    assert stats["mean_velocity"] == pytest.approx(stacked[:, notes_lib.VELOCITY].mean())
    assert stats["num_notes"] == len(stacked)
    json.dumps(stats)  # must be JSON-serialisable to ship with weights


def test_decode_clips_out_of_range_and_uses_mean_velocity(pieces):
    encoding = encodings.get_encoding("seed_log")
    stats = encoding.fit(pieces)
    wild = np.array([[5.0, -3.0, -2.0], [-4.0, 9.0, 1.5]], np.float32)
    decoded = encoding.decode(wild)
    assert decoded[0, notes_lib.PITCH] == stats["maximum"][0]
    assert decoded[1, notes_lib.PITCH] == stats["minimum"][0]
    assert (decoded[:, notes_lib.DURATION] >= 0).all() and (decoded[:, notes_lib.DELTA] >= 0).all()
    assert decoded[0, notes_lib.DURATION] == stats["minimum"][1]
    assert (decoded[:, notes_lib.VELOCITY] == round(stats["mean_velocity"])).all()


def test_constant_feature_does_not_divide_by_zero():
    piece = notes_lib.from_onsets([60, 64, 67], [0, 0, 0], [1, 1, 1], [80, 80, 80])
    encoding = encodings.get_encoding("seed_log")
    encoding.fit([piece])
    features = encoding.encode(piece)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(encoding.decode(features)[:, :3], piece[:, :3])


def test_config_round_trip_and_registry(pieces):
    encoding = encodings.get_encoding("seed_hz")
    encoding.fit(pieces)
    config = json.loads(json.dumps(encoding.get_config()))
    restored = encodings.from_config(config)
    assert restored.name == "seed_hz" and restored.num_features == 3
    np.testing.assert_array_equal(restored.encode(pieces[0]), encoding.encode(pieces[0]))
    assert {"seed_hz", "seed_log"} <= set(encodings.available_encodings())
    with pytest.raises(ValueError, match="no_such_encoding"):
        encodings.get_encoding("no_such_encoding")


def test_unfitted_encoding_refuses_to_encode(pieces):
    with pytest.raises(ValueError, match="no statistics"):
        encodings.get_encoding("seed_log").encode(pieces[0])


def test_empty_piece_encodes_to_empty_features(pieces):
    encoding = encodings.get_encoding("seed_log", encodings.get_encoding("seed_log").fit(pieces))
    assert encoding.encode(notes_lib.empty()).shape == (0, 3)
    assert encoding.decode(np.zeros((0, 3))).shape == (0, 4)
