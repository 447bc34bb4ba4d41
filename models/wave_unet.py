"""1-D waveform U-Net: most of the work at coarse resolution.

Raw audio is the most compute-hungry domain: the waveform seed's DiffWave runs
64 channels at the full sample rate (20 GFLOP per 4.99 s clip). Here the
full-rate stage has few channels and each strided stage divides the length by
its factor while at most doubling the width, so every stage costs about the
same and the network's cost is a few full-rate convolutions' worth.
"""

import math

import keras
from keras import ops

from models.layers import Denoiser, SelfAttentionBlock, TimeEmbedding
from models.wave_layers import WaveResBlock, _groups


@keras.saving.register_keras_serializable(package="music_diffusion")
class WaveUNet(Denoiser):
    """Waveform denoiser with strided down/up-sampling residual stages.

    Layout: input conv at full rate -> `res_blocks` WaveResBlocks (skip) ->
    per stage i: strided conv (factor down_factors[i]) -> `res_blocks`
    WaveResBlocks (+ self-attention in the `attention_stages` coarsest
    stages) (skip) -> mid: block, attention, block -> the stages mirrored
    (concat skip, blocks, nearest upsampling + conv) -> norm, SiLU, conv out.
    The time embedding enters every block as a per-channel scale and shift.
    Inputs of any length work: they are zero-padded at the end to a multiple
    of prod(down_factors) and the output is cropped back.

    Args:
        features: channels of x_t and of the output (1 for mono audio; 2 with
            self-conditioning input is handled by the caller's concat).
        input_channels: channels at the full sample rate.
        input_kernel: kernel of the input and output convolutions.
        stage_channels: channels of each strided stage.
        stage_kernels: conv kernel of each stage's blocks.
        down_factors: stride of each stage's downsampling.
        res_blocks: residual blocks per stage (and at full rate).
        attention_stages: how many of the coarsest stages get self-attention.
        attention_heads: heads of every attention block.
        time_dim: width of the diffusion-time embedding.
        dropout: dropout inside residual and attention blocks.
        **kwargs: base `keras.Model` arguments (name, dtype, ...).

    Call arguments:
        inputs: `[x_t, t]`: x_t float [batch, samples, channels], t float [batch].
        training: whether dropout is active.

    Returns:
        float32 [batch, samples, features].
    """

    def __init__(self, features=1, input_channels=16, input_kernel=7,
                 stage_channels=(32, 64, 128, 256), stage_kernels=(3, 3, 3, 3),
                 down_factors=(4, 4, 4, 4), res_blocks=2, attention_stages=1,
                 attention_heads=4, time_dim=128, dropout=0.0, **kwargs):
        kwargs["autocast"] = False  # keep t in float32 (see CausalUNet)
        super().__init__(**kwargs)
        self.features = int(features)
        self.input_channels = int(input_channels)
        self.input_kernel = int(input_kernel)
        self.stage_channels = tuple(int(c) for c in stage_channels)
        self.stage_kernels = tuple(int(k) for k in stage_kernels)
        self.down_factors = tuple(int(f) for f in down_factors)
        self.res_blocks = int(res_blocks)
        self.attention_stages = int(attention_stages)
        self.attention_heads = int(attention_heads)
        self.time_dim = int(time_dim)
        self.dropout = float(dropout)
        if not (len(self.stage_channels) == len(self.stage_kernels) == len(self.down_factors)):
            raise ValueError(
                f"stage_channels {self.stage_channels}, stage_kernels {self.stage_kernels} "
                f"and down_factors {self.down_factors} need one entry per stage")
        if not self.stage_channels or self.res_blocks < 1:
            raise ValueError("WaveUNet needs at least one stage and one block per stage")

        policy = self.dtype_policy
        widths = (self.input_channels,) + self.stage_channels
        # Full-rate blocks use kernel 3: the input conv already sees input_kernel.
        kernels = (3,) + self.stage_kernels
        first_attention = len(widths) - self.attention_stages

        def blocks(prefix, level):
            return [WaveResBlock(widths[level], kernels[level], self.dropout, dtype=policy,
                                 name=f"{prefix}{level}_block{j}")
                    for j in range(self.res_blocks)]

        def attention(prefix, level):
            if level < first_attention:
                return None
            return SelfAttentionBlock(self.attention_heads, dropout=self.dropout,
                                      causal=False, dtype=policy, name=f"{prefix}{level}_attention")

        self.time_embedding = TimeEmbedding(self.time_dim, dtype=policy, name="time_embedding")
        self.input_conv = keras.layers.Conv1D(self.input_channels, self.input_kernel,
                                              padding="same", dtype=policy, name="input_conv")
        self.downsamples = [None] + [
            keras.layers.Conv1D(widths[i + 1], 2 * factor, strides=factor, padding="same",
                                dtype=policy, name=f"down{i + 1}_sample")
            for i, factor in enumerate(self.down_factors)]
        self.down_blocks = [blocks("down", level) for level in range(len(widths))]
        self.down_attention = [attention("down", level) for level in range(len(widths))]
        self.mid_blocks = [WaveResBlock(widths[-1], kernels[-1], self.dropout, dtype=policy,
                                        name=f"mid_block{j}") for j in range(2)]
        self.mid_attention = SelfAttentionBlock(self.attention_heads, dropout=self.dropout,
                                                causal=False, dtype=policy, name="mid_attention")
        self.up_blocks = [blocks("up", level) for level in range(len(widths))]
        self.up_attention = [attention("up", level) for level in range(len(widths))]
        # upsamples[level] brings level's output to level - 1's rate and width.
        self.upsamples = [None] + [
            keras.layers.Conv1D(widths[i], kernels[i], padding="same", dtype=policy,
                                name=f"up{i + 1}_sample")
            for i in range(len(self.down_factors))]
        self.output_norm = keras.layers.GroupNormalization(
            _groups(self.input_channels), dtype=policy, name="output_norm")
        # Small rather than zero: near "predict 0" at the start, but gradients
        # reach every earlier layer at once.
        self.output_conv = keras.layers.Conv1D(
            self.features, self.input_kernel, padding="same", dtype="float32",
            name="output_conv", kernel_initializer=keras.initializers.VarianceScaling(
                scale=1e-2, mode="fan_in", distribution="truncated_normal"))

    @property
    def downsampling_factor(self):
        return math.prod(self.down_factors)

    def build(self, input_shape):
        x_shape, t_shape = input_shape
        length = self.downsampling_factor  # any length works; build at the smallest
        self.call([keras.KerasTensor((x_shape[0], length, x_shape[-1])),
                   keras.KerasTensor(tuple(t_shape))])
        self.built = True

    def call(self, inputs, training=None):
        x_t, t = inputs
        time_embedding = self.time_embedding(t)
        length = ops.shape(x_t)[1]
        factor = self.downsampling_factor
        pad = (-length) % factor
        h = ops.pad(x_t, [[0, 0], [0, pad], [0, 0]])
        h = self.input_conv(h)

        skips = []
        for level in range(len(self.down_blocks)):
            if self.downsamples[level] is not None:
                h = self.downsamples[level](h)
            for block in self.down_blocks[level]:
                h = block(h, time_embedding, training=training)
            if self.down_attention[level] is not None:
                h = self.down_attention[level](h, training=training)
            skips.append(h)

        h = self.mid_blocks[0](h, time_embedding, training=training)
        h = self.mid_attention(h, training=training)
        h = self.mid_blocks[1](h, time_embedding, training=training)

        for level in reversed(range(len(self.up_blocks))):
            h = ops.concatenate([h, skips[level]], axis=-1)
            for block in self.up_blocks[level]:
                h = block(h, time_embedding, training=training)
            if self.up_attention[level] is not None:
                h = self.up_attention[level](h, training=training)
            if self.upsamples[level] is not None:
                h = ops.repeat(h, self.down_factors[level - 1], axis=1)
                h = self.upsamples[level](h)

        h = ops.silu(self.output_norm(h))
        out = ops.cast(self.output_conv(h), "float32")
        return out[:, :length, :]

    def get_config(self):
        config = super().get_config()
        config.update({
            "features": self.features,
            "input_channels": self.input_channels,
            "input_kernel": self.input_kernel,
            "stage_channels": list(self.stage_channels),
            "stage_kernels": list(self.stage_kernels),
            "down_factors": list(self.down_factors),
            "res_blocks": self.res_blocks,
            "attention_stages": self.attention_stages,
            "attention_heads": self.attention_heads,
            "time_dim": self.time_dim,
            "dropout": self.dropout,
        })
        return config
