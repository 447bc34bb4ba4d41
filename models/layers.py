"""Building blocks shared by the symbolic-domain denoisers.

Every layer that mixes information along the note axis is causal by default:
its output at note i depends only on inputs at notes <= i (the seed's design).
With causal=False the same layers see the whole segment. Diffusion denoises
all notes at once, and the reverse process needs each note's estimate given
every noisy note, later ones included; a causal denoiser drops that evidence
(README, "Musical quality").

Layers that are sensitive to reduced precision (normalisation, running means,
attention softmax, sinusoidal encodings) compute in float32 whatever the
global dtype policy, and cast back to the compute dtype afterwards.
"""

import functools
import math

import keras
import numpy as np
from keras import ops

_PACKAGE = "music_diffusion"


def conv_padding(causal: bool) -> str:
    """Conv1D padding of a causal layer, or of its bidirectional variant."""
    return "causal" if causal else "same"


def sinusoidal_embedding(positions, dim, max_period=10000.0):
    """Transformer-style sin/cos features of (possibly fractional) positions.

    Args:
        positions: float tensor of any shape; diffusion times or note indices.
        dim: number of features; an odd `dim` gets a trailing zero feature.
        max_period: the longest wavelength, in units of `positions`.

    Returns:
        float32 tensor of shape `positions.shape + (dim,)`.
    """
    half = dim // 2
    positions = ops.cast(positions, "float32")
    exponents = ops.arange(half, dtype="float32") / max(half, 1)
    frequencies = ops.exp(-math.log(max_period) * exponents)
    angles = ops.expand_dims(positions, -1) * frequencies
    embedding = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if dim % 2:
        embedding = ops.pad(embedding, [[0, 0]] * (len(embedding.shape) - 1) + [[0, 1]])
    return embedding


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TimeEmbedding(keras.layers.Layer):
    """Diffusion-time embedding: sinusoid of the float t, then a 2-layer MLP.

    Samplers call the denoiser at fractional t, so t is embedded as a real
    number rather than looked up in a table.

    Args:
        dim: width of the sinusoidal features and of both Dense layers.
        max_period: longest sinusoid wavelength, in timesteps.
        **kwargs: base `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        t: float tensor [batch] (or [batch, 1]) of diffusion times, or
            [batch, length] with a time per note (rolling levels).

    Returns:
        [batch, dim] embedding, or [batch, length, dim] for per-note times.
    """

    def __init__(self, dim, max_period=10000.0, **kwargs):
        # Autocasting t to float16 would round t=731.25 to 731.0: samplers'
        # fractional times must reach the sinusoid in float32.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.max_period = float(max_period)
        self.hidden = keras.layers.Dense(self.dim, activation="silu",
                                         dtype=self.dtype_policy, name="hidden")
        self.output_projection = keras.layers.Dense(self.dim, dtype=self.dtype_policy,
                                                    name="output_projection")

    def build(self, t_shape):
        batch = t_shape[0] if t_shape else None
        self.hidden.build((batch, self.dim))
        self.output_projection.build((batch, self.dim))
        self.built = True

    def call(self, t):
        t = ops.cast(t, "float32")
        per_note = len(t.shape) == 2 and t.shape[1] != 1
        features = sinusoidal_embedding(ops.reshape(t, (-1,)), self.dim, self.max_period)
        embedding = self.output_projection(self.hidden(features))
        if per_note:
            return ops.reshape(embedding, (ops.shape(t)[0], ops.shape(t)[1], self.dim))
        return embedding

    def compute_output_shape(self, t_shape):
        if t_shape and len(t_shape) == 2 and t_shape[1] != 1:
            return (t_shape[0], t_shape[1], self.dim)
        return (t_shape[0] if t_shape else None, self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "max_period": self.max_period})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PositionEmbedding(keras.layers.Layer):
    """Learned Dense projection of a sinusoidal encoding of the note index.

    The index encodes absolute position only; it carries no information about
    other notes' values, so adding it keeps the network causal.

    Args:
        output_dim: channels of the returned embedding.
        encoding_dim: width of the sinusoidal encoding (defaults to output_dim).
        max_period: longest sinusoid wavelength, in notes.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels]; only its length is used.

    Returns:
        [1, length, output_dim], to be broadcast-added to the sequence.
    """

    def __init__(self, output_dim, encoding_dim=None, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.encoding_dim = int(encoding_dim or output_dim)
        self.max_period = float(max_period)
        self.projection = keras.layers.Dense(self.output_dim, dtype=self.dtype_policy,
                                             name="projection")

    def build(self, inputs_shape):
        self.projection.build((inputs_shape[1], self.encoding_dim))
        self.built = True

    def call(self, inputs):
        positions = ops.arange(ops.shape(inputs)[1], dtype="float32")
        encoding = sinusoidal_embedding(positions, self.encoding_dim, self.max_period)
        return ops.expand_dims(self.projection(encoding), 0)

    def compute_output_shape(self, inputs_shape):
        return (1, inputs_shape[1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"output_dim": self.output_dim, "encoding_dim": self.encoding_dim,
                       "max_period": self.max_period})
        return config


PITCH_CLASSES = 12


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PitchViews(keras.layers.Layer):
    """Pitch-class and register views of a one-class-per-semitone group.

    Class i of the group (semitone i above its lowest pitch) belongs to
    pitch class i % 12 and register band i // 12 (octaves counted from the
    group's lowest pitch, not from C: for a network only the partition
    matters). `fold` turns codes in [-1, 1] into the pitch-class and band
    codes they imply: (codes + 1) / 2 read as probabilities, summed over each
    class's and band's members, and mapped back to 2 p - 1, so a clean
    one-hot semitone gives two one-hot groups, as `onehot` writes a pitch
    (with the classes rotated by the group's lowest pitch). On x_t, which is
    not in [-1, 1], it is the same affine map: exact only for clean codes and
    for the x_0 estimate.
    `spread` gives semitone i the sum of its class's and its band's values.

    With one categorical choice per semitone (encoding onehot_pitch) nothing
    else in the network ties the 5-6 octaves of a pitch class together: the
    input convolution and the output projection learn each semitone apart,
    so key and voice-leading regularities are learned once per octave.
    Folded inputs and spread logits share them again, while the per-semitone
    logits stay free to tie register to pitch class.

    Args:
        num_pitches: width of the semitone group.
        **kwargs: base `keras.layers.Layer` arguments.
    """

    def __init__(self, num_pitches, **kwargs):
        super().__init__(**kwargs)
        self.num_pitches = int(num_pitches)
        if self.num_pitches < 1:
            raise ValueError(f"PitchViews needs a group of at least 1 semitone; got "
                             f"{self.num_pitches}")
        self.num_bands = -(-self.num_pitches // PITCH_CLASSES)
        semitone = np.arange(self.num_pitches)
        membership = np.zeros((self.num_pitches, self.num_views), np.float32)
        membership[semitone, semitone % PITCH_CLASSES] = 1.0
        membership[semitone, PITCH_CLASSES + semitone // PITCH_CLASSES] = 1.0
        self._membership = membership

    @property
    def num_views(self) -> int:
        return PITCH_CLASSES + self.num_bands

    def fold(self, group):
        """[..., num_pitches] codes -> [..., 12 + num_bands] class and band codes."""
        return ops.matmul(ops.cast(group, "float32") + 1.0,
                          ops.convert_to_tensor(self._membership)) - 1.0

    def spread(self, views):
        """[..., 12 + num_bands] -> [..., num_pitches]: class value + band value."""
        return ops.matmul(ops.cast(views, "float32"),
                          ops.convert_to_tensor(self._membership.T))

    def call(self, inputs):
        return self.fold(inputs)

    def get_config(self):
        config = super().get_config()
        config.update({"num_pitches": self.num_pitches})
        return config


@functools.lru_cache(maxsize=None)
def interval_matrix() -> np.ndarray:
    """[144, 12] float32: row i * 12 + j is one-hot at (i - j) % 12, so the
    flattened outer product of two notes' pitch-class probabilities times it
    gives the weight on each interval (mod 12) of the first above the second.
    Built once (read-only): every eager call of interval_evidence reads it."""
    classes = np.arange(PITCH_CLASSES)
    difference = (classes[:, None] - classes[None, :]) % PITCH_CLASSES
    matrix = np.eye(PITCH_CLASSES, dtype=np.float32)[difference.ravel()]
    matrix.flags.writeable = False
    return matrix


def interval_evidence(probs, before_probs):
    """[batch, length, 12] x [batch, length, 12] pitch-class probabilities ->
    [batch, length, 12]: the weight on each interval (mod 12) of `probs`'
    class above `before_probs`' class."""
    outer = ops.expand_dims(probs, -1) * ops.expand_dims(before_probs, -2)
    outer = ops.reshape(outer, (-1,) + tuple(ops.shape(probs)[1:-1])
                        + (PITCH_CLASSES * PITCH_CLASSES,))
    return ops.matmul(outer, ops.convert_to_tensor(interval_matrix()))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class IntervalFeatures(keras.layers.Layer):
    """Pitch-class interval evidence between each note and the notes before it.

    For each lag l in 1..lags and each 12-wide pitch-class group (codes in
    [-1, 1], read as p = (code + 1) / 2), feature k of note i is
    sum_c p_i[(c + k) % 12] * p_{i-l}[c]: the weight the two notes' codes put
    on note i lying k semitones (mod 12) above note i - l. Zero for i < l.
    A convolution sees neighbouring codes side by side but has to learn such
    products from data; stepwise motion (k = 1, 2, 10, 11 at small lags: a
    passing note after the chord it leaves) is what the wide U-Net still
    misses (README, "Shipped weights"). Reads notes <= i only, so it is causal.

    Args:
        lags: how many earlier notes each note is compared with.
        group_starts: first channel of each pitch-class group in the input
            (x_t's, and the x_0 estimate's when self-conditioned).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float [batch, length, channels].

    Returns:
        float32 [batch, length, len(group_starts) * lags * 12].
    """

    def __init__(self, lags, group_starts=(0,), **kwargs):
        super().__init__(**kwargs)
        self.lags = int(lags)
        self.group_starts = tuple(int(start) for start in group_starts)
        if self.lags < 1 or not self.group_starts:
            raise ValueError(f"IntervalFeatures needs lags >= 1 and a group; got lags="
                             f"{self.lags}, group_starts={self.group_starts}")

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        length = ops.shape(inputs)[1]
        features = []
        for start in self.group_starts:
            probs = (inputs[..., start:start + PITCH_CLASSES] + 1.0) / 2.0
            for lag in range(1, self.lags + 1):
                before = ops.pad(probs, ((0, 0), (lag, 0), (0, 0)))[:, :length]
                features.append(interval_evidence(probs, before))
        return ops.concatenate(features, axis=-1)

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], inputs_shape[1],
                len(self.group_starts) * self.lags * PITCH_CLASSES)

    def get_config(self):
        config = super().get_config()
        config.update({"lags": self.lags, "group_starts": list(self.group_starts)})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalSqueezeExcitation(keras.layers.Layer):
    """Squeeze-excitation whose "squeeze" is a causal running mean.

    The usual global average pool would let every note's gate depend on the
    whole sequence, future included; the running mean over notes 0..i keeps
    the gate at note i a function of the past only.

    Args:
        ratio: channel reduction of the bottleneck MLP.
        min_units: lower bound on the bottleneck width, so that narrow layers
            still get a useful gate.
        causal: squeeze with the running mean over notes 0..i; False: with
            the mean over all notes (a bidirectional network).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].

    Returns:
        `inputs` scaled per note and channel by a sigmoid gate in (0, 1).
    """

    def __init__(self, ratio=16, min_units=4, causal=True, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)
        self.min_units = int(min_units)
        self.causal = bool(causal)

    def build(self, inputs_shape):
        channels = inputs_shape[-1]
        units = max(channels // self.ratio, self.min_units)
        self.squeeze = keras.layers.Dense(units, activation="relu",
                                          dtype=self.dtype_policy, name="squeeze")
        self.excite = keras.layers.Dense(channels, activation="sigmoid",
                                         dtype=self.dtype_policy, name="excite")
        self.squeeze.build(inputs_shape)
        self.excite.build(tuple(inputs_shape[:-1]) + (units,))
        self.built = True

    def call(self, inputs):
        # A cumulative sum of up to thousands of half-precision values loses
        # most of its bits; float32 keeps the running mean exact enough.
        values = ops.cast(inputs, "float32")
        if self.causal:
            running_sum = ops.cumsum(values, axis=1)
            count = ops.cumsum(ops.ones_like(values[:, :, :1]), axis=1)
            squeezed = running_sum / count
        else:
            squeezed = ops.mean(values, axis=1, keepdims=True)
        gate = self.excite(self.squeeze(squeezed))
        return inputs * ops.cast(gate, inputs.dtype)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio, "min_units": self.min_units,
                       "causal": self.causal})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalConvBlock(keras.layers.Layer):
    """Residual causal conv block with squeeze-excitation and time conditioning.

    conv -> (+ time) -> LayerNorm -> GELU -> SE -> conv -> LayerNorm -> SE,
    plus a residual (1x1 conv when the channel count changes). LayerNorm runs
    over channels at each note, so it never mixes notes.

    The time embedding is projected to one vector per channel, broadcast
    over all notes, or one per note when each note has its own noise level.

    Args:
        channels: output channels.
        kernel_size: width of both causal convolutions.
        se_ratio: squeeze-excitation reduction ratio.
        dropout: dropout rate after the first activation.
        causal: causal convolutions and squeeze; False: "same"-padded
            convolutions and a global squeeze (a bidirectional network).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, in_channels].
        time_embedding: [batch, time_dim], or [batch, length, time_dim].
        training: whether dropout is active.

    Returns:
        [batch, length, channels].
    """

    def __init__(self, channels, kernel_size, se_ratio=16, dropout=0.0, causal=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_size = int(kernel_size)
        self.se_ratio = int(se_ratio)
        self.dropout = float(dropout)
        self.causal = bool(causal)

    def build(self, inputs_shape, time_embedding_shape):
        policy = self.dtype_policy
        padding = conv_padding(self.causal)
        out_shape = tuple(inputs_shape[:-1]) + (self.channels,)
        self.conv1 = keras.layers.Conv1D(self.channels, self.kernel_size, padding=padding,
                                         dtype=policy, name="conv1")
        self.time_projection = keras.layers.Dense(self.channels, dtype=policy,
                                                  name="time_projection")
        self.norm1 = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="norm1")
        self.se1 = CausalSqueezeExcitation(self.se_ratio, causal=self.causal, dtype=policy,
                                           name="se1")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="dropout")
        self.conv2 = keras.layers.Conv1D(self.channels, self.kernel_size, padding=padding,
                                         dtype=policy, name="conv2")
        self.norm2 = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="norm2")
        self.se2 = CausalSqueezeExcitation(self.se_ratio, causal=self.causal, dtype=policy,
                                           name="se2")
        self.conv1.build(inputs_shape)
        self.time_projection.build(time_embedding_shape)
        for layer in (self.norm1, self.se1, self.conv2, self.norm2, self.se2):
            layer.build(out_shape)
        if inputs_shape[-1] != self.channels:
            self.residual = keras.layers.Conv1D(self.channels, 1, dtype=policy, name="residual")
            self.residual.build(inputs_shape)
        else:
            self.residual = None
        self.built = True

    def project_time(self, time_embedding):
        """[batch, time_dim] -> [batch, 1, channels] (per note: [batch, length, channels])."""
        projected = self.time_projection(ops.silu(time_embedding))
        return projected if len(projected.shape) == 3 else ops.expand_dims(projected, 1)

    def call(self, inputs, time_embedding, training=None):
        x = self.conv1(inputs)
        x = x + ops.cast(self.project_time(time_embedding), x.dtype)
        x = self.se1(ops.gelu(self.norm1(x), approximate=False))
        x = self.dropout_layer(x, training=training)
        x = self.se2(self.norm2(self.conv2(x)))
        shortcut = inputs if self.residual is None else self.residual(inputs)
        return x + ops.cast(shortcut, x.dtype)

    def compute_output_shape(self, inputs_shape, time_embedding_shape=None):
        return tuple(inputs_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "kernel_size": self.kernel_size,
                       "se_ratio": self.se_ratio, "dropout": self.dropout,
                       "causal": self.causal})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalDownsample(keras.layers.Layer):
    """Halves the note axis: a stride-2 causal (or "same"-padded) conv.

    Coarse position j is computed from fine positions 2j-k+1 .. 2j, so it
    depends only on inputs at notes <= 2j (unlike max-pooling over (2j, 2j+1),
    which would leak note 2j+1 into coarse j).

    Args:
        kernel_size: width of the strided causal conv.
        causal: False: a "same"-padded strided conv (a bidirectional network;
            coarse j then reads notes 2j .. 2j + kernel_size - 1).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].

    Returns:
        [batch, ceil(length / 2), channels].
    """

    def __init__(self, kernel_size=3, causal=True, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.causal = bool(causal)

    def build(self, inputs_shape):
        self.conv = keras.layers.Conv1D(inputs_shape[-1], self.kernel_size, strides=2,
                                        padding=conv_padding(self.causal),
                                        dtype=self.dtype_policy, name="conv")
        self.conv.build(inputs_shape)
        self.built = True

    def call(self, inputs):
        return self.conv(inputs)

    def compute_output_shape(self, inputs_shape):
        length = inputs_shape[1]
        return (inputs_shape[0], None if length is None else (length + 1) // 2,
                inputs_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "causal": self.causal})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalUpsample(keras.layers.Layer):
    """Doubles the note axis by repeating each coarse position twice.

    Fine position i receives coarse position i // 2, which (after
    `CausalDownsample`) depends only on notes <= 2 * (i // 2) <= i.
    Interpolating upsamplers would mix in coarse position i // 2 + 1: the future.

    Args:
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].

    Returns:
        [batch, 2 * length, channels].
    """

    def call(self, inputs):
        return ops.repeat(inputs, 2, axis=1)

    def compute_output_shape(self, inputs_shape):
        length = inputs_shape[1]
        return (inputs_shape[0], None if length is None else 2 * length, inputs_shape[2])


def _float32_attention(num_heads, channels, dropout, name):
    # The attention logits and softmax are the classic half-precision overflow
    # point; the whole attention (cheap at these lengths) runs in float32.
    return keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=max(channels // num_heads, 1), dropout=dropout,
        dtype="float32", name=name)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SelfAttentionBlock(keras.layers.Layer):
    """Pre-LayerNorm self-attention followed by a pre-LayerNorm GELU MLP.

    Args:
        num_heads: attention heads; the key width is channels // num_heads.
        mlp_ratio: hidden width of the MLP relative to the channels.
        dropout: dropout rate on attention weights and the MLP hidden layer.
        causal: mask attention so that note i attends to notes <= i only.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].
        training: whether dropout is active.

    Returns:
        [batch, length, channels].
    """

    def __init__(self, num_heads, mlp_ratio=4, dropout=0.0, causal=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = int(mlp_ratio)
        self.dropout = float(dropout)
        self.causal = bool(causal)

    def build(self, inputs_shape):
        policy = self.dtype_policy
        channels = inputs_shape[-1]
        hidden_shape = tuple(inputs_shape[:-1]) + (self.mlp_ratio * channels,)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=policy, name="attention_norm")
        self.attention = _float32_attention(self.num_heads, channels, self.dropout,
                                            "attention")
        self.mlp_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy,
                                                        name="mlp_norm")
        self.mlp_hidden = keras.layers.Dense(self.mlp_ratio * channels, activation="gelu",
                                             dtype=policy, name="mlp_hidden")
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="mlp_dropout")
        self.mlp_output = keras.layers.Dense(channels, dtype=policy, name="mlp_output")
        self.attention_norm.build(inputs_shape)
        self.attention.build(inputs_shape, inputs_shape)
        self.mlp_norm.build(inputs_shape)
        self.mlp_hidden.build(inputs_shape)
        self.mlp_output.build(hidden_shape)
        self.built = True

    def call(self, inputs, training=None):
        h = ops.cast(self.attention_norm(inputs), "float32")
        h = self.attention(h, h, use_causal_mask=self.causal, training=training)
        x = inputs + ops.cast(h, inputs.dtype)
        h = self.mlp_hidden(self.mlp_norm(x))
        h = self.mlp_output(self.mlp_dropout(h, training=training))
        return x + ops.cast(h, x.dtype)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
                       "dropout": self.dropout, "causal": self.causal})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FiLM(keras.layers.Layer):
    """Feature-wise linear modulation by the time embedding.

    Returns x * (1 + scale) + shift, with (scale, shift) a Dense function of
    the time embedding, one vector per channel shared by all notes. The small
    initial kernel keeps the block near identity (x) at initialisation
    without cutting the time signal entirely.

    Args:
        kernel_scale: variance scale of the modulation kernel's initialiser.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].
        time_embedding: [batch, time_dim].

    Returns:
        [batch, length, channels].
    """

    def __init__(self, kernel_scale=0.1, **kwargs):
        super().__init__(**kwargs)
        self.kernel_scale = float(kernel_scale)

    def build(self, inputs_shape, time_embedding_shape):
        self.channels = inputs_shape[-1]
        self.modulation = keras.layers.Dense(
            2 * self.channels, dtype=self.dtype_policy, name="modulation",
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=self.kernel_scale, mode="fan_in", distribution="truncated_normal"))
        self.modulation.build(time_embedding_shape)
        self.built = True

    def call(self, inputs, time_embedding):
        modulation = ops.expand_dims(self.modulation(ops.silu(time_embedding)), 1)
        scale, shift = ops.split(ops.cast(modulation, inputs.dtype), 2, axis=-1)
        return inputs * (1.0 + scale) + shift

    def compute_output_shape(self, inputs_shape, time_embedding_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_scale": self.kernel_scale})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FiLMTransformerBlock(keras.layers.Layer):
    """Pre-LN Transformer block whose LayerNorms are followed by FiLM.

    The LayerNorms carry no affine parameters of their own: FiLM's
    time-dependent scale and shift take that role.

    Args:
        num_heads: attention heads; the key width is channels // num_heads.
        mlp_dim: hidden width of the MLP.
        dropout: dropout rate on attention weights and the MLP hidden layer.
        causal: mask attention so that note i attends to notes <= i only.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: [batch, length, channels].
        time_embedding: [batch, time_dim], or [batch, length, time_dim].
        training: whether dropout is active.

    Returns:
        [batch, length, channels].
    """

    def __init__(self, num_heads, mlp_dim, dropout=0.0, causal=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.dropout = float(dropout)
        self.causal = bool(causal)

    def build(self, inputs_shape, time_embedding_shape):
        policy = self.dtype_policy
        channels = inputs_shape[-1]
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, center=False, scale=False, dtype=policy, name="attention_norm")
        self.attention_film = FiLM(dtype=policy, name="attention_film")
        self.attention = _float32_attention(self.num_heads, channels, self.dropout,
                                            "attention")
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, center=False, scale=False, dtype=policy, name="mlp_norm")
        self.mlp_film = FiLM(dtype=policy, name="mlp_film")
        self.mlp_hidden = keras.layers.Dense(self.mlp_dim, activation="gelu", dtype=policy,
                                             name="mlp_hidden")
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="mlp_dropout")
        self.mlp_output = keras.layers.Dense(channels, dtype=policy, name="mlp_output")
        for norm in (self.attention_norm, self.mlp_norm):
            norm.build(inputs_shape)
        for film in (self.attention_film, self.mlp_film):
            film.build(inputs_shape, time_embedding_shape)
        self.attention.build(inputs_shape, inputs_shape)
        self.mlp_hidden.build(inputs_shape)
        self.mlp_output.build(tuple(inputs_shape[:-1]) + (self.mlp_dim,))
        self.built = True

    def call(self, inputs, time_embedding, training=None):
        h = self.attention_film(self.attention_norm(inputs), time_embedding)
        h = ops.cast(h, "float32")
        h = self.attention(h, h, use_causal_mask=self.causal, training=training)
        x = inputs + ops.cast(h, inputs.dtype)
        h = self.mlp_film(self.mlp_norm(x), time_embedding)
        h = self.mlp_output(self.mlp_dropout(self.mlp_hidden(h), training=training))
        return x + ops.cast(h, x.dtype)

    def compute_output_shape(self, inputs_shape, time_embedding_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                       "dropout": self.dropout, "causal": self.causal})
        return config


class Denoiser(keras.Model):
    """Base of the denoisers: called as `[x_t, t]`, they return `features`
    channels at x_t's positions (subclasses set `self.features`)."""

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        return tuple(x_shape[:-1]) + (self.features,)
