"""Denoiser networks of both domains and their factory."""

from models.causal_unet import CausalUNet
from models.diffwave import DiffWave
from models.transformer import TransformerDenoiser
from models.wave_unet import WaveUNet

# Each model's constructor arguments (besides `features`), read from the Params
# fields of the same names.
_MODELS = {
    "causal_unet": (CausalUNet, (
        "input_channels", "input_kernel", "stage_channels", "stage_kernels", "mid_channels",
        "mid_kernel", "attention_heads", "se_ratio", "time_dim", "dropout", "seq_len",
        "causal", "interval_lags", "note_attention")),
    "transformer": (TransformerDenoiser, (
        "model_dim", "num_layers", "attention_heads", "mlp_dim", "time_dim", "causal",
        "dropout")),
    "wave_unet": (WaveUNet, (
        "input_channels", "input_kernel", "stage_channels", "stage_kernels", "down_factors",
        "res_blocks", "attention_stages", "attention_heads", "time_dim", "dropout")),
    "diffwave": (DiffWave, (
        "residual_channels", "residual_layers", "dilation_cycle", "time_dim")),
}
MODEL_NAMES = tuple(_MODELS)


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


def build_model(params, features, groups=None, rhythm=None):
    """Instantiates the denoiser named by `params.model` (not yet built).

    Args:
        params: a `params.Params`; only the fields of the chosen model are read.
        features: per-note features of the diffusion state (e.g. 3).
        groups: the encoding's one-hot group sizes (categorical_groups);
            `params.pitch_views` needs them (group 0 is the semitone group).
        rhythm: (duration values, onset-gap values) in beats of the
            encoding's duration and gap classes; `params.voice_features`
            needs them and the groups.

    Returns:
        A `keras.Model` called as `model([x_t, t], training=...)`.
    """
    if params.model not in _MODELS:
        raise ValueError(
            f"unknown model {params.model!r}; choose one of {', '.join(MODEL_NAMES)}")
    model_class, fields = _MODELS[params.model]
    options = {field: getattr(params, field) for field in fields}
    if params.pitch_views:
        if params.model != "causal_unet":
            raise ValueError(f"--pitch_views needs --model=causal_unet (got {params.model!r})")
        if not groups:
            raise ValueError("--pitch_views needs the encoding's one-hot groups")
        options["pitch_views"] = int(groups[0])
    if params.voice_features:
        if params.model != "causal_unet":
            raise ValueError(f"--voice_features needs --model=causal_unet (got "
                             f"{params.model!r})")
        if not groups or rhythm is None:
            raise ValueError("--voice_features needs the encoding's one-hot groups and "
                             "rhythm values")
        options["voice_features"] = {"group_sizes": list(groups),
                                     "duration_values": list(rhythm[0]),
                                     "gap_values": list(rhythm[1])}
    return model_class(features=features, **options)


__all__ = ["CausalUNet", "DiffWave", "TransformerDenoiser", "WaveUNet", "build_model",
           "build_length", "MODEL_NAMES"]
