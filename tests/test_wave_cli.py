"""The waveform domain end to end through the CLIs: GTZAN tree -> train -> generate."""

import json
import os

import numpy as np
import pytest
import soundfile

from test_cli import run
from test_wave_data import CLIP, SEGMENT, build_gtzan_tree

TINY = ["--domain=wave", "--preset=wave_tiny", "--dataset=gtzan", f"--clip_samples={CLIP}",
        f"--segment_samples={SEGMENT}", "--progress=false"]


@pytest.fixture(scope="module")
def gtzan_weights(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave")
    build_gtzan_tree(work / "gtzan")
    weights = work / "weights"
    result = run("train.py", *TINY, f"--data_dir={work / 'gtzan'}",
                 f"--cache_dir={work / 'cache'}", f"--model_dir={work / 'model'}",
                 "--test_fraction=0.4", "--sample_every=4", f"--export={weights}")
    assert "exported EMA weights" in result.stdout
    assert "jazz.00054.wav" in result.stdout  # the corrupt file is reported, not fatal
    return weights


@pytest.mark.slow
def test_prepare_only_summarises_the_tree(tmp_path):
    build_gtzan_tree(tmp_path / "gtzan")
    result = run("train.py", *TINY, f"--data_dir={tmp_path / 'gtzan'}",
                 f"--cache_dir={tmp_path / 'cache'}", "--prepare_only")
    out = result.stdout
    assert "5 listed, 4 read, 1 skipped" in out and "7350 Hz" in out
    assert "jazz/jazz.00054.wav" in out
    caches = [name for name in os.listdir(tmp_path / "cache") if name.startswith("wave-")]
    assert len(caches) == 1
    assert {"train", "test", "stats.json", "summary.json"} <= set(
        os.listdir(tmp_path / "cache" / caches[0]))


@pytest.mark.slow
def test_generate_writes_wav_and_png_at_both_rates(gtzan_weights, tmp_path):
    params = json.loads((gtzan_weights / "params.json").read_text())
    assert params["domain"] == "wave"
    length = -(-SEGMENT // 3)

    out = tmp_path / "model_rate"
    result = run("generate.py", str(out), "--domain=wave", "--n=2",
                 f"--weights={gtzan_weights}", "--steps=3", "--progress=false")
    assert "wrote 2" in result.stdout
    assert sorted(os.listdir(out)) == ["sample_1.png", "sample_1.wav",
                                       "sample_2.png", "sample_2.wav"]
    audio, rate = soundfile.read(out / "sample_1.wav")
    assert rate == 7350 and audio.shape == (length,)
    assert np.all(np.abs(audio) <= 1.0) and np.std(audio) > 0
    before = (out / "sample_1.wav").read_bytes()

    refused = run("generate.py", str(out), "--domain=wave", "--n=2",
                  f"--weights={gtzan_weights}", "--steps=3", "--seed=5", check=False)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    assert (out / "sample_1.wav").read_bytes() == before

    high = tmp_path / "cd_rate"
    run("generate.py", str(high), "--domain=wave", "--n=1", f"--weights={gtzan_weights}",
        "--steps=3", "--sample_rate=22050", "--png=false", "--progress=false")
    assert os.listdir(high) == ["sample_1.wav"]
    audio_high, rate = soundfile.read(high / "sample_1.wav")
    assert rate == 22050 and abs(len(audio_high) - 3 * length) <= 3
    # same seed, same clip: the 22050 Hz file is the 7350 Hz one resampled
    np.testing.assert_allclose(audio_high[::3][:length], audio, atol=0.05)


@pytest.mark.slow
def test_tensorboard_shows_audio_and_spectrograms(gtzan_weights):
    from test_training import read_events

    events = read_events(gtzan_weights.parent / "model")
    tags = set(events.Tags()["tensors"])
    assert {"loss", "eval_loss_ema", "samples/audio", "samples/spectrogram"} <= tags
    audio = events.Tensors("samples/audio")[0].tensor_proto
    import tensorflow as tf
    encoded = tf.make_ndarray(audio)[0, 0]  # first clip, encoded WAV bytes
    assert encoded[:4] == b"RIFF"
    decoded, rate = tf.audio.decode_wav(encoded)
    assert int(rate) == 7350 and decoded.shape[0] == -(-SEGMENT // 3)


@pytest.mark.slow
def test_generate_refuses_weights_of_the_other_domain(gtzan_weights, tmp_path):
    result = run("generate.py", str(tmp_path / "out"), "--domain=midi",
                 f"--weights={gtzan_weights}", check=False)
    assert result.returncode != 0
    assert "wave" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_shipped_wave_weights_generate(tmp_path):
    """The README's waveform command, on the weights committed in weights/wave."""
    result = run("generate.py", str(tmp_path), "--domain=wave", "--n=1", "--steps=2",
                 "--progress=false")
    assert "wrote 1" in result.stdout
    audio, rate = soundfile.read(tmp_path / "sample_1.wav")
    assert rate == 7350 and audio.shape == (36667,)
    assert os.path.isfile(tmp_path / "sample_1.png")


@pytest.mark.slow
def test_missing_data_dir_is_one_line(tmp_path):
    missing = tmp_path / "no_such_gtzan"
    result = run("train.py", "--domain=wave", "--dataset=gtzan", f"--data_dir={missing}",
                 f"--cache_dir={tmp_path / 'cache'}", "--prepare_only", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(missing) in last
