"""Waveform data: the anti-aliasing filter, audio decoding, GTZAN-shaped trees."""

import os
import re

import numpy as np
import pytest
import soundfile

import params as params_lib
from data import audio_io, dsp, render, wave_dataset
from data import notes as notes_lib

SR = 22050


def _tone(freq, seconds=2.0, sample_rate=SR):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def _level_db(signal, reference_rms=np.sqrt(0.5), trim=100):
    core = np.asarray(signal)[trim:-trim]
    return 20 * np.log10(np.sqrt(np.mean(core ** 2)) / reference_rms)


# --- filter --------------------------------------------------------------------

def test_centre_tap_is_two_fc_over_sr():
    taps = dsp.low_pass_taps(3675, SR, 128)
    assert taps.shape == (128,)
    assert taps[64] == pytest.approx(2 * 3675 / SR, abs=1e-12)
    assert taps[64] == taps.max()
    # symmetric about the centre (the extra tap of an even length aside)
    np.testing.assert_allclose(taps[65:], taps[63:0:-1], atol=1e-15)
    assert taps.sum() == pytest.approx(1.0, abs=2e-3)  # unit gain at DC


@pytest.mark.parametrize("freq", [100.0, 1000.0, 2500.0, 3200.0])
def test_passband_tone_keeps_its_level(freq):
    out = dsp.low_pass(_tone(freq), 3675, SR, 128, downsample=3).numpy()
    assert abs(_level_db(out)) < 0.5


@pytest.mark.parametrize("freq", [4500.0, 5000.0, 7000.0, 10000.0])
def test_stopband_tone_is_removed_before_it_aliases(freq):
    tone = _tone(freq)
    filtered = dsp.low_pass(tone, 3675, SR, 128, downsample=3).numpy()
    assert _level_db(filtered) < -40.0
    # Negative control: decimating without the filter keeps the alias at full level.
    assert _level_db(tone[::3]) > -1.0


def test_low_pass_equals_convolution_then_decimation():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(1001).astype(np.float32)
    taps = dsp.low_pass_taps(3675, SR, 128)
    full = np.convolve(signal.astype(np.float64), taps)  # y[k] = sum_n h[n] x[k - n]
    # taps[j] is h[n] with n = j - 64, so y at input sample k is full[k + 64].
    expected = full[64:64 + len(signal)][::3]
    out = dsp.low_pass(signal, 3675, SR, 128, downsample=3).numpy()
    assert out.shape == (len(expected),) == (-(-1001 // 3),)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_low_pass_batches_and_validates():
    batch = np.stack([_tone(1000, 0.1), _tone(6000, 0.1)])
    out = dsp.low_pass(batch, 3675, SR, 64, downsample=3).numpy()
    assert out.shape == (2, -(-batch.shape[1] // 3)) and out.dtype == np.float32
    with pytest.raises(ValueError, match="cut-off"):
        dsp.low_pass_taps(12000, SR)
    with pytest.raises(ValueError, match="taps"):
        dsp.low_pass_taps(1000, SR, 2)


# --- decoding -------------------------------------------------------------------------

def _music(seconds_of_notes=2.0, seed=0, sample_rate=SR):
    """Real instrument audio: random diatonic notes through the GM soundfont."""
    rng = np.random.default_rng(seed)
    count = int(seconds_of_notes * 4)
    notes = np.zeros([count, notes_lib.NUM_COLUMNS])
    notes[:, notes_lib.PITCH] = rng.choice([60, 62, 64, 65, 67, 69, 71, 72], count)
    notes[:, notes_lib.DURATION] = 0.5
    notes[1:, notes_lib.DELTA] = 0.5
    notes[:, notes_lib.VELOCITY] = 90
    return render.render_audio(notes, sample_rate=sample_rate, tempo_bpm=120)


def test_read_audio_pcm16_stereo_resampled_and_au(tmp_path):
    tone = _tone(440, 1.0, 44100)
    stereo = np.stack([tone, 0.5 * tone], axis=1)
    path = tmp_path / "stereo44k.wav"
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    audio = audio_io.read_audio(path, SR)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SR) <= 2
    assert np.sqrt(np.mean(audio[1000:-1000] ** 2)) == pytest.approx(0.75 * np.sqrt(0.5),
                                                                     rel=0.02)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) * SR / len(audio) == pytest.approx(440, abs=2)

    au_path = tmp_path / "tone.au"
    soundfile.write(au_path, _tone(440, 0.5), SR, format="AU", subtype="PCM_16")
    np.testing.assert_allclose(audio_io.read_audio(au_path, SR), _tone(440, 0.5), atol=1e-4)


def test_read_audio_errors_name_the_file(tmp_path):
    broken = tmp_path / "jazz.00054.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wave file")
    with pytest.raises(audio_io.AudioReadError, match="jazz.00054.wav") as error:
        audio_io.read_audio(broken, SR)
    assert "not a readable audio file" in error.value.reason
    with pytest.raises(audio_io.AudioReadError, match="no such file"):
        audio_io.read_audio(tmp_path / "missing.wav", SR)


def test_write_wav_is_atomic_and_clips(tmp_path):
    path = tmp_path / "out.wav"
    audio_io.write_wav(path, np.array([0.0, 0.5, 2.0, -3.0]), 7350)
    data, rate = soundfile.read(path)
    assert rate == 7350
    np.testing.assert_allclose(data, [0.0, 0.5, 1.0, -1.0], atol=1e-4)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


# --- GTZAN-shaped trees -------------------------------------------------------------

SEGMENT = 6000  # small segments keep the tests fast; the seed's is 110,000
CLIP = 24000


def build_gtzan_tree(root, kaggle=True):
    """Two genres x two clips of real (soundfont) audio, plus the corrupt jazz.00054."""
    base = root / ("Data/genres_original" if kaggle else "genres")
    extension = ".wav" if kaggle else ".au"
    lengths = {}
    for g, genre in enumerate(["blues", "jazz"]):
        (base / genre).mkdir(parents=True)
        for i in range(2):
            audio = _music(1.0 + i, seed=10 * g + i)
            name = f"{genre}.0000{i}{extension}"
            if kaggle:
                soundfile.write(base / genre / name, audio, SR, subtype="PCM_16")
            else:
                soundfile.write(base / genre / name, audio, SR, format="AU", subtype="PCM_16")
            lengths[f"{genre}/{name}"] = len(audio)
    (base / "jazz" / f"jazz.00054{extension}").write_bytes(b"\x00" * 100)
    return lengths


def _gtzan_params(root, cache_dir, **changes):
    return params_lib.get_preset("wave_gtzan").replace(
        data_dir=str(root), cache_dir=str(cache_dir), segment_samples=SEGMENT,
        clip_samples=CLIP, test_fraction=0.0, **changes)


@pytest.mark.parametrize("kaggle", [True, False], ids=["kaggle_wav", "original_au"])
def test_gtzan_tree_is_prepared(tmp_path, kaggle):
    lengths = build_gtzan_tree(tmp_path / "gtzan", kaggle)
    params = _gtzan_params(tmp_path / "gtzan", tmp_path / "cache")
    prepared = wave_dataset.prepare(params, progress=False)
    summary = prepared.summary
    assert summary["labels"] == ["blues", "jazz"]
    assert summary["files_read"] == 4 and summary["files_skipped"] == 1
    assert summary["skipped"][0]["file"].endswith("jazz/jazz.00054" + (".wav" if kaggle else ".au"))
    # every full segment of the first CLIP samples is used (the seed dropped one)
    expected = sum(min(n, CLIP) // SEGMENT for n in lengths.values())
    assert prepared.num_examples("train") == expected
    length = -(-SEGMENT // 3)
    assert prepared.segment_length == length and prepared.model_rate == 7350
    elements = list(wave_dataset.load_split(prepared, "train", scaled=False).as_numpy_iterator())
    assert len(elements) == expected
    assert all(e["audio"].shape == (length, 1) and e["audio"].dtype == np.float32
               for e in elements)
    assert sorted({int(e["label"]) for e in elements}) == [0, 1]
    raw = np.concatenate([e["audio"] for e in elements])
    scaled = np.concatenate([e["audio"] for e in
                             wave_dataset.load_split(prepared, "train").as_numpy_iterator()])
    np.testing.assert_allclose(scaled, raw * prepared.encoding.gain, rtol=1e-6)
    assert np.sqrt(np.mean(scaled.astype(np.float64) ** 2)) == pytest.approx(0.5, rel=1e-3)
    text = prepared.summary_text()
    assert "skipped jazz/jazz.00054" in text and "7350 Hz" in text

    again = wave_dataset.prepare(params, progress=False)
    assert again.summary["reused"] and again.cache_path == prepared.cache_path


def test_segments_match_the_seed_numbers():
    params = params_lib.get_preset("wave_gtzan")
    audio = np.zeros(661794, np.float32)  # a 30.01 s GTZAN clip
    segments = wave_dataset.segments_of(audio, params)
    assert segments.shape == (6, 110000)
    assert params_lib.sample_length(params) == 36667 and params_lib.model_rate(params) == 7350


def test_folder_without_audio_fails_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    params = params_lib.get_preset("wave_cpu").replace(
        dataset="folder", data_dir=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="no training segments of 110000 samples in "
                       f"dataset 'folder' at {re.escape(str(tmp_path / 'empty'))} \\(0 files read"):
        wave_dataset.prepare(params, progress=False)
    with pytest.raises(ValueError, match="needs --data_dir"):
        wave_dataset.prepare(params.replace(data_dir=""), progress=False)
