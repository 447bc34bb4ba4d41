"""Squeeze-excitation U-Net denoiser (Diffusion-Music-Composer layout).

Differences from the published network, each fixing a defect:
  * with causal=True every conv, pooling, upsampling, squeeze-excitation and
    attention is causal along the note axis (the original meant to be causal
    but leaked the future through 'same' padding, max-pooling, bilinear
    upsampling and global SE pooling); causal=False (the CPU default) sees
    the whole segment on purpose, which is what a diffusion denoiser needs;
  * the time embedding is added as one vector per channel, broadcast over
    notes (the original tiled and reshaped it without transposing, which
    scattered time features across notes and channels).
"""

import keras
from keras import ops

from models.layers import (CausalConvBlock, CausalDownsample, CausalUpsample, Denoiser,
                           IntervalFeatures, PitchViews, PositionEmbedding,
                           SelfAttentionBlock, TimeEmbedding, conv_padding)
from models.voice import VoiceFeatures


@keras.saving.register_keras_serializable(package="music_diffusion")
class CausalUNet(Denoiser):
    """1-D U-Net over a sequence of notes, conditioned on diffusion time.

    Layout (every layer causal unless causal=False): input conv (+ learned
    projection of a sinusoidal note-index encoding); per down stage:
    downsample by 2 -> ConvBlock -> self-attention; mid ConvBlocks; per up
    stage (mirrored): concat skip -> ConvBlock -> self-attention -> upsample
    by 2; then concat the input-level features -> full-resolution ConvBlock
    -> note_attention full-resolution self-attention blocks -> 1x1 conv.

    The output ConvBlock matters: upsampling repeats each coarse position
    twice, so without full-resolution processing notes 2j and 2j+1 would get
    nearly identical predictions.

    Args:
        features: per-note features of x_t (and of the output).
        input_channels: channels of the input conv and the output block.
        input_kernel: kernel of the input conv and the output block.
        stage_channels: channels of each down stage (up stages mirror them).
        stage_kernels: conv kernel of each stage, same length as stage_channels.
        mid_channels: channels of each ConvBlock at the coarsest resolution.
        mid_kernel: conv kernel of the mid ConvBlocks.
        attention_heads: heads of every self-attention block.
        se_ratio: squeeze-excitation reduction ratio.
        time_dim: width of the diffusion-time embedding.
        dropout: dropout rate inside ConvBlocks and attention blocks.
        seq_len: expected number of notes, validated up front when given
            (the model itself accepts any length divisible by
            2 ** len(stage_channels)).
        causal: every layer sees only notes <= i (the seed's design); False:
            "same"-padded convolutions, global squeeze and unmasked attention, so
            each note's estimate uses the whole noisy segment.
        interval_lags: > 0: the input conv also reads `IntervalFeatures` of
            the pitch-class group (channels [0, 12) of x_t and of the x_0
            estimate beside it) against the interval_lags notes before.
        note_attention: self-attention blocks at note resolution after the
            output ConvBlock. Every other attention block runs on merged
            pairs (or coarser); these let a note read one specific other
            note, such as its voice's previous note, exactly.
        pitch_views: width of a one-class-per-semitone pitch group at channel
            0 (encoding onehot_pitch), or 0. When set, the input conv also
            reads the group's pitch-class and register codes (`PitchViews`,
            of x_t and of the x_0 estimate beside it), and a second 1x1
            projection adds pitch-class and register logits, shared by every
            semitone of a class or band, to the group's own logits. Both are
            linear in what they read, so the network computes nothing it
            could not without them; they share parameters (and gradients)
            across the octaves, which the semitone codes alone do not.
        voice_features: None, or the `VoiceFeatures` arguments (group_sizes,
            duration_values, gap_values of an `onehot`-layout encoding): the
            input conv also reads, for each note, the pitch of the notes
            ending at its onset in the x_0 estimate. Needs a self-conditioned
            model (inputs: x_t, then the estimate).
        **kwargs: base `keras.Model` arguments (name, dtype, ...).

    Call arguments:
        inputs: `[x_t, t]`: x_t float [batch, length, features], t float
            [batch] diffusion times (may be fractional), or [batch, length]
            with a time per note (rolling levels, diffusion/rolling.py): each
            coarser stage then sees the mean embedding of the notes it merges.
        training: whether dropout is active.

    Returns:
        float32 [batch, length, features].
    """

    def __init__(self, features, input_channels=32, input_kernel=7,
                 stage_channels=(40, 80, 80), stage_kernels=(5, 5, 3),
                 mid_channels=(160, 160, 80), mid_kernel=3, attention_heads=2,
                 se_ratio=16, time_dim=256, dropout=0.0, seq_len=None, causal=True,
                 interval_lags=0, note_attention=0, pitch_views=0, voice_features=None,
                 **kwargs):
        # Keep t in float32 at the model boundary (a half-precision t loses
        # its fractional part); each layer casts its own inputs.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.features = int(features)
        self.input_channels = int(input_channels)
        self.input_kernel = int(input_kernel)
        self.stage_channels = tuple(int(c) for c in stage_channels)
        self.stage_kernels = tuple(int(k) for k in stage_kernels)
        self.mid_channels = tuple(int(c) for c in mid_channels)
        self.mid_kernel = int(mid_kernel)
        self.attention_heads = int(attention_heads)
        self.se_ratio = int(se_ratio)
        self.time_dim = int(time_dim)
        self.dropout = float(dropout)
        self.seq_len = None if seq_len is None else int(seq_len)
        self.causal = bool(causal)
        self.interval_lags = int(interval_lags)
        self.note_attention = int(note_attention)
        self.pitch_views = int(pitch_views)
        self.interval_features = None  # built with the input width (build)
        self.voice_features = None if voice_features is None else dict(voice_features)
        self.voice_layer = None
        if self.voice_features is not None:
            self.voice_layer = VoiceFeatures(**self.voice_features, dtype=self.dtype_policy,
                                             name="voice_features")
            if sum(self.voice_layer.group_sizes) != self.features:
                raise ValueError(f"voice_features' groups {self.voice_layer.group_sizes} "
                                 f"do not add up to the {self.features} features")
        if not 0 <= self.pitch_views <= self.features:
            raise ValueError(f"pitch_views={self.pitch_views} must name a group inside the "
                             f"{self.features} features (or be 0)")

        if len(self.stage_kernels) != len(self.stage_channels):
            raise ValueError(
                f"stage_kernels {self.stage_kernels} must have one entry per stage "
                f"of stage_channels {self.stage_channels}")
        if not self.stage_channels:
            raise ValueError("CausalUNet needs at least one stage in stage_channels")
        if self.seq_len is not None:
            self._check_length(self.seq_len)

        policy = self.dtype_policy
        self.time_embedding = TimeEmbedding(self.time_dim, dtype=policy, name="time_embedding")
        self.input_conv = keras.layers.Conv1D(self.input_channels, self.input_kernel,
                                              padding=conv_padding(self.causal),
                                              dtype=policy, name="input_conv")
        self.position_embedding = PositionEmbedding(self.input_channels, dtype=policy,
                                                    name="position_embedding")
        self.downsamples, self.down_blocks, self.down_attention = [], [], []
        for i, (channels, kernel) in enumerate(zip(self.stage_channels, self.stage_kernels)):
            self.downsamples.append(CausalDownsample(causal=self.causal, dtype=policy,
                                                     name=f"down{i}_sample"))
            self.down_blocks.append(CausalConvBlock(
                channels, kernel, self.se_ratio, self.dropout, self.causal, dtype=policy,
                name=f"down{i}_block"))
            self.down_attention.append(SelfAttentionBlock(
                self.attention_heads, dropout=self.dropout, causal=self.causal, dtype=policy,
                name=f"down{i}_attention"))
        self.mid_blocks = [
            CausalConvBlock(channels, self.mid_kernel, self.se_ratio, self.dropout,
                            self.causal, dtype=policy, name=f"mid{i}_block")
            for i, channels in enumerate(self.mid_channels)]
        # Indexed like the down stages: up_blocks[i] runs at down stage i's
        # resolution and is applied in reverse order.
        self.up_blocks, self.up_attention = [], []
        for i, (channels, kernel) in enumerate(zip(self.stage_channels, self.stage_kernels)):
            self.up_blocks.append(CausalConvBlock(
                channels, kernel, self.se_ratio, self.dropout, self.causal, dtype=policy,
                name=f"up{i}_block"))
            self.up_attention.append(SelfAttentionBlock(
                self.attention_heads, dropout=self.dropout, causal=self.causal, dtype=policy,
                name=f"up{i}_attention"))
        self.upsample = CausalUpsample(dtype=policy, name="upsample")
        self.output_block = CausalConvBlock(self.input_channels, self.input_kernel,
                                            self.se_ratio, self.dropout, self.causal,
                                            dtype=policy, name="output_block")
        self.note_attention_blocks = [
            SelfAttentionBlock(self.attention_heads, dropout=self.dropout, causal=self.causal,
                               dtype=policy, name=f"note{i}_attention")
            for i in range(self.note_attention)]
        # Small rather than zero: the network starts near "predict 0" (the
        # mean of epsilon) but gradients reach every earlier layer at once.
        self.output_projection = keras.layers.Conv1D(
            self.features, 1, dtype="float32", name="output_projection",
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=1e-2, mode="fan_in", distribution="truncated_normal"))
        self.pitch_view_layer = self.view_projection = None
        if self.pitch_views:
            self.pitch_view_layer = PitchViews(self.pitch_views, dtype=policy,
                                               name="pitch_views")
            self.view_projection = keras.layers.Conv1D(
                self.pitch_view_layer.num_views, 1, dtype="float32", name="view_projection",
                kernel_initializer=keras.initializers.VarianceScaling(
                    scale=1e-2, mode="fan_in", distribution="truncated_normal"))

    @property
    def downsampling_factor(self):
        return 2 ** len(self.stage_channels)

    def _check_length(self, length):
        if length is not None and length % self.downsampling_factor:
            raise ValueError(
                f"CausalUNet with {len(self.stage_channels)} down stages needs a sequence "
                f"length divisible by {self.downsampling_factor}; got {length}. Change "
                f"seq_len or the number of stage_channels.")

    def build(self, input_shape):
        x_shape, t_shape = input_shape
        self._check_length(x_shape[1])
        if self.voice_layer is not None and x_shape[-1] != 2 * self.features:
            raise ValueError(f"voice_features reads the x_0 estimate beside x_t "
                             f"({2 * self.features} inputs, self-conditioning); got "
                             f"{x_shape[-1]} inputs")
        if self.interval_lags and self.interval_features is None:
            # x_t, then the x_0 estimate when self-conditioned: a pitch-class
            # group at the start of each.
            self.interval_features = IntervalFeatures(
                self.interval_lags, range(0, x_shape[-1], self.features),
                dtype=self.dtype_policy, name="interval_features")
        # A symbolic pass builds every sub-layer with the shapes it really sees.
        self.call([keras.KerasTensor(tuple(x_shape)), keras.KerasTensor(tuple(t_shape))])
        self.built = True

    def call(self, inputs, training=None):
        x_t, t = inputs
        self._check_length(x_t.shape[1])
        time_embedding = self.time_embedding(t)

        extra = []
        if self.interval_features is not None:
            extra.append(self.interval_features(x_t))
        if self.pitch_view_layer is not None:
            # x_t, then the x_0 estimate when self-conditioned: a semitone
            # group at the start of each.
            extra += [self.pitch_view_layer(x_t[..., start:start + self.pitch_views])
                      for start in range(0, x_t.shape[-1], self.features)]
        if self.voice_layer is not None:
            extra.append(self.voice_layer(x_t[..., self.features:]))
        if extra:
            x_t = ops.concatenate([x_t] + [ops.cast(e, x_t.dtype) for e in extra], axis=-1)
        h = self.input_conv(x_t)
        h = h + ops.cast(self.position_embedding(h), h.dtype)
        input_features = h

        # One embedding per stage resolution (all the same one unless per note).
        stage_times = [time_embedding]
        for _ in self.stage_channels:
            stage_times.append(ops.average_pool(stage_times[-1], 2, 2)
                               if len(time_embedding.shape) == 3 else time_embedding)

        skips = []
        for downsample, block, attention, stage_time in zip(
                self.downsamples, self.down_blocks, self.down_attention, stage_times[1:]):
            h = downsample(h)
            h = block(h, stage_time, training=training)
            h = attention(h, training=training)
            skips.append(h)

        for block in self.mid_blocks:
            h = block(h, stage_times[-1], training=training)

        for block, attention, skip, stage_time in reversed(list(zip(
                self.up_blocks, self.up_attention, skips, stage_times[1:]))):
            h = ops.concatenate([h, ops.cast(skip, h.dtype)], axis=-1)
            h = block(h, stage_time, training=training)
            h = attention(h, training=training)
            h = self.upsample(h)

        h = ops.concatenate([h, ops.cast(input_features, h.dtype)], axis=-1)
        h = self.output_block(h, stage_times[0], training=training)
        for attention in self.note_attention_blocks:
            h = attention(h, training=training)
        logits = ops.cast(self.output_projection(h), "float32")
        if self.view_projection is None:
            return logits
        shared = self.pitch_view_layer.spread(self.view_projection(h))
        return ops.concatenate([logits[..., :self.pitch_views] + shared,
                                logits[..., self.pitch_views:]], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "features": self.features,
            "input_channels": self.input_channels,
            "input_kernel": self.input_kernel,
            "stage_channels": list(self.stage_channels),
            "stage_kernels": list(self.stage_kernels),
            "mid_channels": list(self.mid_channels),
            "mid_kernel": self.mid_kernel,
            "attention_heads": self.attention_heads,
            "se_ratio": self.se_ratio,
            "time_dim": self.time_dim,
            "dropout": self.dropout,
            "seq_len": self.seq_len,
            "causal": self.causal,
            "interval_lags": self.interval_lags,
            "note_attention": self.note_attention,
            "pitch_views": self.pitch_views,
            "voice_features": self.voice_features,
        })
        return config
