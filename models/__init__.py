"""Denoiser networks for the symbolic (MIDI) domain and their factory."""

from models.causal_unet import CausalUNet
from models.transformer import TransformerDenoiser

MODEL_NAMES = ("causal_unet", "transformer")


def build_model(params, features):
    """Instantiates the denoiser named by `params.model` (not yet built).

    Args:
        params: a `params.Params`; only the fields of the chosen model are read.
        features: per-note features of the diffusion state (e.g. 3).

    Returns:
        A `keras.Model` called as `model([x_t, t], training=...)`.
    """
    if params.model == "causal_unet":
        return CausalUNet(
            features=features,
            input_channels=params.input_channels,
            input_kernel=params.input_kernel,
            stage_channels=params.stage_channels,
            stage_kernels=params.stage_kernels,
            mid_channels=params.mid_channels,
            mid_kernel=params.mid_kernel,
            attention_heads=params.attention_heads,
            se_ratio=params.se_ratio,
            time_dim=params.time_dim,
            dropout=params.dropout,
            seq_len=params.seq_len,
        )
    if params.model == "transformer":
        return TransformerDenoiser(
            features=features,
            model_dim=params.model_dim,
            num_layers=params.num_layers,
            attention_heads=params.attention_heads,
            mlp_dim=params.mlp_dim,
            time_dim=params.time_dim,
            causal=params.causal,
            dropout=params.dropout,
        )
    raise ValueError(
        f"unknown model {params.model!r}; choose one of {', '.join(MODEL_NAMES)}")


__all__ = ["CausalUNet", "TransformerDenoiser", "build_model", "MODEL_NAMES"]
