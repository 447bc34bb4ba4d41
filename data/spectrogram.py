"""Looking at waveforms: log-magnitude spectrogram images and PNGs (matplotlib
Figures without pyplot, written atomically), the audio counterpart of the
piano rolls in render.py."""

import os

import numpy as np

from data import midi_io


def log_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int = 512):
    """(dB magnitudes [freqs, frames], frequencies Hz, frame times s)."""
    import librosa
    audio = np.asarray(audio, np.float32).reshape(-1)
    hop = n_fft // 4
    magnitude = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop))
    decibels = librosa.amplitude_to_db(magnitude, ref=1.0, amin=1e-5, top_db=90.0)
    frequencies = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    times = librosa.frames_to_time(np.arange(magnitude.shape[1]), sr=sample_rate,
                                   hop_length=hop)
    return decibels, frequencies, times


def _spectrogram_figure(audio, sample_rate, title=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    decibels, frequencies, times = log_spectrogram(audio, sample_rate)
    end = times[-1] if len(times) > 1 else len(audio) / sample_rate
    image = axes.imshow(decibels, origin="lower", aspect="auto", cmap="magma",
                        extent=[0.0, end, frequencies[0], frequencies[-1]], vmin=-90, vmax=0)
    figure.colorbar(image, ax=axes, label="dB")
    axes.set_xlabel("seconds")
    axes.set_ylabel("Hz")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure, canvas


def spectrogram_image(audio, sample_rate, title=None) -> np.ndarray:
    """The spectrogram as an RGB uint8 array [height, width, 3] (TensorBoard images)."""
    _, canvas = _spectrogram_figure(audio, sample_rate, title)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def spectrogram_png(audio, sample_rate, png_path, title=None) -> str:
    """Draws the log-magnitude spectrogram to a PNG, atomically."""
    figure, _ = _spectrogram_figure(audio, sample_rate, title)
    with midi_io.atomic_output(png_path, suffix=".png") as temp_path:
        figure.savefig(temp_path, format="png")
    return os.fspath(png_path)
