"""Denoiser networks of both domains and their factory."""

from models.causal_unet import CausalUNet
from models.diffwave import DiffWave
from models.transformer import TransformerDenoiser
from models.wave_unet import WaveUNet

MODEL_NAMES = ("causal_unet", "transformer", "wave_unet", "diffwave")


def build_length(params):
    """A sequence length the model accepts, for building its weights."""
    if params.model == "wave_unet":
        length = 1
        for factor in params.down_factors:
            length *= factor
        return length
    if params.model == "diffwave":
        return 8
    return params.seq_len


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
    if params.model == "wave_unet":
        return WaveUNet(
            features=features,
            input_channels=params.input_channels,
            input_kernel=params.input_kernel,
            stage_channels=params.stage_channels,
            stage_kernels=params.stage_kernels,
            down_factors=params.down_factors,
            res_blocks=params.res_blocks,
            attention_stages=params.attention_stages,
            attention_heads=params.attention_heads,
            time_dim=params.time_dim,
            dropout=params.dropout,
        )
    if params.model == "diffwave":
        return DiffWave(
            features=features,
            residual_channels=params.residual_channels,
            residual_layers=params.residual_layers,
            dilation_cycle=params.dilation_cycle,
            time_dim=params.time_dim,
        )
    raise ValueError(
        f"unknown model {params.model!r}; choose one of {', '.join(MODEL_NAMES)}")


__all__ = ["CausalUNet", "DiffWave", "TransformerDenoiser", "WaveUNet", "build_model",
           "build_length", "MODEL_NAMES"]
