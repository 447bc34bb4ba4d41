"""Waveform scaling: raw audio in [-1, 1] <-> model features float32 [L, 1].

Rendered or recorded music is quiet on average (RMS around 0.1) and peaks
rarely, so min-max scaling would leave most samples near 0. The training
split's RMS sets one gain that brings the data to RMS 0.5, the spread of
images in [-1, 1] for which the noise schedules were designed. The gain
travels with the weights (get_config) like every encoding's statistics.
"""

import numpy as np

from data import encodings

TARGET_RMS = 0.5


@encodings.register_encoding
class WaveformScaling(encodings.NoteEncoding):
    """Audio samples times a gain fitted on the training split."""

    name = "waveform"
    num_features = 1

    @property
    def gain(self) -> float:
        self._require_stats()
        return float(self.stats["gain"])

    def fit_rms(self, sum_of_squares: float, count: int) -> dict:
        """Statistics from the training split's sum of squared samples."""
        if count <= 0:
            raise ValueError("cannot fit the waveform gain on an empty training split")
        rms = float(np.sqrt(sum_of_squares / count))
        self.stats = {"rms": rms, "gain": TARGET_RMS / max(rms, 1e-4),
                      "target_rms": TARGET_RMS}
        return self.stats

    def encode(self, audio) -> np.ndarray:
        audio = np.asarray(audio, np.float32).reshape(-1, 1)
        return (audio * self.gain).astype(np.float32)

    def decode(self, features) -> np.ndarray:
        """Mono float32 audio in [-1, 1]."""
        audio = np.asarray(features, np.float32).reshape(-1) / self.gain
        return np.clip(audio, -1.0, 1.0)
