"""Tests for the symbolic data pipeline: data/midi_io.py, corpora.py,
midi_dataset.py and render.py. Every MIDI file is synthetic (written with
mido into tmp_path) except two music21 Bach chorales."""

import csv
import json
import os
import time

import mido
import numpy as np
import pytest

from data import corpora, midi_dataset, midi_io, render
from data import notes as notes_lib
from params import Params

# (pitch, start beat, duration beats, velocity); durations, rests and a chord.
MELODY = [(60, 0.0, 1.0, 80), (64, 0.0, 1.0, 81), (67, 1.0, 0.5, 90), (72, 1.5, 0.25, 100),
          (71, 3.0, 1.5, 70), (60, 3.0, 0.75, 60), (62, 5.0, 2.0, 64)]


def write_test_midi(path, tracks, ticks_per_beat=480, tempos=((0.0, 120.0),)):
    """A type-1 file: a tempo track (tempos = (beat, bpm) pairs) and one track
    per (program, channel, notes) with notes as (pitch, start, duration, velocity)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    tempo_events = [(int(round(beat * ticks_per_beat)),
                     mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
                    for beat, bpm in tempos]
    midi.tracks.append(_track(tempo_events))
    for program, channel, notes in tracks:
        events = [(0, mido.Message("program_change", channel=channel, program=program))]
        for pitch, start, duration, velocity in notes:
            on = int(round(start * ticks_per_beat))
            off = int(round((start + duration) * ticks_per_beat))
            events.append((off, mido.Message("note_off", channel=channel, note=pitch)))
            events.append((on, mido.Message("note_on", channel=channel, note=pitch,
                                            velocity=velocity)))
        midi.tracks.append(_track(events))
    midi.save(path)
    return path


def _track(events):
    track = mido.MidiTrack()
    previous = 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=tick - previous))
        previous = tick
    return track


def expected_notes(note_tuples):
    pitch, start, duration, velocity = np.asarray(note_tuples, np.float64).T
    return notes_lib.from_onsets(pitch, start, duration, velocity)


def long_piece(rng, length, low=55, high=75):
    """note tuples of a piece with `length` notes."""
    starts = np.cumsum(rng.choice([0.0, 0.5, 1.0], size=length))
    return [(int(p), float(s), float(d), 80) for p, s, d in
            zip(rng.integers(low, high, size=length), starts,
                rng.choice([0.5, 1.0, 2.0], size=length))]


# --- reading and writing ------------------------------------------------

@pytest.mark.parametrize("ticks_per_beat", [96, 480, 10080])
def test_beats_do_not_depend_on_tick_resolution(tmp_path, ticks_per_beat):
    path = write_test_midi(tmp_path / "a.mid", [(0, 0, MELODY)], ticks_per_beat)
    np.testing.assert_array_equal(midi_io.read_midi(path), expected_notes(MELODY))


def test_beats_do_not_depend_on_tempo_changes(tmp_path):
    path = write_test_midi(tmp_path / "a.mid", [(0, 0, MELODY)], 480,
                           tempos=((0, 120.0), (1.25, 45.0), (3.0, 200.0), (4.5, 61.0)))
    np.testing.assert_array_equal(midi_io.read_midi(path), expected_notes(MELODY))


def test_round_trip_keeps_every_note_to_the_tick(tmp_path):
    # Overlapping repeats of one pitch and a doubled voice need separate channels.
    notes = MELODY + [(60, 0.5, 1.0, 50), (67, 1.0, 0.5, 90), (40, 7.0, 3.0, 127)]
    source = write_test_midi(tmp_path / "a.mid", [(0, 0, MELODY), (0, 1, notes[7:])], 480)
    original = midi_io.read_midi(source)
    assert len(original) == len(notes)
    copy = tmp_path / "b.mid"
    assert midi_io.write_midi(original, copy, tempo_bpm=90) == len(notes)
    np.testing.assert_array_equal(midi_io.read_midi(copy), original)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_write_rounds_clips_and_skips_zero_length_notes(tmp_path):
    piece = np.array([[60.4, 1.0, 0.0, 80.2], [200.0, 0.5, 1.0, 300.0],
                      [-5.0, 0.0001, 0.0, 64.0], [np.nan, 1.0, 0.0, 80.0],
                      [61.6, 1.0, 0.5, 0.0]])
    path = tmp_path / "out" / "w.mid"
    assert midi_io.write_midi(piece, path) == 3
    written = midi_io.read_midi(path)
    np.testing.assert_array_equal(written[:, notes_lib.PITCH], [60, 127, 62])
    np.testing.assert_array_equal(written[:, notes_lib.VELOCITY], [80, 127, 1])
    assert mido.MidiFile(path).tracks[0][0].tempo == mido.bpm2tempo(120)


def test_track_selection_by_program_family(tmp_path):
    piano = [(60, 0.0, 1.0, 80), (62, 1.0, 1.0, 80)]
    strings = [(48, 0.5, 2.0, 70), (55, 1.0, 1.0, 70)]  # played by a violin (GM 40)
    drums = [(36, 0.0, 0.5, 100), (38, 1.0, 0.5, 100)]
    path = write_test_midi(tmp_path / "band.mid",
                           [(0, 0, piano), (40, 1, strings), (0, 9, drums)])
    np.testing.assert_array_equal(midi_io.read_midi(path), expected_notes(piano))
    merged = expected_notes(piano + strings)
    np.testing.assert_array_equal(midi_io.read_midi(path, "piano,strings"), merged)
    np.testing.assert_array_equal(midi_io.read_midi(path, " Strings , piano"), merged)
    np.testing.assert_array_equal(midi_io.read_midi(path, "all"), merged)  # drums: never
    np.testing.assert_array_equal(midi_io.read_midi(path, "strings"), expected_notes(strings))
    with pytest.raises(ValueError, match="'harpsichord'"):
        midi_io.read_midi(path, "piano,harpsichord")


def test_long_durations_and_gaps_are_clipped_not_dropped(tmp_path):
    notes = [(60, 0.0, 20.0, 80), (62, 30.0, 1.0, 80), (64, 31.0, 9.0, 80)]
    path = write_test_midi(tmp_path / "long.mid", [(0, 0, notes)])
    piece = midi_io.read_midi(path, max_beats=8.0)
    np.testing.assert_array_equal(piece[:, notes_lib.DURATION], [8.0, 1.0, 8.0])
    np.testing.assert_array_equal(piece[:, notes_lib.DELTA], [0.0, 8.0, 1.0])


def test_read_errors_name_the_file_and_the_problem(tmp_path):
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes())
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    drums = write_test_midi(tmp_path / "drums.mid", [(0, 9, [(36, 0.0, 1.0, 100)])])
    cases = [(corrupt, "corrupt"), (empty, "empty file"), (drums, "no notes"),
             (tmp_path / "missing.mid", "not found")]
    for path, problem in cases:
        with pytest.raises(midi_io.MidiReadError) as caught:
            midi_io.read_midi(path)
        assert str(path) in str(caught.value) and problem in caught.value.reason
        assert "\n" not in str(caught.value)


# --- corpora --------------------------------------------------------------

def test_split_is_deterministic_and_close_to_the_fraction():
    names = [f"piece{i}" for i in range(4000)]
    splits = [corpora.split_of(n, 0.1) for n in names]
    assert splits == [corpora.split_of(n, 0.1) for n in names]
    assert 0.08 < splits.count("test") / len(names) < 0.12
    assert all(corpora.split_of(n, 0.0) == "train" for n in names[:100])
    assert corpora.split_of("bwv1.6", 0.1) == corpora.split_of("bwv1.6", 0.1)


def test_folder_listing_is_recursive_sorted_and_stable(tmp_path):
    for name in ["b.mid", "a.MIDI", "sub/c.midi", "sub/deeper/d.mid", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    corpus = corpora.folder_pieces(str(tmp_path), 0.5)
    assert [p.piece_id for p in corpus.pieces] == ["a.MIDI", "b.mid", "sub/c.midi",
                                                   "sub/deeper/d.mid"]
    (tmp_path / "0.mid").write_bytes(b"x")
    again = corpora.folder_pieces(str(tmp_path), 0.5)
    assert set(corpus.pieces) <= set(again.pieces)  # old pieces keep their split


def deny_listing(monkeypatch, function, folder_name):
    """Makes os.<function> refuse folders named folder_name (permissions do
    not stop root, so the listing is denied here)."""
    real = getattr(os, function)

    def denied(path):
        if os.path.basename(path) == folder_name:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, function, denied)


def test_unreadable_subfolders_are_reported_not_passed_over(tmp_path, monkeypatch):
    for name in ["a.mid", "locked/b.mid", "open/c.mid"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    deny_listing(monkeypatch, "scandir", "locked")
    corpus = corpora.folder_pieces(str(tmp_path), 0.5)
    assert [p.piece_id for p in corpus.pieces] == ["a.mid", "open/c.mid"]
    assert corpus.skipped == [corpora.Skipped("locked/", "unreadable folder (Permission denied)")]


def test_lakh_layout(tmp_path):
    root = tmp_path / "lmd_full"
    for name in ["0/0a1b.mid", "f/f00d.mid", "a/abcd.mid", "notes/x.mid"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    from_parent = corpora.lakh_pieces(str(tmp_path), 0.1)
    from_root = corpora.lakh_pieces(str(root), 0.1)
    assert from_parent == from_root
    assert [p.piece_id for p in from_parent.pieces] == ["0a1b", "abcd", "f00d"]
    assert from_parent.pieces[0].midi_path == str(root / "0" / "0a1b.mid")
    assert from_parent.skipped == []


def test_lakh_reports_unreadable_shards(tmp_path, monkeypatch):
    root = tmp_path / "lmd_full"
    for name in ["0/0a1b.mid", "f/f00d.mid"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    deny_listing(monkeypatch, "listdir", "f")
    corpus = corpora.lakh_pieces(str(root), 0.1)
    assert [p.piece_id for p in corpus.pieces] == ["0a1b"]
    assert corpus.skipped == [corpora.Skipped("f/", "unreadable folder (Permission denied)")]
    (root / "0" / "0a1b.mid").unlink()
    with pytest.raises(FileNotFoundError, match=r"no Lakh files .*f/: unreadable folder"):
        corpora.lakh_pieces(str(root), 0.1)


def test_maestro_layout(tmp_path):
    rows = [("2004/a.midi", "train"), ("2006/b.midi", "validation"),
            ("2018/c.midi", "test"), ("2018/gone.midi", "test")]
    with open(tmp_path / "maestro-v3.0.0.csv", "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(["canonical_composer", "canonical_title", "split", "year",
                         "midi_filename", "audio_filename", "duration"])
        for name, split in rows:
            writer.writerow(["Bach", "Prelude", split, name[:4], name,
                             name.replace(".midi", ".wav"), "60.0"])
            if "gone" not in name:
                (tmp_path / name).parent.mkdir(exist_ok=True)
                (tmp_path / name).write_bytes(b"x")
    corpus = corpora.maestro_pieces(str(tmp_path))
    assert [(p.piece_id, p.split) for p in corpus.pieces] == [
        ("2004/a.midi", "train"), ("2006/b.midi", "train"), ("2018/c.midi", "test")]
    assert [s.name for s in corpus.skipped] == ["2018/gone.midi"]
    assert "missing" in corpus.skipped[0].reason


def test_bach_scores_convert_and_keep_all_voices(tmp_path):
    # music21 labels bwv274's voices as choir (GM 52); they must still count as piano.
    sources = [s for s in corpora.music21_sources(corpora.MUSIC21_CORPORA["bach"])
               if s[0] in ("bwv1.6", "bwv274")]
    sources.append(("broken", [str(tmp_path / "broken.mxl")]))
    (tmp_path / "broken.mxl").write_bytes(b"not a zip archive")
    corpus = corpora.bach_pieces(str(tmp_path / "cache"), 0.1, sources=sources,
                                 workers=1, progress=False)
    assert [p.piece_id for p in corpus.pieces] == ["bwv1.6", "bwv274"]
    assert [s.name for s in corpus.skipped] == ["broken"]
    assert "broken.mxl" in corpus.skipped[0].reason
    import pretty_midi
    for piece in corpus.pieces:
        midi = pretty_midi.PrettyMIDI(piece.midi_path)
        voices = [i for i in midi.instruments if not i.is_drum]
        assert len(voices) >= 4 and all(i.program == 0 for i in voices)
        notes = midi_io.read_midi(piece.midi_path)  # default: piano
        assert len(notes) == sum(len(i.notes) for i in voices)
        # Chorale rhythms sit on a 1/16-beat grid once ticks are divided by 10,080.
        assert np.allclose(notes[:, 1:3] * 16, np.round(notes[:, 1:3] * 16))
    # Existing files are reused, not converted again.
    mtime = os.path.getmtime(corpus.pieces[0].midi_path)
    corpora.bach_pieces(str(tmp_path / "cache"), 0.1, sources=sources[:1], workers=1,
                        progress=False)
    assert os.path.getmtime(corpus.pieces[0].midi_path) == mtime


def test_palestrina_is_converted_with_note_values_halved(tmp_path, monkeypatch):
    spec = corpora.MUSIC21_CORPORA["palestrina"]
    sources = [s for s in corpora.music21_sources(spec) if s[0] in ("Agnus_01", "Kyrie_62_a")]
    assert len(sources) == 2 and all(p[0].endswith(".krn") for _, p in sources)
    monkeypatch.setattr(corpora, "music21_sources", lambda _spec: sources)
    params = Params(dataset="palestrina", cache_dir=str(tmp_path / "cache"))
    corpus = corpora.list_pieces(params, progress=False)
    # Ids are file names, so the converted folder splits as the folder dataset would.
    folder = os.path.join(params.cache_dir, spec.folder)
    assert corpus == corpora.folder_pieces(folder, params.test_fraction)
    assert [p.piece_id for p in corpus.pieces] == ["Agnus_01.mid", "Kyrie_62_a.mid"]
    original = corpora.music21_pieces(spec._replace(folder="original", time_scale=1.0),
                                      params.cache_dir, 0.1, sources=sources, workers=1,
                                      progress=False)
    for halved_piece, original_piece in zip(corpus.pieces, original.pieces):
        # A ceiling above the final longas, so that none is clipped.
        halved = midi_io.read_midi(halved_piece.midi_path, max_beats=64)
        notes = midi_io.read_midi(original_piece.midi_path, max_beats=64)
        assert len(halved) == len(notes) > 100
        assert np.array_equal(halved[:, notes_lib.PITCH], notes[:, notes_lib.PITCH])
        for column in (notes_lib.DURATION, notes_lib.DELTA):
            assert np.allclose(halved[:, column], notes[:, column] / 2)
    # The manifest lists them without converting again; one written for
    # another time scale is not trusted.
    manifest = os.path.join(folder, "manifest.json")
    assert corpora._read_manifest(manifest, spec.time_scale)["pieces"] == ["Agnus_01",
                                                                          "Kyrie_62_a"]
    assert corpora._read_manifest(manifest, 1.0) is None
    monkeypatch.setattr(corpora, "music21_sources", None)  # listing must not need music21
    assert corpora.list_pieces(params, progress=False) == corpus


# --- prepare ----------------------------------------------------------------

def _names_in_split(split, count, fraction=0.5, prefix="song"):
    names = (f"{prefix}{i}" for i in range(10000))
    return [n for n in names if corpora.split_of(n + ".mid", fraction) == split][:count]


@pytest.fixture
def mixed_folder(tmp_path):
    """Two good train pieces, one good test piece, a short one and three bad files."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "midi"
    folder.mkdir()
    for name in _names_in_split("train", 2):
        write_test_midi(folder / f"{name}.mid", [(0, 0, long_piece(rng, 50))])
    test_name = _names_in_split("test", 1)[0]
    # The held-out piece is far higher than any training note.
    write_test_midi(folder / f"{test_name}.mid", [(0, 0, long_piece(rng, 40, 100, 110))])
    write_test_midi(folder / f"{_names_in_split('train', 3)[2]}.mid",
                    [(0, 0, long_piece(rng, 5))])
    (folder / "corrupt.mid").write_bytes(rng.integers(0, 256, 300, np.uint8).tobytes())
    (folder / "empty.mid").write_bytes(b"")
    write_test_midi(folder / "drums.mid", [(0, 9, [(36, 0.0, 1.0, 100)])])
    return folder


def _params(folder, tmp_path, **changes):
    return Params(dataset="folder", data_dir=str(folder), cache_dir=str(tmp_path / "cache"),
                  seq_len=16, hop=8, transpose=2, test_fraction=0.5).replace(**changes)


def test_prepare_skips_bad_files_and_saves_float32_segments(mixed_folder, tmp_path):
    import tensorflow as tf
    prepared = midi_dataset.prepare(_params(mixed_folder, tmp_path), progress=False)
    summary = prepared.summary
    assert summary["files_listed"] == 7 and summary["files_read"] == 4
    reasons = {entry["file"]: entry["reason"] for entry in summary["skipped"]}
    assert set(reasons) == {"corrupt.mid", "empty.mid", "drums.mid"}
    assert "corrupt" in reasons["corrupt.mid"] and "empty" in reasons["empty.mid"]
    assert "no notes" in reasons["drums.mid"]
    assert summary["pieces_too_short"] == 1
    # 50 notes, window 16, hop 8 -> 5 windows per train piece; 40 -> 4 in test.
    assert summary["segments"] == {"train": 10, "test": 4}
    assert summary["examples"] == {"train": 50, "test": 4}  # 5 transpositions each
    for split in ("train", "test"):
        dataset = tf.data.Dataset.load(os.path.join(prepared.cache_path, split))
        assert dataset.element_spec["notes"].dtype == tf.float32
        elements = [e["notes"].numpy() for e in dataset]
        assert len(elements) == summary["examples"][split]
        assert all(e.shape == (16, 3) and e.dtype == np.float32 for e in elements)
        assert len(list(midi_dataset.load_split(prepared, split))) == len(elements)
    assert midi_dataset.load_split(prepared, "train").cardinality().numpy() == 50
    assert json.load(open(os.path.join(prepared.cache_path, "stats.json"))) == prepared.stats
    text = prepared.summary_text()
    assert "corrupt.mid" in text and prepared.cache_path in text and "4 read" in text


def test_unreadable_folder_is_counted_apart_from_files(mixed_folder, tmp_path, monkeypatch):
    locked = mixed_folder / "locked"
    locked.mkdir()
    (locked / "x.mid").write_bytes(b"x")
    deny_listing(monkeypatch, "scandir", "locked")
    prepared = midi_dataset.prepare(_params(mixed_folder, tmp_path), progress=False)
    summary = prepared.summary
    assert (summary["files_listed"], summary["files_read"], summary["files_skipped"],
            summary["folders_unreadable"]) == (7, 4, 3, 1)
    assert {"file": "locked/", "reason": "unreadable folder (Permission denied)"} \
        in summary["skipped"]
    assert "7 listed, 4 read, 3 skipped; 1 folder unreadable" in prepared.summary_text()


def test_statistics_come_from_the_train_split_only(mixed_folder, tmp_path):
    prepared = midi_dataset.prepare(_params(mixed_folder, tmp_path), progress=False)
    train_pitches = [midi_io.read_midi(mixed_folder / f"{n}.mid")[:, 0]
                     for n in _names_in_split("train", 2)]
    highest = max(p.max() for p in train_pitches)
    # Train pieces with +-2 transpositions; the test piece (pitches >= 100) is ignored.
    assert prepared.stats["maximum"][0] == highest + 2
    assert prepared.stats["minimum"][0] == min(p.min() for p in train_pitches) - 2
    decoded = prepared.encoding.decode(
        next(iter(midi_dataset.load_split(prepared, "test")))["notes"].numpy())
    assert decoded[:, 0].max() <= highest + 2  # out-of-range test notes clip


def test_cache_is_reused_and_rebuilt_when_sources_or_parameters_change(mixed_folder, tmp_path,
                                                                      monkeypatch):
    params = _params(mixed_folder, tmp_path, transpose=0)
    first = midi_dataset.prepare(params, progress=False)
    assert first.summary["reused"] is False
    second = midi_dataset.prepare(params, progress=False)
    assert second.summary["reused"] is True and second.cache_path == first.cache_path
    assert second.stats == first.stats

    changed_params = midi_dataset.prepare(params.replace(hop=16), progress=False)
    assert changed_params.cache_path != first.cache_path
    assert changed_params.summary["segments"]["train"] == 6
    with monkeypatch.context() as patch:  # an encoding that now writes other features
        patch.setattr(type(first.encoding), "version", 2)
        new_encoding = midi_dataset.prepare(params, progress=False)
    assert new_encoding.cache_path != first.cache_path
    assert new_encoding.summary["reused"] is False

    good = mixed_folder / f"{_names_in_split('train', 1)[0]}.mid"
    write_test_midi(good, [(0, 0, long_piece(np.random.default_rng(9), 80))])
    os.utime(good, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed_source = midi_dataset.prepare(params, progress=False)
    assert changed_source.cache_path != first.cache_path
    assert changed_source.summary["reused"] is False
    # Only complete caches and no leftover temporary folders.
    leftovers = [p for p in os.listdir(params.cache_dir) if p.startswith(".")]
    assert leftovers == []


def test_encoding_from_takes_another_corpus_statistics(mixed_folder, tmp_path):
    source = midi_dataset.prepare(_params(mixed_folder, tmp_path, transpose=0), progress=False)
    other = tmp_path / "other"
    other.mkdir()
    name = _names_in_split("train", 1, prefix="narrow")[0]
    write_test_midi(other / f"{name}.mid", [(0, 0, long_piece(np.random.default_rng(4), 40,
                                                                  70, 72))])
    own = midi_dataset.prepare(_params(other, tmp_path, transpose=0), progress=False)
    assert own.stats["maximum"][0] <= 71 < source.stats["maximum"][0]

    weights_folder = tmp_path / "weights"
    weights_folder.mkdir()
    config = {"name": "seed_log", "num_features": 3, "stats": source.stats}
    (weights_folder / "encoding.json").write_text(json.dumps(config))
    results = {}
    for origin in (source.cache_path, str(weights_folder)):
        fixed = midi_dataset.prepare(_params(other, tmp_path, transpose=0, encoding_from=origin),
                                     progress=False)
        assert fixed.stats == source.stats and fixed.cache_path != own.cache_path
        assert f"statistics (from {origin}" in fixed.summary_text()
        results[origin] = next(iter(midi_dataset.load_split(fixed, "train")))["notes"].numpy()
        # Encoded with the source's scale, the narrow piece no longer spans [-1, 1].
        assert results[origin][:, 0].max() < 1.0
    assert np.array_equal(*results.values())

    # The key hashes the statistics themselves: a changed folder builds anew.
    config["stats"] = {**source.stats, "maximum": [s + 12 for s in source.stats["maximum"]]}
    (weights_folder / "encoding.json").write_text(json.dumps(config))
    changed = midi_dataset.prepare(_params(other, tmp_path, transpose=0,
                                           encoding_from=str(weights_folder)), progress=False)
    assert changed.summary["reused"] is False and changed.stats == config["stats"]


def test_encoding_from_errors_name_the_folder_and_the_problem(mixed_folder, tmp_path):
    weights_folder = tmp_path / "weights"
    weights_folder.mkdir()
    cases = [(str(tmp_path / "nowhere"), "needs a weights folder")]
    (weights_folder / "encoding.json").write_text(json.dumps({"name": "onehot", "stats": {}}))
    cases.append((str(weights_folder), "for encoding 'onehot', not --encoding=seed_log"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "encoding.json").write_text("{not json")
    cases.append((str(corrupt), "cannot read the encoding statistics"))
    for folder, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            midi_dataset.prepare(_params(mixed_folder, tmp_path, encoding_from=folder),
                                 progress=False)
        assert str(error.value).startswith(folder) and "\n" not in str(error.value)
    assert not os.path.exists(tmp_path / "cache")  # nothing was read or built


def test_train_hop_overlaps_train_windows_and_leaves_the_test_split_alone(mixed_folder,
                                                                         tmp_path):
    params = _params(mixed_folder, tmp_path, transpose=0, hop=16)
    plain = midi_dataset.prepare(params, progress=False)
    dense = midi_dataset.prepare(params.replace(train_hop=4), progress=False)
    assert dense.cache_path != plain.cache_path
    # 50-note train pieces: starts 0..34 every 4 -> 9 windows each (hop 16: 3);
    # the 40-note test piece keeps hop 16 -> 2 windows either way.
    assert plain.summary["segments"] == {"train": 6, "test": 2}
    assert dense.summary["segments"] == {"train": 18, "test": 2}
    for split in ("train", "test"):
        assert dense.summary["examples"][split] == dense.summary["segments"][split]
    test_windows = [[e["notes"].numpy() for e in midi_dataset.load_split(p, "test")]
                    for p in (plain, dense)]
    np.testing.assert_array_equal(np.stack(test_windows[0]), np.stack(test_windows[1]))
    assert "hop=16 (train 4)" in dense.summary_text()
    assert "hop=16 max_beats" in plain.summary_text()
    # train_hop=0 leaves the key (and so every cache built before the field) alone;
    # the summary text reads such caches (the line above).
    assert "train_hop" not in midi_dataset.data_parameters(params)


def test_a_failed_build_leaves_no_cache_behind(mixed_folder, tmp_path, monkeypatch):
    params = _params(mixed_folder, tmp_path)

    def fail_while_saving(path, *args):
        os.makedirs(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(midi_dataset, "_save_split", fail_while_saving)
    with pytest.raises(KeyboardInterrupt):
        midi_dataset.prepare(params, progress=False)
    assert os.listdir(params.cache_dir) == []


def test_segments_and_transpositions():
    piece = expected_notes([(60 + i % 5, i * 0.5, 0.5, 80) for i in range(10)])
    windows = midi_dataset.segments_of(piece, 4, 3)
    assert len(windows) == 3  # starts 0, 3, 6; the remainder (note 9) dropped
    assert all(w[0, notes_lib.DELTA] == 0.0 for w in windows)
    np.testing.assert_array_equal(windows[1][1:], piece[4:7])
    assert midi_dataset.segments_of(piece, 11, 1) == []
    high = expected_notes([(126, 0, 1, 80), (2, 1, 1, 80)])
    assert midi_dataset.transpositions(high, 3) == [-2, -1, 0, 1]


# --- rendering ----------------------------------------------------------

def test_render_wav_is_audible_and_has_the_expected_length(tmp_path):
    import soundfile
    piece = expected_notes(MELODY)  # last note ends at beat 7 = 3.5 s at 120 bpm
    wav = render.render_wav(piece, tmp_path / "melody.wav", sample_rate=16000)
    audio, rate = soundfile.read(wav, dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    assert len(audio) == int(np.ceil((3.5 + render.DEFAULT_TAIL_SECONDS) * 16000))
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3
    assert np.abs(audio[: int(3.5 * 16000)]).max() > 0.01
    assert soundfile.info(wav).subtype == "PCM_16"

    midi_path = write_test_midi(tmp_path / "band.mid", [(0, 0, MELODY), (0, 9, [(36, 0, 1, 90)])],
                                tempos=((0, 60.0),))
    from_file = render.render_audio(midi_path, sample_rate=8000, tail_seconds=0.5)
    assert from_file.dtype == np.float32 and len(from_file) == int(np.ceil(7.5 * 8000))
    assert np.abs(from_file).max() > 0.01


def test_piano_roll_png_and_image(tmp_path):
    piece = expected_notes(MELODY)
    path = render.piano_roll_png(piece, tmp_path / "roll.png", title="melody")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    image = render.piano_roll_image(piece)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert render.piano_roll_image(notes_lib.empty()).shape == image.shape
