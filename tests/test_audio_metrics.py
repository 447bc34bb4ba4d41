"""Fast tests of metrics/audio.py and evaluate.py --domain=wave on synthetic audio."""

import io
import json
import os
import sys

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile

import evaluate
from data import audio_io
from metrics import audio as audio_metrics

RATE = 7350  # the model rate


PENTATONIC = 220.0 * 2.0 ** (np.array([0, 2, 4, 7, 9, 12]) / 12)


def harmonic_clip(rng, seconds=1.0, rate=RATE):
    """A 'real' clip: the notes of one pentatonic scale (five decaying partials
    each) at random levels and phases, a slow tremolo and a little noise. The
    clips differ but share one spectral family, so two small sets are close."""
    t = np.arange(int(seconds * rate)) / rate
    clip = 3e-3 * rng.standard_normal(len(t))
    for f0 in PENTATONIC:
        level = rng.uniform(0.2, 1.0)
        for k in range(1, 6):
            if f0 * k < rate / 2:
                clip += 0.04 * level / k * np.sin(2 * np.pi * f0 * k * t
                                                  + rng.uniform(0, 2 * np.pi))
    return clip * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))


def gaussian_rows(rng, mean, cov, n):
    return rng.multivariate_normal(mean, cov, size=n)


# --- log-mel -----------------------------------------------------------------

def test_log_mel_frames_shape_dtype_and_layouts():
    rng = np.random.default_rng(0)
    clip = rng.standard_normal(RATE).astype(np.float32)
    frames = audio_metrics.log_mel_frames(clip, RATE)
    assert frames.dtype == np.float64
    assert frames.shape == (audio_metrics.frame_count(RATE), 64)
    assert frames.shape[0] == 1 + (RATE - 1024) // 256
    # [samples, 1] (the dataset layout) gives the same frames.
    np.testing.assert_allclose(audio_metrics.log_mel_frames(clip[:, None], RATE), frames)
    assert audio_metrics.log_mel_frames(clip, RATE, n_mels=32, hop=512).shape == (
        1 + (RATE - 1024) // 512, 32)
    # Shorter than one FFT frame: no rows; silence: the log floor.
    assert audio_metrics.log_mel_frames(clip[:500], RATE).shape == (0, 64)
    silent = audio_metrics.log_mel_frames(np.zeros(2048), RATE)
    np.testing.assert_allclose(silent, np.log(1e-10))


def test_log_mel_tone_lands_in_its_band():
    t = np.arange(RATE) / RATE
    low = audio_metrics.log_mel_frames(np.sin(2 * np.pi * 200 * t), RATE).mean(axis=0)
    high = audio_metrics.log_mel_frames(np.sin(2 * np.pi * 3000 * t), RATE).mean(axis=0)
    assert np.argmax(low) < np.argmax(high)
    assert np.argmax(high) >= 55  # near the top of the 0-3675 Hz mel range


# --- Frechet distance ------------------------------------------------------------

def test_frechet_distance_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    rows = gaussian_rows(rng, np.zeros(8), np.diag(np.arange(1.0, 9.0)), 500)
    assert audio_metrics.frechet_distance(rows, rows) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_mean_shift_matches_closed_form():
    rng = np.random.default_rng(2)
    rows = rng.standard_normal((400, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    # Same covariance exactly (a shifted copy): FD = |mu_a - mu_b|^2.
    assert audio_metrics.frechet_distance(rows, rows + shift) == pytest.approx(
        float(shift @ shift), rel=1e-6)


def test_frechet_distance_diagonal_covariances_match_closed_form():
    # Diagonal covariances: FD = |mu1-mu2|^2 + sum (sigma1 - sigma2)^2 (std devs).
    rng = np.random.default_rng(3)
    n, d = 20000, 4
    mu1, mu2 = np.zeros(d), np.array([0.5, 0.0, -1.0, 2.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.0, 1.0, 1.5, 3.0])
    a = mu1 + s1 * rng.standard_normal((n, d))
    b = mu2 + s2 * rng.standard_normal((n, d))
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2))  # 5.25 + 6.0
    assert audio_metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.03)
    # Symmetric.
    assert audio_metrics.frechet_distance(b, a) == pytest.approx(
        audio_metrics.frechet_distance(a, b), rel=1e-6)


def test_frechet_distance_survives_constant_features_and_checks_shapes():
    rng = np.random.default_rng(4)
    constant = np.full((50, 3), -23.0)  # e.g. silence at the log floor
    value = audio_metrics.frechet_distance(constant, rng.standard_normal((50, 3)))
    assert np.isfinite(value) and value > 3 * 23.0 ** 2 * 0.9
    with pytest.raises(ValueError):
        audio_metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        audio_metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# --- KID --------------------------------------------------------------------------

def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((600, 8))
    b = rng.standard_normal((600, 8))
    c = rng.standard_normal((600, 8)) * 1.5 + 0.5
    same, same_std = audio_metrics.kernel_inception_distance(a, b, 200, 20, seed=0)
    diff, diff_std = audio_metrics.kernel_inception_distance(a, c, 200, 20, seed=0)
    assert abs(same) < 4 * same_std + 1e-3
    assert diff > 3 * diff_std and diff > 10 * (abs(same) + same_std)
    # Seeded: the same seed gives the same numbers.
    assert audio_metrics.kernel_inception_distance(a, c, 200, 20, seed=0) == (diff, diff_std)


def test_kid_is_unbiased_mmd_with_cubic_kernel():
    # One subset holding all rows: compare with a direct double loop.
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)) + 1.0
    k = lambda u, v: (u @ v / 3 + 1.0) ** 3
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    mean, std = audio_metrics.kernel_inception_distance(x, y, subset_size=100, subsets=3)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-9) and std == pytest.approx(0.0)


# --- spectral flatness -------------------------------------------------------------

def test_spectral_flatness_white_noise_vs_tone():
    rng = np.random.default_rng(7)
    white = audio_metrics.spectral_flatness(rng.standard_normal(2 * RATE), RATE)
    t = np.arange(2 * RATE) / RATE
    tone = audio_metrics.spectral_flatness(np.sin(2 * np.pi * 440 * t), RATE)
    assert white.shape == (audio_metrics.frame_count(2 * RATE),)
    # Periodogram bins of white noise are exponential: E[ln P] - ln E[P] = -gamma.
    assert np.median(white) == pytest.approx(np.exp(-np.euler_gamma), abs=0.03)
    assert np.median(tone) < 1e-3
    distance = audio_metrics.flatness_distance(white, tone)
    assert distance["wasserstein_log10"] > 2.0  # decades apart
    assert distance["median_a"] == pytest.approx(np.median(white), rel=0.05)
    assert audio_metrics.flatness_distance(white, white)["wasserstein_log10"] == 0.0


# --- shaped noise -----------------------------------------------------------------

def test_shaped_noise_follows_a_low_passed_reference():
    rng = np.random.default_rng(8)
    sos = scipy.signal.butter(10, 500.0, fs=RATE, output="sos")
    reference = [0.3 * scipy.signal.sosfiltfilt(sos, rng.standard_normal(RATE))
                 for _ in range(6)]
    noise = audio_metrics.shaped_noise(reference, n=4, length=5000, seed=0)
    assert noise.shape == (4, 5000)
    # Loudness: every clip at the references' pooled RMS.
    np.testing.assert_allclose(np.sqrt(np.mean(noise ** 2, axis=1)),
                               audio_metrics.rms(reference), rtol=1e-9)
    # Shape: the energy above 1 kHz (twice the cut-off) is > 30 dB below the total.
    power = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    freqs = np.fft.rfftfreq(5000, 1.0 / RATE)
    above = power[:, freqs > 1000.0].sum() / power.sum()
    assert 10 * np.log10(above) < -30.0
    # Seeded and Gaussian-ish (not a copy of the reference).
    np.testing.assert_array_equal(noise, audio_metrics.shaped_noise(reference, 4, 5000, 0))
    assert not np.array_equal(noise, audio_metrics.shaped_noise(reference, 4, 5000, 1))


# --- evaluate_sets / evaluate.py --domain=wave ----------------------------------------

def test_evaluate_sets_ranks_real_above_noise_and_caps_frames():
    rng = np.random.default_rng(9)
    reference = [harmonic_clip(rng) for _ in range(6)]
    real = [harmonic_clip(rng) for _ in range(6)]
    noise = [0.1 * rng.standard_normal(RATE) for _ in range(6)]
    scores = audio_metrics.evaluate_sets({"real": real, "noise": noise}, reference, RATE,
                                         seed=0, max_frames=100, kid_subsets=5)
    assert set(scores) == {"real", "noise"}
    for row in scores.values():
        assert row["clips"] == 6
        assert row["frames"] == 6 * audio_metrics.frame_count(RATE)
        assert row["frames_used"] == 100
    assert scores["noise"]["fd"] > 3 * scores["real"]["fd"]
    assert scores["noise"]["kid"] > scores["real"]["kid"]
    assert scores["noise"]["flatness_w1"] > scores["real"]["flatness_w1"]
    again = audio_metrics.evaluate_sets({"noise": noise, "real": real}, reference, RATE,
                                        seed=0, max_frames=100, kid_subsets=5)
    assert again["real"] == scores["real"]  # a set's draws do not depend on its place


def write_folder(folder, rng, count, rate=RATE, noise=True):
    """`count` one-second clips (white noise, or harmonic_clip made at the model
    rate and resampled to `rate`) as 16-bit WAV files at `rate`."""
    folder.mkdir()
    for i in range(count):
        clip = 0.2 * rng.standard_normal(RATE) if noise else harmonic_clip(rng)
        if rate != RATE:
            clip = librosa.resample(clip, orig_sr=RATE, target_sr=rate)
        soundfile.write(str(folder / f"clip{i}.wav"), clip.astype(np.float32), rate,
                        subtype="PCM_16")
    return folder


def test_evaluate_wave_folder_writes_rows_and_verdict(tmp_path):
    rng = np.random.default_rng(10)
    train = [harmonic_clip(rng).astype(np.float32)[:, None] for _ in range(8)]
    test = [harmonic_clip(rng).astype(np.float32) for _ in range(6)]
    folder = write_folder(tmp_path / "noisy", rng, 3)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "notes.txt").write_text("not audio")
    out = io.StringIO()
    json_path = tmp_path / "out" / "eval.json"
    payload = evaluate.evaluate_wave_folder(str(folder), train, test, RATE, str(json_path),
                                            seed=0, out=out)
    text = out.getvalue()
    assert "skipped broken.wav:" in text and "notes.txt" not in text
    saved = json.loads(json_path.read_text())
    names = [row["set"] for row in saved["rows"]]
    assert names == ["held-out vs train (floor)", "held-out vs train n=3 (floor)",
                     "noise shaped to train spectrum (ceiling)", "generated: noisy"]
    rows = {row["set"]: row for row in saved["rows"]}
    floor, generated = rows["held-out vs train (floor)"], rows["generated: noisy"]
    assert floor["clips"] == 8 and generated["clips"] == 3
    assert rows["noise shaped to train spectrum (ceiling)"]["clips"] == 6
    # White noise is much further from the held-out harmonics than real train clips.
    assert generated["fd"] > 3 * floor["fd"]
    assert generated["kid"] > floor["kid"]
    assert generated["flatness_median"] > 0.3 > floor["flatness_median"]
    assert saved["fd_position"] > 1 and "beyond the ceiling" in text
    assert "closer to the ceiling" in saved["verdict"]
    assert saved["files"] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert saved["skipped"][0]["file"] == "broken.wav"
    assert saved["reference"]["train_clips"] == 8 and saved["sample_rate"] == RATE
    assert payload["rows"][-1]["set"] == "generated: noisy"
    assert not [n for n in os.listdir(json_path.parent) if n.endswith(".tmp")]


def test_evaluate_wave_folder_resamples_and_caps_reference(tmp_path):
    rng = np.random.default_rng(11)
    train = [harmonic_clip(rng) for _ in range(5)]
    test = [harmonic_clip(rng) for _ in range(5)]
    # Real-like clips written at 22050 Hz: read back at the model rate.
    folder = write_folder(tmp_path / "tonal", rng, 4, rate=22050, noise=False)
    clip = audio_io.read_audio(str(folder / "clip0.wav"), RATE)
    assert clip.dtype == np.float32 and abs(len(clip) - RATE) <= 1
    out = io.StringIO()
    evaluate.evaluate_wave_folder(str(folder), train, test, RATE, seed=1, max_reference=3,
                                  out=out)
    saved = json.loads((folder / "evaluation.json").read_text())
    assert saved["reference"]["train_clips"] == 3 and saved["reference"]["test_clips"] == 3
    assert saved["max_reference"] == 3
    # No size-matched floor when there are more generated clips than train ones.
    assert [r["set"] for r in saved["rows"]] == [
        "held-out vs train (floor)", "noise shaped to train spectrum (ceiling)",
        "generated: tonal"]
    assert saved["fd_position"] < 0.5 and "closer to the floor" in out.getvalue()


def test_evaluate_wave_folder_without_wav_files(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "x.mid").write_bytes(b"")
    with pytest.raises(ValueError, match="no readable .wav"):
        evaluate.evaluate_wave_folder(str(folder), [np.zeros(RATE)], [np.zeros(RATE)],
                                      RATE, out=io.StringIO())
    with pytest.raises(FileNotFoundError):
        evaluate.evaluate_wave_folder(str(tmp_path / "missing"), [], [], RATE)


class FakeSplit:
    """Stands in for a tf.data.Dataset of {"audio": [L, 1], "label"} dicts."""

    def __init__(self, clips):
        self.clips = clips

    def as_numpy_iterator(self):
        return iter([{"audio": c.astype(np.float32)[:, None], "label": np.int32(0)}
                     for c in self.clips])


def test_evaluate_wave_loads_reference_through_wave_dataset(tmp_path, monkeypatch):
    import types

    import data
    import params as params_lib

    rng = np.random.default_rng(12)
    splits = {"train": [harmonic_clip(rng) for _ in range(6)],
              "test": [harmonic_clip(rng) for _ in range(5)]}
    prepared = types.SimpleNamespace(model_rate=RATE,
                                     num_examples=lambda split: len(splits[split]))
    calls = []

    def prepare(params, progress=True):
        calls.append(params.domain)
        return prepared

    def load_split(p, split, scaled=True):
        assert p is prepared and scaled is False  # raw audio, not model features
        return FakeSplit(splits[split])

    fake = types.SimpleNamespace(prepare=prepare, load_split=load_split)
    monkeypatch.setitem(sys.modules, "data.wave_dataset", fake)
    monkeypatch.setattr(data, "wave_dataset", fake, raising=False)
    folder = write_folder(tmp_path / "gen", rng, 2, noise=False)
    params = params_lib.get_preset("wave_tiny").replace(seed=3)
    with pytest.raises(ValueError, match="no .wav files"):  # before preparing data
        evaluate.evaluate_wave(str(tmp_path), params)
    assert calls == []
    payload = evaluate.evaluate_wave(str(folder), params, max_reference=4)
    assert calls == ["wave"]
    assert payload["reference"]["train_clips"] == 4
    assert payload["reference"]["test_clips"] == 4
    # The streamed subset is the one evaluate_wave_folder would have drawn.
    kept = evaluate._subset(splits["train"], 4, [3, 2])
    direct = evaluate.evaluate_wave_folder(str(folder), splits["train"], splits["test"],
                                           RATE, str(tmp_path / "d.json"), seed=3,
                                           max_reference=4, out=io.StringIO())
    # (the fake dataset holds float32 clips, as the real one does)
    for mine, theirs in zip(payload["rows"], direct["rows"]):
        assert mine["set"] == theirs["set"] and mine["clips"] == theirs["clips"]
        assert mine["fd"] == pytest.approx(theirs["fd"], rel=1e-5)
    assert payload["reference"]["train_rms"] == pytest.approx(audio_metrics.rms(kept),
                                                              rel=1e-6)
    assert payload["params"]["domain"] == "wave"
