"""Which earlier notes each note continues: voice-leading inputs for the U-Net."""

import keras
import numpy as np
from keras import ops

from models.layers import PITCH_CLASSES, interval_evidence

_PACKAGE = "music_diffusion"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VoiceFeatures(keras.layers.Layer):
    """The pitch of the notes that end where each note starts, read from the
    self-conditioning x_0 estimate.

    A voice that moves by step (a passing or neighbour note) starts its next
    note where its previous one ends; the network's samples make that step
    a third less often than Bach (README, "Voice leading"), and neither the
    row-before intervals (`IntervalFeatures`) nor width taught it. Here each
    note i is given the notes j whose end (onset + duration) equals its onset,
    so that "one semitone or two from the note that just ended" becomes a
    local input instead of a sum over a variable number of earlier rows.

    From the estimate (codes in [-1, 1], the `onehot` layout: pitch class,
    octave, duration class, onset-gap class, then any other groups): each
    duration and gap is its group's argmax value (the estimate carries no
    gradient, and exact rhythm values make "ends where i starts" an exact
    test), onsets are the gaps' running sum, and j feeds i where
    |onset_j + duration_j - onset_i| < half a grid step. Then, for each note:
      [0, 12)        mean pitch-class probabilities of the notes feeding it
      next O         their mean octave probabilities
      next 12        interval evidence (mod 12) of its own pitch class above
                     theirs (`interval_evidence`)
      last 1         1 if any note feeds it, else 0
    A note fed by none (the first notes, after rests, and every note of the
    all-zero estimate that a first pass sees: every gap the first class, 0,
    so every onset is 0 and every end later) gets zeros. Only earlier notes
    can end at a note's onset, so the layer is causal.

    Args:
        group_sizes: the encoding's one-hot group sizes; the first four are
            pitch class (12), octave, duration and onset gap.
        duration_values: beats of each duration class.
        gap_values: beats of each onset-gap class.
        tolerance: how far (beats) an end may be from an onset and still
            meet it; half of the 1/48-beat rhythm grid by default.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        estimate: float [batch, length, sum(group_sizes)] x_0 estimate.

    Returns:
        float32 [batch, length, 12 + octaves + 12 + 1].
    """

    def __init__(self, group_sizes, duration_values, gap_values, tolerance=1.0 / 96,
                 **kwargs):
        # Under a half-precision policy the argmax and the probabilities
        # still read the float32 estimate.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.group_sizes = tuple(int(size) for size in group_sizes)
        self.duration_values = tuple(float(value) for value in duration_values)
        self.gap_values = tuple(float(value) for value in gap_values)
        self.tolerance = float(tolerance)
        if len(self.group_sizes) < 4 or self.group_sizes[0] != PITCH_CLASSES:
            raise ValueError(f"VoiceFeatures needs the onehot layout (pitch class 12, "
                             f"octave, duration, gap); got groups {self.group_sizes}")
        if (self.group_sizes[2] != len(self.duration_values)
                or self.group_sizes[3] != len(self.gap_values)):
            raise ValueError(
                f"VoiceFeatures: {len(self.duration_values)} duration and "
                f"{len(self.gap_values)} gap values for groups of "
                f"{self.group_sizes[2]} and {self.group_sizes[3]}")
        self._starts = np.concatenate([[0], np.cumsum(self.group_sizes)]).tolist()

    @property
    def num_outputs(self) -> int:
        return 2 * PITCH_CLASSES + self.group_sizes[1] + 1

    def _group(self, estimate, index):
        return estimate[..., self._starts[index]:self._starts[index + 1]]

    def call(self, estimate):
        estimate = ops.cast(estimate, "float32")
        pitch_class = (self._group(estimate, 0) + 1.0) / 2.0
        octave = (self._group(estimate, 1) + 1.0) / 2.0
        durations = ops.take(ops.convert_to_tensor(np.float32(self.duration_values)),
                             ops.argmax(self._group(estimate, 2), axis=-1))
        gaps = ops.take(ops.convert_to_tensor(np.float32(self.gap_values)),
                        ops.argmax(self._group(estimate, 3), axis=-1))
        onsets = ops.cumsum(gaps, axis=1)
        ends = onsets + durations
        # feeds[b, i, j] = 1 where note j ends at note i's onset.
        feeds = ops.cast(ops.abs(ops.expand_dims(ends, 1) - ops.expand_dims(onsets, 2))
                         < self.tolerance, "float32")
        count = ops.sum(feeds, axis=-1, keepdims=True)
        weights = feeds / ops.maximum(count, 1.0)
        before_class = ops.matmul(weights, pitch_class)
        before_octave = ops.matmul(weights, octave)
        return ops.concatenate([before_class, before_octave,
                                interval_evidence(pitch_class, before_class),
                                ops.minimum(count, 1.0)], axis=-1)

    def compute_output_shape(self, estimate_shape):
        return (estimate_shape[0], estimate_shape[1], self.num_outputs)

    def get_config(self):
        config = super().get_config()
        config.update({"group_sizes": list(self.group_sizes),
                       "duration_values": list(self.duration_values),
                       "gap_values": list(self.gap_values),
                       "tolerance": self.tolerance})
        return config
