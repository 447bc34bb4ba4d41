"""Fast tests of metrics/midi.py and evaluate.py on synthetic note arrays."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

import evaluate
import params as params_lib
from data import notes as notes_lib
from data.notes import DELTA, DURATION, PITCH
from metrics import midi as m


def melody(pitches, duration=1.0, velocity=80.0):
    """One note per beat (no chords)."""
    pitches = np.asarray(pitches, np.float64)
    n = len(pitches)
    return notes_lib.from_onsets(pitches, np.arange(n) * duration,
                                 np.full(n, duration), np.full(n, velocity))


def chorale_like(rng, n_chords=40, tonic=0):
    """4-voice diatonic chords, one per beat, with some 1/2-beat chords."""
    scale = (m.MAJOR_SCALE + tonic) % 12
    pitches, starts, durations = [], [], []
    t = 0.0
    for _ in range(n_chords):
        length = rng.choice([0.5, 1.0, 1.0, 2.0])
        root = rng.integers(0, 7)
        for voice, octave in enumerate((48, 55, 62, 69)):
            degree = scale[(root + 2 * voice) % 7]
            pitches.append(octave + (degree - octave) % 12)
            starts.append(t)
            durations.append(length)
        t += length
    return notes_lib.from_onsets(pitches, starts, durations, np.full(len(pitches), 90.0))


# --- descriptors -----------------------------------------------------------

def test_diatonic_fit_of_major_and_chromatic_scales():
    assert m.diatonic_fit(melody([60, 62, 64, 65, 67, 69, 71, 72])) == 1.0
    assert m.diatonic_fit(melody(range(60, 72))) == pytest.approx(7 / 12)
    assert m.diatonic_fit(melody([61, 63, 66, 68, 70])) == 1.0  # pentatonic in F#


def test_pitch_class_histogram_is_key_invariant():
    rng = np.random.default_rng(3)
    piece = chorale_like(rng, tonic=2)
    base = m.key_invariant_pitch_class_histogram(piece)
    for shift in range(-7, 8):
        moved = piece.copy()
        moved[:, PITCH] += shift
        np.testing.assert_array_equal(m.key_invariant_pitch_class_histogram(moved), base)
    # A D-major piece has its tonic (D) moved to bin 0; raw histograms differ.
    assert m.estimate_key(m.pitch_class_histogram(melody([62, 64, 66, 67, 69, 71, 73, 62,
                                                          66, 69])))[0] == 2
    a = m.summarize_set([piece])
    moved = piece.copy()
    moved[:, PITCH] += 5
    b = m.summarize_set([moved])
    assert m.js_divergence(a.histograms["pitch_class"], b.histograms["pitch_class"]) == 0
    assert m.js_divergence(m.pitch_class_histogram(piece),
                           m.pitch_class_histogram(moved)) > 0.1


def test_js_divergence_bounds():
    h = np.array([3.0, 1.0, 0.0, 6.0])
    assert m.js_divergence(h, h) == 0.0
    assert m.js_divergence(h, 2 * h) == pytest.approx(0.0, abs=1e-12)
    assert m.js_divergence([1, 2, 0, 0], [0, 0, 5, 1]) == pytest.approx(1.0)
    assert 0 < m.js_divergence([1, 1], [1, 3]) < 1
    assert np.isnan(m.js_divergence([0, 0], [1, 1]))


def test_js_terms_split_the_divergence_by_bin():
    p, q = np.array([1.0, 2.0, 0.0, 5.0]), np.array([2.0, 0.0, 1.0, 5.0])
    terms = m.js_terms(p, q)
    assert terms.shape == (4,) and np.all(terms >= 0)
    assert terms.sum() == pytest.approx(m.js_divergence(p, q))
    assert terms[3] == pytest.approx(0.0, abs=1e-12)  # equal shares: no term
    # A bin only one side has: its share p/2 * log2(2) = p/2 (base 2).
    assert terms[2] == pytest.approx(0.5 * (1 / 8))
    assert np.all(np.isnan(m.js_terms([0, 0], [1, 1])))


def test_step_shares_by_gap_split_intervals_by_rhythm():
    piece = np.array([
        [60, 1.0, 0.0, 80],
        [62, 1.0, 0.0, 80],   # gap 0, a second: a cluster
        [67, 1.0, 0.0, 80],   # gap 0, a fourth
        [65, 0.5, 1.0, 80],   # gap 1, a step down
        [64, 0.5, 0.5, 80],   # gap 0.5, a step down
        [60, 0.5, 0.5, 80],   # gap 0.5, a third
        [60, 0.5, 0.5 + 1e-4, 80],  # rounds to gap 0.5; a repeat is no step
    ], np.float64)
    shares = m.step_shares_by_gap([piece, piece[:1]])
    assert list(shares) == [0.0, 0.5, 1.0]
    assert shares[0.0] == (2, 0.5) and shares[1.0] == (1, 1.0)
    assert shares[0.5] == (3, pytest.approx(1 / 3))
    assert shares[0.0][1] == m.chord_second_share(piece)  # the same at gap 0


def test_voice_steps_follow_the_note_that_ends_at_each_onset():
    piece = np.array([
        [48, 1.0, 0.5, 80],   # the first event starts half a beat in
        [60, 1.0, 0.0, 80],
        [64, 0.501, 0.0, 80],  # ends at 0.5 beats after its onset (within 1/32)
        [72, 1.0, 0.0, 80],
        [65, 0.5, 0.5, 80],   # gap 0.5: a step from the 64 ending here (row order: -7)
        [50, 1.0, 0.5, 80],   # gap 0.5: 50 steps from the 48 ending here
        [62, 1.0, 0.0, 80],
        [71, 1.0, 0.0, 80],
        [55, 0.25, 1.0, 80],  # gap 1: no note ending here is a step away
        [57, 0.25, 0.25, 80],  # gap 0.25: a step from the 55 ending here
        [57, 0.25, 0.5, 80],  # gap 0.5: nothing ends here (a rest before it)
    ], np.float64)
    shares = m.voice_step_shares_by_gap([piece, piece[:4]])
    assert shares == {0.25: (1, 1.0), 0.5: (3, pytest.approx(2 / 3)), 1.0: (1, 0.0)}
    assert m.voice_step_share(piece) == pytest.approx(3 / 4)  # gaps up to half a beat
    assert m.voice_step_share(piece, max_gap=1.0) == pytest.approx(3 / 5)
    assert np.isnan(m.voice_step_share(piece[:4]))  # one event: no onset after it
    # Row order sees none of these steps (65 after 72, 50 after 65, 57 after 57).
    assert m.step_shares_by_gap(piece)[0.5] == (3, 0.0)


def test_interval_histogram_splits_chord_steps_from_steps_across_onsets():
    piece = np.array([
        [60, 1.0, 0.0, 80],
        [64, 1.0, 0.0, 80],   # +4 inside the chord
        [71, 1.0, 0.0, 80],   # +7 inside the chord
        [69, 1.0, 1.0, 80],   # -2 to the next onset
        [69, 1.0, 0.0, 80],   # a unison inside the chord
    ], np.float64)
    inside = m.interval_histogram(piece, in_chord=True)
    across = m.interval_histogram(piece, in_chord=False)
    clip = m.INTERVAL_CLIP
    assert {k - clip: c for k, c in enumerate(inside) if c} == {4: 1, 7: 1, 0: 1}
    assert {k - clip: c for k, c in enumerate(across) if c} == {-2: 1}
    np.testing.assert_array_equal(inside + across, m.interval_histogram(piece))


def test_interval_histogram_clips():
    hist = m.interval_histogram(melody([60, 62, 60, 100, 60]))
    assert hist.sum() == 4
    assert hist[m.INTERVAL_CLIP + 2] == 1 and hist[m.INTERVAL_CLIP - 2] == 1
    assert hist[-1] == 1 and hist[0] == 1  # +40 and -40 clipped to +-24


def test_polyphony_density_range():
    chord = notes_lib.from_onsets([60, 64, 67], [0, 0, 0], [1, 1, 1], [80, 80, 80])
    assert m.polyphony(chord) == pytest.approx(3.0)
    assert m.polyphony(melody([60, 62, 64])) == pytest.approx(1.0)
    # Two notes overlapping half of the time, with a gap: (1 + 1) / 1.5.
    overlapping = notes_lib.from_onsets([60, 62, 64], [0, 0.5, 4], [1, 1, 0.5], [80] * 3)
    assert m.polyphony(overlapping) == pytest.approx(2.5 / 2.0)
    assert m.note_density(chord) == pytest.approx(3.0)
    assert m.pitch_range(chord) == 7.0


def test_chord_fraction_and_on_grid_share():
    piece = np.array([
        # pitch, duration, delta, velocity
        [60, 1.0, 0.0, 80],  # first note: never counted as a chord note
        [64, 1.0, 0.0, 80],  # chord
        [67, 0.5, 1e-7, 80],  # chord (within tolerance)
        [65, 0.125, 1.0, 80],
        [62, 0.3, 0.5, 80],  # 0.3 * 8 = 2.4: off the grid
    ], np.float64)
    assert m.chord_fraction(piece) == pytest.approx(2 / 4)
    assert m.chord_second_share(piece) == 0.0  # chord steps 4 and 3 semitones
    cluster = piece.copy()
    cluster[:, PITCH] = [60, 62, 63, 61, 62]  # chord steps 2 and 1; 61-63 is no chord
    assert m.chord_second_share(cluster) == 1.0
    cluster[2, PITCH] = 72  # 62 -> 72: a 10th
    assert m.chord_second_share([cluster, piece]) == pytest.approx(1 / 4)
    assert np.isnan(m.chord_second_share(piece[:1]))
    assert m.on_grid_share(piece) == pytest.approx(4 / 5)
    assert m.on_grid_share(piece, tolerance=1e-3) == pytest.approx(4 / 5)
    assert m.on_grid_share([piece, piece]) == pytest.approx(4 / 5)
    # 1/32 beat tolerance: 0.52 beats (8 * 0.52 = 4.16) counts, 0.55 (4.4) does not.
    near = piece.copy()
    near[:, DURATION] = [0.52, 0.55, 1.0, 1.0, 1.0]
    assert m.on_grid_share(near) == pytest.approx(4 / 5)
    assert m.on_grid_share(near, tolerance=1e-3) == pytest.approx(3 / 5)


def test_duration_histogram_separates_common_values():
    piece = melody([60] * 8)
    piece[:, DURATION] = [0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
    hist = m.duration_histogram(piece)
    assert hist.sum() == 8 and hist.max() == 1


# --- Mittal et al. framewise self-similarity -----------------------------------

def test_overlap_area_of_identical_windows_is_one():
    # 4 identical bars repeated: 8 bars -> windows at bars 0 and 2, identical.
    bar = [60, 64, 67, 72]
    piece = melody(bar * 8)  # 32 one-beat notes = 8 bars
    oa = m.framewise_overlaps(piece)
    assert oa.shape == (2, 2)
    np.testing.assert_allclose(oa, 1.0)
    # Constant durations (zero variance) are guarded by the epsilon.
    assert np.isfinite(oa).all()


def test_overlap_area_drops_when_register_changes():
    piece = melody([60, 62, 64, 65] * 4 + [84, 86, 88, 89] * 4)  # 8 bars
    oa = m.framewise_overlaps(piece)
    assert oa.shape == (2, 2)
    assert np.all(oa[:, 0] < 0.5)  # each pair spans the register change
    np.testing.assert_allclose(oa[:, 1], 1.0)  # durations identical


def test_consistency_is_one_when_set_equals_ground_truth():
    rng = np.random.default_rng(0)
    pieces = [chorale_like(rng) for _ in range(6)]
    stats = m.overlap_area_stats(pieces)
    assert stats["pairs"] > 6
    scores = m.consistency_variance(stats, stats)
    assert scores == {"pitch_consistency": 1.0, "pitch_variance": 1.0,
                      "duration_consistency": 1.0, "duration_variance": 1.0}
    row = m.evaluate_set(pieces, pieces)
    assert row["pitch_consistency"] == 1.0 and row["js_interval"] == 0.0
    assert m.relative_agreement(3.0, 1.0) == 0.0  # clipped at 0


# --- memorisation ---------------------------------------------------------------

def test_memorisation_finds_planted_copy():
    rng = np.random.default_rng(1)
    train = [chorale_like(rng, n_chords=50) for _ in range(5)]
    index = m.TrainIndex(train)
    source = train[2][30:70].copy()  # 40 consecutive training notes
    fresh = m.random_notes(train, [100], seed=7)[0]
    planted = np.concatenate([fresh[:30], source, fresh[30:60]])
    assert index.longest_run(planted) >= 40
    unrelated = m.random_notes(train, [100, 100], seed=8)
    result = m.memorisation(unrelated + [planted], index)
    assert result["copies"] == 1 and result["longest_copy"] >= 40
    assert m.memorisation(unrelated, index)["copies"] == 0
    assert index.longest_run(train[0]) == len(train[0])  # a training piece itself
    segment = m.cut_segments(train[1], 64)[1]  # first delta reset to 0
    assert index.longest_run(segment) == 64


def test_memorisation_respects_rounding_and_transposition():
    rng = np.random.default_rng(2)
    train = [chorale_like(rng, n_chords=20)]
    copy = train[0][:40].copy()
    copy[:, DURATION] += 0.004  # below 1/96 beat: rounds to the same 1/48 step
    assert m.TrainIndex(train).longest_run(copy) == 40
    up = train[0][:40].copy()
    up[:, PITCH] += 3
    assert m.TrainIndex(train).longest_run(up) < 40
    assert m.TrainIndex(train, transpositions=range(-5, 6)).longest_run(up) == 40


def test_ngram_hashes_are_position_independent():
    tokens = m.note_tokens(melody([60, 62, 64, 60, 62, 64, 65]))
    h = m.run_hashes(tokens, 3)
    assert len(h) == 5 and h[0] == h[3] and h[0] != h[1]
    # The gap before a run's first note is not part of the run.
    assert m.run_hashes(m.note_tokens(melody([62, 64, 60])), 3)[0] == h[1]
    assert len(m.run_hashes(tokens, 8)) == 0


# --- baselines ------------------------------------------------------------------

def test_random_baseline_is_reproducible():
    rng = np.random.default_rng(4)
    train = [chorale_like(rng) for _ in range(3)]
    a = m.random_notes(train, [64, 32], seed=5)
    b = m.random_notes(train, [64, 32], seed=5)
    c = m.random_notes(train, [64, 32], seed=6)
    assert [len(p) for p in a] == [64, 32]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    pool = np.concatenate(train)
    assert set(a[0][:, PITCH]) <= set(pool[:, PITCH])
    moved = m.random_notes(train, [512], seed=5, transpose=5)[0]
    assert set(moved[:, PITCH]) > set(pool[:, PITCH])
    np.testing.assert_array_equal(moved, m.random_notes(train, [512], seed=5, transpose=5)[0])
    assert np.all(np.diff(notes_lib.onsets(a[0])) >= 0)


def test_shuffled_keeps_rows():
    rng = np.random.default_rng(5)
    piece = chorale_like(rng)
    shuffled = m.shuffled_notes([piece], seed=0)[0]
    assert not np.array_equal(shuffled, piece)
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(piece, axis=0))
    assert {tuple(r) for r in shuffled} == {tuple(r) for r in piece}


def test_cut_segments():
    piece = melody(range(40, 90))
    segments = m.cut_segments(piece, 16)
    assert len(segments) == 3 and all(len(s) == 16 for s in segments)
    assert all(s[0, DELTA] == 0 for s in segments)
    assert segments[1][0, PITCH] == 56


def test_format_table_aligns_and_handles_nan():
    rows = [{"set": "a", "n": 3, "diatonic_fit": 0.5, "js_interval": float("nan")},
            {"set": "longer name", "n": 12, "diatonic_fit": 0.25}]
    table = m.format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert "0.500" in table and "longer name" in table and "-" in lines[2]


# --- CLI ------------------------------------------------------------------------

def write_pretty_midi(path, piece, program=0):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    instrument = pretty_midi.Instrument(program=program)
    starts = notes_lib.onsets(piece) * 0.5  # 120 bpm: half a second per beat
    for (pitch, duration, _, velocity), start in zip(piece, starts):
        instrument.notes.append(pretty_midi.Note(int(velocity), int(pitch), float(start),
                                                 float(start + duration * 0.5)))
    midi.instruments.append(instrument)
    midi.write(str(path))


@pytest.fixture
def generated_folder(tmp_path):
    rng = np.random.default_rng(9)
    folder = tmp_path / "samples"
    folder.mkdir()
    write_pretty_midi(folder / "a.mid", chorale_like(rng, 30))
    write_pretty_midi(folder / "b.mid", chorale_like(rng, 30, tonic=7), program=40)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (folder / "notes.txt").write_text("not midi")
    return folder


def fake_reference(seed=10, seq_len=32):
    rng = np.random.default_rng(seed)
    train_pieces = [chorale_like(rng, 40, tonic=int(rng.integers(0, 12))) for _ in range(6)]
    test_pieces = [chorale_like(rng, 40, tonic=int(rng.integers(0, 12))) for _ in range(3)]
    cut = lambda ps: [s for p in ps for s in m.cut_segments(p, seq_len)]
    return evaluate.ReferenceSets(cut(test_pieces), cut(train_pieces), train_pieces)


def test_cli_writes_rows_and_skips_corrupt_file(generated_folder, tmp_path):
    params = params_lib.get_preset("midi_tiny").replace(seq_len=32)
    out = io.StringIO()
    json_path = tmp_path / "out" / "eval.json"
    payload = evaluate.evaluate_folder(str(generated_folder), params, str(json_path),
                                       reference=fake_reference(), out=out)
    text = out.getvalue()
    assert "skipped broken.mid:" in text
    assert "notes.txt" not in text
    for name in ("held-out (floor)", "held-out n=2 (floor)", "random notes", "shuffled",
                 "train segments", "generated: samples"):
        assert name in text
    with open(json_path) as handle:
        saved = json.load(handle)
    assert [r["set"] for r in saved["rows"]] == [
        "held-out (floor)", "held-out n=2 (floor)", "random notes", "shuffled",
        "train segments", "generated: samples"]
    assert saved["files"] == ["a.mid", "b.mid"]
    assert saved["skipped"][0]["file"] == "broken.mid"
    model = saved["rows"][-1]
    assert model["n"] == 2 and model["diatonic_fit"] == pytest.approx(1.0)
    assert model["on_grid"] == 1.0 and model["longest_copy"] < 32
    floor = saved["rows"][0]
    assert floor["copies"] == 0 and floor["diatonic_fit"] == pytest.approx(1.0)
    assert saved["rows"][2]["diatonic_fit"] < 1.0  # random notes
    train_row = saved["rows"][4]  # real training segments: copied whole, in key
    assert train_row["longest_copy"] == 32 and train_row["diatonic_fit"] == pytest.approx(1.0)
    assert payload["rows"][-1]["set"] == "generated: samples"
    assert not [n for n in os.listdir(json_path.parent) if n.endswith(".tmp")]


def test_cli_default_json_and_reference_loader(generated_folder, monkeypatch):
    params = params_lib.get_preset("midi_tiny").replace(seq_len=32, transpose=0)
    rng = np.random.default_rng(11)
    pieces = {"test": [chorale_like(rng, 30) for _ in range(2)],
              "train": [chorale_like(rng, 30) for _ in range(4)]}
    calls = []

    def fake_pieces(p, split, skipped=None, corpus=None):
        calls.append(split)
        return pieces[split]

    monkeypatch.setattr(evaluate, "load_reference_pieces", fake_pieces)
    monkeypatch.setattr(evaluate.corpora, "list_pieces", lambda p: None)
    assert len(evaluate.load_reference_segments(params, "test")) == 2 * (120 // 32)
    out = io.StringIO()
    evaluate.evaluate_folder(str(generated_folder), params, out=out)
    assert set(calls) == {"test", "train"}
    saved = json.loads((generated_folder / "evaluation.json").read_text())
    assert len(saved["rows"]) == 6  # floor, floor at n=2, random, shuffled, train, model
    assert saved["reference"]["test_segments"] == 6
    assert "wrote" in out.getvalue()


def test_previous_event_pitches_and_lone_note_rows():
    piece = np.array([
        [48, 1.0, 0.0, 80],
        [60, 1.0, 0.0, 80],        # event 0: 48, 60
        [62, 0.5, 1.0, 80],        # event 1, alone after a beat: not lone
        [64, 0.5, 0.5, 80],        # event 2, alone after 1/2 beat: lone
        [50, 0.25, 0.25 + 1e-4, 80],  # event 3 (gap rounds to 1/4), two notes: not lone
        [65, 0.25, 0.0, 80],
        [67, 0.5, 0.25, 80],       # event 4, the last row, alone: lone
    ], np.float64)
    before = m.previous_event_pitches(piece)
    assert [list(b) for b in before] == [[], [], [48, 60], [62], [64], [64], [50, 65]]
    assert m.lone_note_rows(piece).tolist() == [3, 6]
    assert m.lone_note_rows(piece, gaps=(1.0,)).tolist() == [2]
    assert m.lone_note_rows(piece[:1]).tolist() == []
    assert m.previous_event_pitches(piece[:0]) == []
    # A first note starting after the segment start opens event 0 all the same.
    shifted = piece.copy()
    shifted[0, 2] = 2.0
    assert [list(b) for b in m.previous_event_pitches(shifted)][:3] == [[], [], [48, 60]]


def test_cli_keeps_an_existing_evaluation_without_overwrite(tmp_path):
    """evaluate.py refuses to replace an earlier evaluation, before loading any data."""
    (tmp_path / "evaluation.json").write_text('{"rows": []}')
    result = subprocess.run(
        [sys.executable, "evaluate.py", f"--generated={tmp_path}"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'evaluation.json'} already exists; pass --overwrite to "
        "replace it, or --json=FILE")
    assert (tmp_path / "evaluation.json").read_text() == '{"rows": []}'
