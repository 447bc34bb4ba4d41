"""Transformer denoiser with FiLM time conditioning (the Julia DDPM seed)."""

import keras
from keras import ops

from models.layers import Denoiser, FiLM, FiLMTransformerBlock, TimeEmbedding, sinusoidal_embedding


@keras.saving.register_keras_serializable(package="music_diffusion")
class TransformerDenoiser(Denoiser):
    """Pre-LN Transformer over notes; every LayerNorm is followed by FiLM.

    Layout: Dense input projection to model_dim + fixed sinusoidal note-index
    encoding; num_layers FiLM Transformer blocks; final LayerNorm + FiLM;
    Dense output projection to the feature count.

    Args:
        features: per-note features of x_t (and of the output).
        model_dim: width of the residual stream.
        num_layers: number of Transformer blocks.
        attention_heads: heads of every self-attention layer.
        mlp_dim: hidden width of every block's MLP.
        time_dim: width of the diffusion-time embedding.
        causal: restrict attention to past and present notes (needed for
            continuation); False gives a bidirectional denoiser.
        dropout: dropout rate on attention weights and MLP hidden layers.
        **kwargs: base `keras.Model` arguments (name, dtype, ...).

    Call arguments:
        inputs: `[x_t, t]`: x_t float [batch, length, features], t float
            [batch] diffusion times (may be fractional).
        training: whether dropout is active.

    Returns:
        float32 [batch, length, features].
    """

    def __init__(self, features, model_dim=128, num_layers=4, attention_heads=2,
                 mlp_dim=256, time_dim=256, causal=True, dropout=0.0, **kwargs):
        # Keep t in float32 at the model boundary (a half-precision t loses
        # its fractional part); each layer casts its own inputs.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.features = int(features)
        self.model_dim = int(model_dim)
        self.num_layers = int(num_layers)
        self.attention_heads = int(attention_heads)
        self.mlp_dim = int(mlp_dim)
        self.time_dim = int(time_dim)
        self.causal = bool(causal)
        self.dropout = float(dropout)

        policy = self.dtype_policy
        self.time_embedding = TimeEmbedding(self.time_dim, dtype=policy, name="time_embedding")
        self.input_projection = keras.layers.Dense(self.model_dim, dtype=policy,
                                                   name="input_projection")
        self.blocks = [
            FiLMTransformerBlock(self.attention_heads, self.mlp_dim, self.dropout,
                                 self.causal, dtype=policy, name=f"block{i}")
            for i in range(self.num_layers)]
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, center=False, scale=False, dtype=policy, name="output_norm")
        self.output_film = FiLM(dtype=policy, name="output_film")
        # Small rather than zero: starts near "predict 0" but keeps gradients
        # (and the time signal) flowing from the first step.
        self.output_projection = keras.layers.Dense(
            self.features, dtype="float32", name="output_projection",
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=1e-2, mode="fan_in", distribution="truncated_normal"))

    def build(self, input_shape):
        x_shape, t_shape = input_shape
        # A symbolic pass builds every sub-layer with the shapes it really sees.
        self.call([keras.KerasTensor(tuple(x_shape)), keras.KerasTensor(tuple(t_shape))])
        self.built = True

    def call(self, inputs, training=None):
        x_t, t = inputs
        time_embedding = self.time_embedding(t)
        h = self.input_projection(x_t)
        positions = ops.arange(ops.shape(h)[1], dtype="float32")
        h = h + ops.cast(sinusoidal_embedding(positions, self.model_dim), h.dtype)
        for block in self.blocks:
            h = block(h, time_embedding, training=training)
        h = self.output_film(self.output_norm(h), time_embedding)
        return ops.cast(self.output_projection(h), "float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "features": self.features,
            "model_dim": self.model_dim,
            "num_layers": self.num_layers,
            "attention_heads": self.attention_heads,
            "mlp_dim": self.mlp_dim,
            "time_dim": self.time_dim,
            "causal": self.causal,
            "dropout": self.dropout,
        })
        return config
