"""TensorBoard extras: samples as audio and piano rolls, hyperparameters, loss plot."""

import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

import params as params_lib
from data import midi_io, render
from training import sampling

SAMPLE_RATE = 16000  # enough for a piano-roll preview, small event files


def write_hparams(writer, params):
    """The run's Params in TensorBoard's HParams tab (tuples as strings)."""
    values = {key: (",".join(map(str, value)) if isinstance(value, list) else value)
              for key, value in params.to_dict().items()}
    with writer.as_default():
        hparams_api.hparams(values)


def write_samples(writer, step, model, params, encoding, n=2, seed=0, time_warp=None):
    """Samples from `model` (the EMA weights) as audio and images (piano rolls
    for MIDI, spectrograms for waveforms); time_warp as in sample_features."""
    features = sampling.sample_features(model, params, encoding, n, params.sampler,
                                        params.sample_steps, seed, time_warp=time_warp)
    if params.domain == "wave":
        return _write_wave_samples(writer, step, features, params, encoding, n)
    pieces = [encoding.decode(piece) for piece in features]
    images = np.stack([render.piano_roll_image(piece) for piece in pieces])
    clips = [render.render_audio(piece, sample_rate=SAMPLE_RATE) for piece in pieces]
    length = max(len(clip) for clip in clips)
    audio = np.stack([np.pad(clip, (0, length - len(clip))) for clip in clips])[..., None]
    with writer.as_default(step=step):
        tf.summary.image("samples/piano_roll", images, max_outputs=n)
        tf.summary.audio("samples/audio", audio.astype(np.float32), SAMPLE_RATE,
                         max_outputs=n)
    return pieces


def _write_wave_samples(writer, step, features, params, encoding, n):
    from data import spectrogram

    rate = params_lib.model_rate(params)
    clips = np.stack([encoding.decode(f) for f in features])
    images = np.stack([spectrogram.spectrogram_image(clip, rate) for clip in clips])
    with writer.as_default(step=step):
        tf.summary.image("samples/spectrogram", images, max_outputs=n)
        tf.summary.audio("samples/audio", clips[..., None].astype(np.float32), rate,
                         max_outputs=n)
    return clips


def save_loss_plot(path, history):
    """A PNG of the training and held-out loss curves (history: name -> [(step, value)])."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    for name, points in sorted(history.items()):
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=name)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with midi_io.atomic_output(path, suffix=".png") as temp_path:
        figure.savefig(temp_path, format="png")
    pyplot.close(figure)
    return os.path.abspath(path)
