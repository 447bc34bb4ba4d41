"""The waveform seed's DiffWave-style network (Kong et al. 2021), for comparison.

Every layer runs at the full sample rate with `residual_channels` channels:
at 13 x 64 about 16 G multiply-adds (32 GFLOP) per 4.99 s clip at 7350 Hz
(REFERENCE.md quotes 20 GFLOP for the seed's own net).
"""

import math

import keras
from keras import ops

from models.layers import Denoiser, TimeEmbedding


@keras.saving.register_keras_serializable(package="music_diffusion")
class DiffWave(Denoiser):
    """Dilated residual network with gated activations and a skip sum.

    Layer i: h + time projection -> dilated conv (2C, kernel 3, dilation
    2 ** (i % dilation_cycle)) -> tanh * sigmoid -> 1x1 conv (2C) split into a
    residual ((h + res) / sqrt 2) and a skip; output = conv(relu(conv(
    sum of skips / sqrt(layers)))).

    Args:
        features: channels of x_t and of the output.
        residual_channels: C, the width of every layer.
        residual_layers: number of dilated layers (the seed: 13).
        dilation_cycle: dilations restart after this many layers.
        time_dim: width of the diffusion-time embedding.
        **kwargs: base `keras.Model` arguments.

    Call arguments:
        inputs: `[x_t, t]`: x_t float [batch, samples, features], t [batch].

    Returns:
        float32 [batch, samples, features].
    """

    def __init__(self, features=1, residual_channels=64, residual_layers=13,
                 dilation_cycle=13, time_dim=128, **kwargs):
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.features = int(features)
        self.residual_channels = int(residual_channels)
        self.residual_layers = int(residual_layers)
        self.dilation_cycle = int(dilation_cycle)
        self.time_dim = int(time_dim)
        policy = self.dtype_policy
        channels = self.residual_channels
        self.time_embedding = TimeEmbedding(self.time_dim, dtype=policy, name="time_embedding")
        self.input_conv = keras.layers.Conv1D(channels, 1, activation="relu", dtype=policy,
                                              name="input_conv")
        self.time_projections, self.dilated_convs, self.output_convs = [], [], []
        for i in range(self.residual_layers):
            self.time_projections.append(keras.layers.Dense(channels, dtype=policy,
                                                            name=f"layer{i}_time"))
            self.dilated_convs.append(keras.layers.Conv1D(
                2 * channels, 3, padding="same", dilation_rate=2 ** (i % self.dilation_cycle),
                dtype=policy, name=f"layer{i}_dilated"))
            self.output_convs.append(keras.layers.Conv1D(2 * channels, 1, dtype=policy,
                                                         name=f"layer{i}_output"))
        self.skip_conv = keras.layers.Conv1D(channels, 1, activation="relu", dtype=policy,
                                             name="skip_conv")
        self.final_conv = keras.layers.Conv1D(self.features, 1, dtype="float32",
                                              kernel_initializer="zeros", name="final_conv")

    def build(self, input_shape):
        x_shape, t_shape = input_shape
        self.call([keras.KerasTensor((x_shape[0], 8, x_shape[-1])),
                   keras.KerasTensor(tuple(t_shape))])
        self.built = True

    def call(self, inputs, training=None):
        x_t, t = inputs
        time_embedding = self.time_embedding(t)
        h = self.input_conv(x_t)
        skips = 0.0
        for projection, dilated, output in zip(self.time_projections, self.dilated_convs,
                                               self.output_convs):
            y = dilated(h + projection(time_embedding)[:, None, :])
            gate, filt = ops.split(y, 2, axis=-1)
            y = output(ops.sigmoid(gate) * ops.tanh(filt))
            residual, skip = ops.split(y, 2, axis=-1)
            h = (h + residual) / math.sqrt(2.0)
            skips = skips + skip
        h = self.skip_conv(skips / math.sqrt(self.residual_layers))
        return ops.cast(self.final_conv(h), "float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "features": self.features,
            "residual_channels": self.residual_channels,
            "residual_layers": self.residual_layers,
            "dilation_cycle": self.dilation_cycle,
            "time_dim": self.time_dim,
        })
        return config
