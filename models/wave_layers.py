"""Building blocks of the waveform denoisers (non-causal: a clip is denoised whole)."""

import keras
from keras import ops

_PACKAGE = "music_diffusion"


def _groups(channels, preferred=8):
    """The largest group count <= preferred that divides `channels`."""
    for groups in range(min(preferred, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WaveResBlock(keras.layers.Layer):
    """GroupNorm-SiLU-conv residual block with a per-channel time scale and shift.

    h = conv(silu(norm(x))); h = norm(h) * (1 + scale(t)) + shift(t);
    out = skip(x) + conv(silu(h)), with skip a 1x1 conv when the width changes.

    Args:
        channels: output channels.
        kernel_size: kernel of both convolutions.
        dropout: dropout before the second convolution.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, in_channels].
        time_embedding: [batch, time_dim].
        training: whether dropout is active.

    Returns:
        [batch, length, channels].
    """

    def __init__(self, channels, kernel_size=3, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)

    def build(self, inputs_shape, time_embedding_shape):
        policy = self.dtype_policy
        in_channels = inputs_shape[-1]
        out_shape = tuple(inputs_shape[:-1]) + (self.channels,)
        self.norm1 = keras.layers.GroupNormalization(_groups(in_channels), dtype=policy,
                                                     name="norm1")
        self.conv1 = keras.layers.Conv1D(self.channels, self.kernel_size, padding="same",
                                         dtype=policy, name="conv1")
        self.time_projection = keras.layers.Dense(2 * self.channels, dtype=policy,
                                                  name="time_projection")
        self.norm2 = keras.layers.GroupNormalization(_groups(self.channels), dtype=policy,
                                                     name="norm2")
        self.drop = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.conv2 = keras.layers.Conv1D(self.channels, self.kernel_size, padding="same",
                                         dtype=policy, name="conv2")
        self.norm1.build(inputs_shape)
        self.conv1.build(inputs_shape)
        self.time_projection.build(time_embedding_shape)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        self.skip = None
        if in_channels != self.channels:
            self.skip = keras.layers.Conv1D(self.channels, 1, dtype=policy, name="skip")
            self.skip.build(inputs_shape)
        self.built = True

    def call(self, inputs, time_embedding, training=None):
        h = self.conv1(ops.silu(self.norm1(inputs)))
        scale, shift = ops.split(self.time_projection(time_embedding), 2, axis=-1)
        h = self.norm2(h) * (1.0 + scale[:, None, :]) + shift[:, None, :]
        h = self.conv2(self.drop(ops.silu(h), training=training))
        residual = inputs if self.skip is None else self.skip(inputs)
        return residual + h

    def compute_output_shape(self, inputs_shape, time_embedding_shape=None):
        return tuple(inputs_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "kernel_size": self.kernel_size,
                       "dropout": self.dropout})
        return config
