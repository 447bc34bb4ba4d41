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


# --- exactly decodable encodings: onehot, analog_bits, log_grid ---------------

DISCRETE = ["onehot", "onehot_intervals", "chord_intervals", "chord_head", "chord_size",
            "onehot_pitch", "analog_bits", "log_grid"]
BACH_DURATIONS = [1.0, 0.5, 2.0, 0.25, 1.5, 3.0, 4.0, 0.75, 0.125, 1.75]
BACH_GAPS = [0.5, 1.0, 0.25, 2.0, 3.0, 0.125]


def _chorale_like_piece(rng, length=96, low=38, high=84):
    """Bach-chorale-like notes: about 2/3 chord notes (gap 0), chorale durations."""
    gaps = np.where(rng.random(length) < 0.67, 0.0,
                    rng.choice(BACH_GAPS, size=length, p=[.55, .2, .15, .05, .03, .02]))
    gaps[0] = 0.0
    durations = rng.choice(BACH_DURATIONS, size=length,
                           p=[.45, .3, .07, .06, .04, .03, .02, .01, .01, .01])
    return notes_lib.from_onsets(rng.integers(low, high + 1, size=length), np.cumsum(gaps),
                                 durations, rng.integers(60, 100, size=length))


@pytest.fixture
def chorales():
    rng = np.random.default_rng(11)
    return [_chorale_like_piece(rng) for _ in range(6)]


def _fitted(name, pieces):
    encoding = encodings.get_encoding(name)
    encoding.fit(pieces)
    return encoding


def _assert_valid_notes(decoded, encoding):
    pitch = decoded[:, notes_lib.PITCH]
    assert np.isfinite(decoded).all()
    assert ((pitch >= 0) & (pitch <= 127)).all() and (pitch == np.round(pitch)).all()
    durations = decoded[:, notes_lib.DURATION]
    deltas = decoded[:, notes_lib.DELTA]
    assert (durations > 0).all() and (deltas >= 0).all()
    assert np.isin(durations, encoding.stats["duration_vocabulary"]).all()
    assert np.isin(deltas, encoding.stats["delta_vocabulary"]).all()
    assert (decoded[:, notes_lib.VELOCITY] == round(encoding.stats["mean_velocity"])).all()


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_round_trip_is_exact(name, chorales):
    encoding = _fitted(name, chorales)
    for piece in chorales:
        features = encoding.encode(piece)
        assert features.dtype == np.float32
        assert features.shape == (len(piece), encoding.num_features)
        decoded = encoding.decode(features)
        # Exact equality: pitches, vocabulary durations and gaps, chords.
        np.testing.assert_array_equal(decoded[:, :3], piece[:, :3])
        assert ((decoded[:, notes_lib.DELTA] == 0) == (piece[:, notes_lib.DELTA] == 0)).all()
        _assert_valid_notes(decoded, encoding)


def test_vocabularies_are_sorted_capped_and_hold_zero_gap(chorales):
    stats = _fitted("onehot", chorales).stats
    assert stats["duration_vocabulary"] == sorted(BACH_DURATIONS)
    assert stats["delta_vocabulary"] == [0.0] + sorted(BACH_GAPS)
    assert stats["min_pitch"] == min(p[:, 0].min() for p in chorales)
    assert stats["max_pitch"] == max(p[:, 0].max() for p in chorales)
    assert stats["duration_coverage"] == 1.0 and stats["delta_coverage"] == 1.0

    # 30 distinct durations, frequency falling with k: the 16 most frequent stay.
    durations = np.concatenate([np.full(40 - k, (k + 1) / 8.0) for k in range(30)])
    gaps = np.concatenate([np.full(40 - k, (k + 1) / 8.0) for k in range(30)])
    piece = np.stack([np.full(len(durations), 60.0), durations, gaps,
                      np.full(len(durations), 80.0)], axis=1)
    stats = _fitted("onehot", [piece]).stats
    assert stats["duration_vocabulary"] == [(k + 1) / 8.0 for k in range(16)]
    # No gap is 0 here, yet 0 is an entry, taking one of the 16 places.
    assert stats["delta_vocabulary"] == [0.0] + [(k + 1) / 8.0 for k in range(15)]
    assert stats["duration_coverage"] < 1.0


def test_rhythm_values_map_to_the_nearest_entry_in_log_space():
    vocabulary = [0.25, 0.5, 1.0, 2.0, 4.0]
    values = [0.25, 0.375, 0.1, 1.45, 3.0, 20.0, 0.0, -1.0]
    # 1.45 is nearer 1.0 linearly but nearer 2.0 in log2 space; 3.0 -> 4.0 too.
    expected = [0.25, 0.5, 0.25, 2.0, 4.0, 4.0, 0.25, 0.25]
    index = encodings.vocabulary_index(values, vocabulary)
    np.testing.assert_array_equal(np.asarray(vocabulary)[index], expected)
    gaps = [0.0, 0.1, 0.005, 0.75, 1.5, 3.0]
    # Only (near) 0 maps to 0; the smallest nonzero gap takes 0.1.
    np.testing.assert_array_equal(
        np.asarray([0.0, 0.25, 1.0])[encodings.vocabulary_index(gaps, [0.0, 0.25, 1.0])],
        [0.0, 0.25, 0.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("name", DISCRETE)
def test_out_of_vocabulary_rhythm_decodes_to_nearest_in_log_space(name, chorales):
    encoding = _fitted(name, chorales)  # durations up to 4, gaps 1/8 .. 3
    piece = np.array([[60, 0.375, 0.0, 80], [62, 5.0, 0.1, 80], [64, 1.4, 1.45, 80],
                      [65, 0.01, 0.004, 80], [67, 2.6, 40.0, 80]], np.float64)
    decoded = encoding.decode(encoding.encode(piece))
    np.testing.assert_array_equal(decoded[:, notes_lib.PITCH], piece[:, notes_lib.PITCH])
    # log2(0.375) = -1.415: 0.415 from log2(0.5), 0.585 from log2(0.25); gap 1.45
    # is nearer 1.0 linearly but nearer 2.0 in log2 space.
    np.testing.assert_array_equal(decoded[:, notes_lib.DURATION], [0.5, 4.0, 1.5, 0.125, 3.0])
    np.testing.assert_array_equal(decoded[:, notes_lib.DELTA], [0.0, 0.125, 2.0, 0.0, 3.0])


@pytest.mark.parametrize("name", ["onehot", "onehot_intervals", "chord_intervals", "chord_head",
                                  "chord_size", "onehot_pitch", "analog_bits"])
def test_features_are_plus_minus_one(name, chorales):
    encoding = _fitted(name, chorales)
    features = np.concatenate([encoding.encode(p) for p in chorales])
    assert set(np.unique(features)) == {-1.0, 1.0}
    if encoding.categorical_groups:  # one-hot layouts: one +1 per group
        bounds = np.cumsum(encoding.categorical_groups)[:-1]
        for group in np.split(features, bounds, axis=1):
            assert ((group > 0).sum(axis=1) == 1).all()


def test_onehot_layout_has_one_hot_entry_per_group(chorales):
    encoding = _fitted("onehot", chorales)
    stats = encoding.stats
    octaves = stats["max_pitch"] // 12 - stats["min_pitch"] // 12 + 1
    sizes = [12, octaves, len(stats["duration_vocabulary"]), len(stats["delta_vocabulary"])]
    assert encoding.num_features == sum(sizes)
    features = encoding.encode(chorales[0])
    start = 0
    for size in sizes:
        assert ((features[:, start:start + size] > 0).sum(axis=1) == 1).all()
        start += size
    piece = chorales[0]
    pitch_class = np.argmax(features[:, :12], axis=1)
    np.testing.assert_array_equal(pitch_class, piece[:, notes_lib.PITCH] % 12)


def test_onehot_clips_decoded_pitch_to_midi_range():
    piece = np.array([[0, 1.0, 0.0, 80], [127, 1.0, 1.0, 80]], np.float64)
    encoding = _fitted("onehot", [piece])  # octaves 0..10
    features = -np.ones((1, encoding.num_features))
    features[0, 11] = 1.0  # pitch class B
    features[0, 12 + 10] = 1.0  # octave 10: B would be MIDI 131
    assert encoding.decode(features)[0, notes_lib.PITCH] == 127


def test_onehot_pitch_has_one_class_per_semitone_of_the_training_range(chorales):
    encoding = _fitted("onehot_pitch", chorales)
    stats = encoding.stats
    semitones = stats["max_pitch"] - stats["min_pitch"] + 1
    assert encoding.categorical_groups == [semitones, len(stats["duration_vocabulary"]),
                                           len(stats["delta_vocabulary"])]
    piece = chorales[0]
    pitch_index = _groups(encoding, encoding.encode(piece))[0]
    np.testing.assert_array_equal(pitch_index, piece[:, notes_lib.PITCH] - stats["min_pitch"])
    # B3 and C4, a semitone apart, are neighbouring classes of one group
    # (with onehot they differ in both the pitch-class and the octave group).
    low = stats["min_pitch"]
    step = np.array([[59, 1.0, 0.0, 80], [60, 1.0, 1.0, 80]], np.float64)
    np.testing.assert_array_equal(_groups(encoding, encoding.encode(step))[0],
                                  np.array([59, 60]) - low)
    # Pitches outside the training range encode as its ends.
    outside = np.array([[low - 5, 1.0, 0.0, 80], [stats["max_pitch"] + 7, 1.0, 1.0, 80]])
    np.testing.assert_array_equal(encoding.decode(encoding.encode(outside))[:, 0],
                                  [low, stats["max_pitch"]])


@pytest.mark.parametrize("name", DISCRETE)
def test_pitch_groups_alone_decide_the_decoded_pitch(name, chorales):
    encoding = _fitted(name, chorales)
    if encoding.pitch_groups is None:
        assert name in ("onehot_intervals", "chord_intervals", "chord_head", "analog_bits",
                        "log_grid")
        return
    width = sum(encoding.categorical_groups[:encoding.pitch_groups])
    first, second = (encoding.encode(piece[:90]) for piece in chorales[:2])
    mixed = np.concatenate([first[:, :width], second[:, width:]], axis=1)
    np.testing.assert_array_equal(encoding.decode(mixed)[:, notes_lib.PITCH],
                                  chorales[0][:90, notes_lib.PITCH])
    np.testing.assert_array_equal(encoding.decode(mixed)[:, notes_lib.DURATION],
                                  chorales[1][:90, notes_lib.DURATION])


def _chord_piece():
    # C major (C3 E3 G3 C4) on beat 0, then D minor (D3 F3 A3 D4) on beat 1.
    pitches = [48, 52, 55, 60, 50, 53, 57, 62]
    starts = [0, 0, 0, 0, 1, 1, 1, 1]
    return notes_lib.from_onsets(pitches, starts, np.ones(8), np.full(8, 80))


def _groups(encoding, features):
    bounds = np.cumsum(encoding.categorical_groups)[:-1]
    return [np.argmax(group, axis=1) for group in np.split(features, bounds, axis=1)]


def test_chord_intervals_write_chord_notes_as_intervals_above_the_previous_note():
    piece = _chord_piece()
    encoding = _fitted("chord_intervals", [piece])
    onehot = _fitted("onehot", [piece])
    assert encoding.categorical_groups == onehot.categorical_groups
    pitch_class, octave, _, delta = _groups(encoding, encoding.encode(piece))
    np.testing.assert_array_equal(delta != 0, [False, False, False, False, True, False, False, False])
    # The segment's first note and the first note of the second chord are absolute
    # (C, D in the octave of C3); the others are the intervals 4, 3, 5, 3, 4, 5.
    np.testing.assert_array_equal(pitch_class, [0, 4, 3, 5, 2, 3, 4, 5])
    np.testing.assert_array_equal(octave, [0, 0, 0, 0, 0, 0, 0, 0])
    # Transposing the chords moves only the absolute notes.
    moved = piece.copy()
    moved[:, notes_lib.PITCH] += 13
    moved_class, moved_octave, _, _ = _groups(encoding, encoding.encode(moved))
    np.testing.assert_array_equal(moved_class, [1, 4, 3, 5, 3, 3, 4, 5])
    np.testing.assert_array_equal(moved_octave, [1, 0, 0, 0, 1, 0, 0, 0])
    wide = notes_lib.from_onsets([40, 71], [0, 0], [1, 1], [80, 80])  # 31 semitones
    wide_class, wide_octave, _, _ = _groups(encoding, encoding.encode(wide))
    # 31 = 7 + 2 * 12, but this fit has 2 octave classes: capped at the last.
    assert encoding.categorical_groups[1] == 2
    assert (wide_class[1], wide_octave[1]) == (7, 1)
    roomy = _fitted("chord_intervals", [piece, wide])  # octaves 3..5
    assert tuple(x[1] for x in _groups(roomy, roomy.encode(wide))[:2]) == (7, 2)


def test_chord_head_measures_chord_notes_from_the_lowest_note():
    piece = _chord_piece()
    encoding = _fitted("chord_head", [piece])
    pitch_class, octave, _, _ = _groups(encoding, encoding.encode(piece))
    np.testing.assert_array_equal(12 * octave + pitch_class, [0, 4, 7, 12, 2, 3, 7, 12])
    np.testing.assert_array_equal(encoding.decode(encoding.encode(piece))[:, 0],
                                  piece[:, notes_lib.PITCH])


def test_onehot_intervals_add_a_redundant_interval_group_that_decoding_ignores():
    piece = _chord_piece()
    encoding = _fitted("onehot_intervals", [piece])
    onehot = _fitted("onehot", [piece])
    assert encoding.categorical_groups == onehot.categorical_groups + [12]
    features = encoding.encode(piece)
    np.testing.assert_array_equal(features[:, :-12], onehot.encode(piece))
    # (pitch - previous pitch) mod 12; the first note has none: 0. D3 after C4 is -10.
    np.testing.assert_array_equal(np.argmax(features[:, -12:], axis=1), [0, 4, 3, 5, 2, 3, 4, 5])
    features[:, -12:] = np.roll(features[:, -12:], 5, axis=1)  # contradict every interval
    np.testing.assert_array_equal(encoding.decode(features), onehot.decode(onehot.encode(piece)))


def test_chord_runs_cut_chords_at_nonzero_gaps_and_at_the_size_cap():
    # Gap classes: a segment starting inside a chord, a 4-note chord, a single
    # note, then an 11-note run cut into chords of 8 and 3 (the 3's head keeps 0).
    delta_index = np.array([0, 0, 3, 0, 0, 0, 2] + [1] + [0] * 10)
    head, count = encodings.chord_runs(delta_index, max_size=8)
    np.testing.assert_array_equal(np.flatnonzero(head), [0, 2, 6, 7, 15])
    np.testing.assert_array_equal(count, [2, 1, 4, 3, 2, 1, 1, 8, 7, 6, 5, 4, 3, 2, 1, 3, 2, 1])
    assert encodings.chord_runs(np.zeros(0, np.int64))[1].shape == (0,)


def test_chord_size_cuts_chords_larger_than_the_training_split_s_and_round_trips():
    encoding = _fitted("chord_size", [_chord_piece()])  # chords of 4: K = 4
    pitches = np.arange(48, 58)  # one 10-note chord, then a note a beat later
    piece = notes_lib.from_onsets(np.r_[pitches, 60], np.r_[np.zeros(10), 1.0],
                                  np.ones(11), np.full(11, 80))
    features = encoding.encode(piece)
    np.testing.assert_array_equal(_groups(encoding, features)[-1] + 1,
                                  [4, 3, 2, 1, 4, 3, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(encoding.decode(features)[:, :3], piece[:, :3])


def test_chord_size_counts_down_each_chord_and_decodes_from_the_heads():
    piece = _chord_piece()
    encoding = _fitted("chord_size", [piece])
    onehot = _fitted("onehot", [piece])
    assert encoding.stats["max_chord_size"] == 4
    assert encoding.categorical_groups == onehot.categorical_groups + [4]
    features = encoding.encode(piece)
    np.testing.assert_array_equal(features[:, :-4], onehot.encode(piece))
    np.testing.assert_array_equal(_groups(encoding, features)[-1] + 1, [4, 3, 2, 1] * 2)
    gap_start = sum(encoding.categorical_groups[:3])
    gap_end = gap_start + encoding.categorical_groups[3]
    # Followers' gaps and counts are not read: the heads' counts fix the chords.
    noisy = features.copy()
    noisy[[1, 6], gap_start:gap_end] = np.roll(noisy[[1, 6], gap_start:gap_end], 1, axis=1)
    noisy[[2, 7], gap_end:] = np.roll(noisy[[2, 7], gap_end:], 2, axis=1)
    np.testing.assert_array_equal(encoding.decode(noisy), encoding.decode(features))
    # A first chord of 1 note: E3 becomes a head whose gap class (set to 1
    # beat here) is read, and its count (3) ends its chord where the encoded
    # one ended, so D3 still heads the second chord.
    features[0, gap_end:] = encodings._one_hot(np.array([0]), 4)
    features[1, gap_start:gap_end] = encodings._one_hot(np.array([1]), 2)
    decoded = encoding.decode(features)
    np.testing.assert_array_equal(decoded[:, notes_lib.DELTA], [0, 1, 0, 0, 1, 0, 0, 0])


def test_chord_intervals_decode_the_gap_before_the_pitch():
    piece = _chord_piece()
    encoding = _fitted("chord_intervals", [piece])
    features = encoding.encode(piece)
    groups = encoding.categorical_groups
    gap_start = sum(groups[:3])
    # Turn the second chord's first note (absolute D3) into a chord note: its
    # codes now read as 2 semitones + 0 octaves above C4, the note before it,
    # and the rest of that chord stacks on it.
    features[4, gap_start:] = -1.0
    features[4, gap_start] = 1.0
    decoded = encoding.decode(features)[:, notes_lib.PITCH]
    np.testing.assert_array_equal(decoded, [48, 52, 55, 60, 62, 65, 69, 74])
    # And the other way: G3 (3 above E3) given a nonzero gap reads as the
    # absolute pitch class 3 in the octave of C3 (D#3), and C4 stacks on it.
    features = encoding.encode(piece)
    features[2, gap_start:] = -1.0
    features[2, gap_start + 1] = 1.0
    np.testing.assert_array_equal(encoding.decode(features)[:4, notes_lib.PITCH],
                                  [48, 52, 51, 56])


def test_chord_intervals_clip_a_stack_at_the_top_of_the_midi_range():
    piece = notes_lib.from_onsets([100, 120, 127], [0, 0, 0], [1, 1, 1], [80, 80, 80])
    encoding = _fitted("chord_intervals", [piece])
    features = encoding.encode(piece)
    features[1, 12:12 + encoding.categorical_groups[1]] = -1.0
    features[1, 12 + encoding.categorical_groups[1] - 1] = 1.0  # the widest interval
    np.testing.assert_array_equal(encoding.decode(features)[:, notes_lib.PITCH], [100, 127, 127])


def test_chord_intervals_write_an_unsorted_chord_note_as_a_unison():
    piece = np.array([[60, 1.0, 0.0, 80], [64, 1.0, 0.0, 80], [55, 1.0, 0.0, 80]])
    encoding = _fitted("chord_intervals", [piece])
    np.testing.assert_array_equal(encoding.decode(encoding.encode(piece))[:, 0], [60, 64, 64])


def test_analog_bits_use_gray_code(chorales):
    encoding = _fitted("analog_bits", chorales)
    low, high = encoding.stats["min_pitch"], encoding.stats["max_pitch"]
    pitch_bits = int(np.ceil(np.log2(high - low + 1)))
    ladder = np.stack([np.arange(low, high + 1, dtype=np.float64), np.ones(high - low + 1),
                       np.zeros(high - low + 1), np.full(high - low + 1, 80.0)], axis=1)
    bits = encoding.encode(ladder)[:, :pitch_bits]
    # Neighbouring pitches differ in exactly one bit.
    assert ((bits[1:] != bits[:-1]).sum(axis=1) == 1).all()
    assert encoding.num_features == pitch_bits + int(np.ceil(np.log2(10))) + 3
    np.testing.assert_array_equal(encoding.decode(encoding.encode(ladder))[:, 0], ladder[:, 0])


@pytest.mark.parametrize("name", ["onehot", "onehot_intervals", "chord_intervals", "chord_head"])
def test_onehot_survives_gaussian_noise_exactly(name, chorales):
    encoding = _fitted(name, chorales)
    rng = np.random.default_rng(0)
    for piece in chorales:
        features = encoding.encode(piece)
        noisy = features + rng.normal(0.0, 0.3, features.shape)
        np.testing.assert_array_equal(encoding.decode(noisy)[:, :3], piece[:, :3])


def test_analog_bits_survive_gaussian_noise(chorales):
    encoding = _fitted("analog_bits", chorales)
    rng = np.random.default_rng(0)
    piece = np.concatenate(chorales)
    features = encoding.encode(piece)
    noisy = features + rng.normal(0.0, 0.3, features.shape)
    exact = (encoding.decode(noisy)[:, :3] == piece[:, :3]).all(axis=1)
    assert exact.mean() >= 0.99


def test_log_grid_survives_noise_below_half_a_grid_step(chorales):
    encoding = _fitted("log_grid", chorales)
    s = encoding.stats
    durations = np.log2(s["duration_vocabulary"])
    gaps = np.log2(s["delta_vocabulary"][1:])
    half_steps = np.array([0.5 / s["pitch_scale"],
                           np.diff(durations).min() / 2 / s["log_duration_scale"],
                           0.99, np.diff(gaps).min() / 2 / s["log_delta_scale"]])
    rng = np.random.default_rng(0)
    for piece in chorales:
        features = encoding.encode(piece)
        noisy = features + rng.uniform(-0.9, 0.9, features.shape) * half_steps
        np.testing.assert_array_equal(encoding.decode(noisy)[:, :3], piece[:, :3])


def test_log_grid_chord_flag_convention(chorales):
    encoding = _fitted("log_grid", chorales)
    piece = chorales[0]
    features = encoding.encode(piece)
    chord = piece[:, notes_lib.DELTA] == 0
    np.testing.assert_array_equal(features[:, 2], np.where(chord, 1.0, -1.0))
    # A positive flag decodes to a chord note whatever the gap feature says.
    features[:, 2] = 0.5
    assert (encoding.decode(features)[:, notes_lib.DELTA] == 0).all()
    # Scales are robust (1st..99th percentiles): pitch within about [-1, 1].
    assert np.abs(features[:, 0]).max() < 1.5


@pytest.mark.parametrize("name", DISCRETE)
def test_arbitrary_arrays_decode_to_valid_notes(name, chorales):
    encoding = _fitted(name, chorales)
    rng = np.random.default_rng(5)
    wild = rng.uniform(-3.0, 3.0, (2000, encoding.num_features))
    _assert_valid_notes(encoding.decode(wild), encoding)
    extreme = np.stack([np.full(encoding.num_features, v) for v in
                        (1e9, -1e9, 0.0, np.inf, -np.inf, np.nan)])
    _assert_valid_notes(encoding.decode(extreme), encoding)


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_config_round_trip(name, chorales):
    encoding = _fitted(name, chorales)
    stats = json.loads(json.dumps(encoding.stats))  # JSON-serialisable
    assert stats == encoding.stats
    restored = encodings.get_encoding(name, stats)
    assert restored.num_features == encoding.num_features
    np.testing.assert_array_equal(restored.encode(chorales[1]), encoding.encode(chorales[1]))
    config = json.loads(json.dumps(encoding.get_config()))
    assert config["num_features"] == encoding.num_features
    from_config = encodings.from_config(config)
    np.testing.assert_array_equal(from_config.decode(encoding.encode(chorales[2])),
                                  encoding.decode(encoding.encode(chorales[2])))
    assert name in encodings.available_encodings()


@pytest.mark.parametrize("name", DISCRETE)
def test_unfitted_discrete_encoding_has_no_width(name, chorales):
    encoding = encodings.get_encoding(name)
    with pytest.raises(ValueError, match="no statistics"):
        encoding.num_features
    assert encoding.get_config() == {"name": name, "num_features": None, "stats": None}
    encoding.fit(chorales)
    assert encoding.encode(notes_lib.empty()).shape == (0, encoding.num_features)
    assert encoding.decode(np.zeros((0, encoding.num_features))).shape == (0, 4)


def _write_midi(path, note_tuples, ticks_per_beat=480):
    import mido
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    events = []
    for pitch, start, duration in note_tuples:
        events.append((int(round((start + duration) * ticks_per_beat)), 0,
                       mido.Message("note_off", note=int(pitch))))
        events.append((int(round(start * ticks_per_beat)), 1,
                       mido.Message("note_on", note=int(pitch), velocity=80)))
    track = mido.MidiTrack()
    track.append(mido.Message("program_change", program=0))
    previous = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - previous))
        previous = tick
    midi.tracks.append(track)
    midi.save(str(path))


@pytest.mark.parametrize("name", DISCRETE)
def test_prepared_dataset_uses_the_fitted_width(name, chorales, tmp_path):
    from data import midi_dataset
    from params import Params
    folder = tmp_path / "midi"
    folder.mkdir()
    for i, piece in enumerate(chorales[:4]):
        starts = notes_lib.onsets(piece)
        _write_midi(folder / f"piece{i}.mid",
                    zip(piece[:, 0], starts, piece[:, notes_lib.DURATION]))
    params = Params(dataset="folder", data_dir=str(folder), cache_dir=str(tmp_path / "cache"),
                    seq_len=16, hop=16, transpose=1, test_fraction=0.3, encoding=name)
    prepared = midi_dataset.prepare(params, progress=False)
    assert prepared.summary["num_features"] == prepared.num_features
    assert prepared.num_features == prepared.encoding.num_features
    element = next(iter(midi_dataset.load_split(prepared, "train")))["notes"].numpy()
    assert element.shape == (16, prepared.num_features)
    _assert_valid_notes(prepared.encoding.decode(element), prepared.encoding)
    reused = midi_dataset.prepare(params, progress=False)
    assert reused.summary["reused"] and reused.num_features == prepared.num_features
    assert name in prepared.summary_text()
