"""Named presets: the one source of every hyperparameter.

`Params` is a flat, frozen dataclass so that each field maps to exactly one
command-line flag (`define_flags` / `from_flags`) and round-trips through JSON
(`to_dict` / `from_dict`) into exported weights folders.
"""

import dataclasses
import json
import os
from typing import Tuple

from absl import flags


@dataclasses.dataclass(frozen=True)
class Params:
    # --- domain and data -------------------------------------------------
    domain: str = "midi"  # midi | wave
    dataset: str = "bach"  # bach | folder | lakh | maestro | palestrina
    data_dir: str = ""  # source folder for folder / lakh / maestro
    cache_dir: str = "dataset"  # where prepared tf.data caches live
    seq_len: int = 128  # notes per segment
    hop: int = 128  # notes between segment starts
    train_hop: int = 0  # >0: hop of the train split's windows only (overlapping windows)
    programs: str = "piano"  # GM program families to keep, comma separated
    max_beats: float = 8.0  # ceiling for durations and onset gaps (beats)
    transpose: int = 5  # train-split transpositions in [-transpose, +transpose]
    encoding: str = "seed_log"  # seed_hz | seed_log | onehot | onehot_intervals | chord_intervals
    # | chord_head | chord_size | onehot_pitch | analog_bits | log_grid
    encoding_from: str = ""  # midi: a weights or data-cache folder whose encoding statistics
    # to use instead of fitting them on this train split (pretraining on another corpus)
    test_fraction: float = 0.1  # share of pieces in the held-out split
    # waveform domain (the seed's values: 6 x 110,000 samples of a 30 s clip,
    # low-passed at 3675 Hz, every 3rd sample kept -> 36,667 samples at 7350 Hz)
    sample_rate: int = 22050  # files are decoded (and resampled) to this rate
    clip_samples: int = 660000  # samples used per file (0: the whole file)
    segment_samples: int = 110000  # samples per training example, at sample_rate
    downsample: int = 3
    cutoff_hz: float = 3675.0  # anti-aliasing low-pass before decimation
    filter_taps: int = 128
    train_crop: int = 0  # >0: train on random crops of this many model-rate samples

    # --- model --------------------------------------------------------
    model: str = "causal_unet"  # causal_unet | transformer
    input_channels: int = 32
    input_kernel: int = 7
    stage_channels: Tuple[int, ...] = (40, 80, 80)  # midi_cpu: about 1.5M parameters
    stage_kernels: Tuple[int, ...] = (5, 5, 3)
    mid_channels: Tuple[int, ...] = (160, 160, 80)
    mid_kernel: int = 3
    attention_heads: int = 2
    se_ratio: int = 16
    time_dim: int = 256
    dropout: float = 0.0
    causal: bool = True  # causal_unet, transformer: False sees the whole segment
    interval_lags: int = 0  # causal_unet: pitch-class interval features vs this many notes before
    note_attention: int = 0  # causal_unet: self-attention blocks at note resolution
    pitch_views: bool = False  # causal_unet + onehot_pitch: pitch-class/register views, shared logits
    voice_features: bool = False  # causal_unet + onehot: pitch of the notes ending at each onset
    # transformer denoiser
    model_dim: int = 128
    num_layers: int = 4
    mlp_dim: int = 256
    # waveform UNet (stage_channels, attention_heads, time_dim shared)
    down_factors: Tuple[int, ...] = (4, 4, 4, 4)  # stride between stages
    res_blocks: int = 2  # residual blocks per stage
    attention_stages: int = 1  # attention in this many coarsest stages
    # DiffWave (the waveform seed's dilated network)
    residual_layers: int = 13
    residual_channels: int = 64
    dilation_cycle: int = 13  # dilation 2 ** (layer % cycle)

    # --- diffusion ------------------------------------------------------
    schedule: str = "linear"  # linear | cosine
    timesteps: int = 1000
    prediction: str = "epsilon"  # epsilon | v | categorical (one-hot encodings)
    sampler: str = "dpmpp"  # ddpm | ddim | dpmpp | dpmpp_sde
    sample_steps: int = 20
    sample_temperature: float = 1.0  # categorical prediction: logits / temperature when sampling
    sample_eta: float = -1.0  # ddim / dpmpp_sde: fresh noise per step (0: none, 1: DDPM's
    # posterior / the SDE); < 0: the sampler's own (ddim 0, dpmpp_sde 1)
    guidance: float = 1.0  # autoguidance by the weights folder's guide/ (Karras et al. 2024); 1: off
    guidance_max_t: float = 1.0  # guide only at t <= this fraction of T (Kynkaanniemi et al. 2024)
    guidance_groups: Tuple[int, ...] = ()  # categorical: guide these one-hot groups only
    # (onehot: 0 pitch class, 1 octave, 2 duration, 3 onset gap); (): all
    sample_spacing: str = ""  # step grid: uniform | logsnr | warp | "" (the sampler's own)
    # Rolling noise levels (diffusion/rolling.py): earlier notes ahead of later ones.
    sample_rolling: float = 0.0  # its width when sampling; 0: every note at one level
    rolling_share: float = 0.0  # causal_unet: share of training examples drawn rolling
    rolling_width: float = 8.0  # their widths are uniform in [0, rolling_width]
    self_condition: bool = False  # feed the previous x_0 estimate back (Chen et al. 2022)
    loss_weighting: str = "none"  # none | min_snr (Hang et al. 2023)
    time_warping: bool = False  # categorical: draw t where the loss changes (CDCD)
    group_loss_weights: Tuple[float, ...] = ()  # categorical: training weight of each
    # one-hot group's cross-entropy (onehot: pitch class, octave, duration, gap); (): 1s
    min_snr_gamma: float = 5.0
    clip_x0: float = 0.0  # clip x_0 estimates to [-clip_x0, clip_x0] when sampling (0: off)

    # --- training -------------------------------------------------------
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    train_steps: int = 20000
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    ema_decay: float = 0.999
    export_average: int = 1  # --export writes the mean EMA of the latest N checkpoints
    seed: int = 0
    log_every: int = 100
    eval_every: int = 1000
    ckpt_every: int = 1000
    eval_batches: int = 8
    overfit_batches: int = 0  # >0: train on this many fixed batches (sanity check)
    patience: int = 0  # early stopping: evaluations without a better held-out loss (0: off)
    max_nonfinite: int = 5  # stop after this many non-finite updates in a row
    sample_every: int = 2000  # TensorBoard audio/piano-roll samples (0: off)
    jit_compile: bool = False  # compile the training step with XLA (bench/train.py: where it pays)

    def replace(self, **changes) -> "Params":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "Params":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown parameters: {', '.join(unknown)}")
        return cls(**{k: _coerce(known[k], v) for k, v in values.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _coerce(field, value):
    default = field.default
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        cast = float if "float" in str(field.type) else int
        return tuple(cast(v) for v in value)
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    return type(default)(value)


# The seed's objective (Diffusion-Music-Composer): continuous triples,
# epsilon-prediction, linear schedule. The faithful reproduction.
_SEED = Params()
# Exactly decodable codes in {-1, +1} with the objectives that help discrete
# data under continuous diffusion (the musical-quality comparison in README).
_QUALITY = dict(encoding="onehot", prediction="v", schedule="cosine",
                loss_weighting="min_snr", self_condition=True, clip_x0=1.0)
_CATEGORICAL = dict(prediction="categorical", schedule="cosine", self_condition=True)

PRESETS = {
    "midi_seed": _SEED,
    # The published Diffusion-Music-Composer size (about 12.5M parameters).
    "midi_paper": _SEED.replace(
        input_channels=64, stage_channels=(128, 256, 256), stage_kernels=(5, 5, 5),
        mid_channels=(512, 512, 256), batch_size=64, learning_rate=1e-4,
        warmup_steps=1000, train_steps=200000),
    "midi_onehot": _SEED.replace(**_QUALITY),
    "midi_bits": _SEED.replace(**{**_QUALITY, "encoding": "analog_bits"}),
    "midi_loggrid": _SEED.replace(**{**_QUALITY, "encoding": "log_grid", "clip_x0": 0.0}),
    # One-hot codes with cross-entropy on x_0 (score interpolation, Dieleman et al. 2022).
    "midi_categorical": _SEED.replace(encoding="onehot", **_CATEGORICAL),
    # Pitch intervals in the codes (README, "Musical quality"): redundant with
    # the absolute pitch, or replacing it for chord notes.
    "midi_intervals": _SEED.replace(encoding="onehot_intervals", **_CATEGORICAL),
    "midi_chord": _SEED.replace(encoding="chord_intervals", **_CATEGORICAL),
    "midi_chord_head": _SEED.replace(encoding="chord_head", **_CATEGORICAL),
    # Without the causal masks, each note's estimate uses the later notes'
    # noisy values too, as the reverse diffusion process assumes.
    "midi_bidir": _SEED.replace(encoding="onehot", causal=False, **_CATEGORICAL),
    # Each chord's size as one categorical choice of its first note.
    "midi_chord_size": _SEED.replace(encoding="chord_size", causal=False, **_CATEGORICAL),
    # Ablation: the one-hot codes with the seed's objective.
    "midi_onehot_eps": _SEED.replace(encoding="onehot", clip_x0=1.0),
}
# The previous CPU default (about 1.5M parameters): the best variant of the comparison
# at equal training time (README, "Musical quality"): the categorical
# objective with a bidirectional U-Net, since diffusion denoises every note
# at once and a causal one drops the later notes' evidence (chord_size won
# at 9 minutes but tied it at full length on the training split: README).
# XLA makes its step 1.6x faster on a 2-core CPU (bench/train.py); it slows
# the waveform UNet's. For the full-length run the 702 chorale windows are too
# few (held-out loss flat from ~5k steps): overlapping windows (4x) and
# dropout keep it learning, and time warping (CDCD) draws t where the
# cross-entropy changes instead of uniformly (24k steps, 82 min here; README,
# "Shipped weights").
# Its sampling defaults were chosen on the training split (bench/tune_on_train.py):
# log-SNR spacing puts 10 of 20 steps at t > 0.96T, where the cosine schedule's
# log-SNR plunges but x_t is still noise; steps even in the learned warp go
# where key and melody are decided, and the SDE's fresh noise corrects early
# choices. 100 steps rather than 20: interval distance 0.023 against 0.030 and
# clusters 0.052 against 0.079 (4 seeds; 200 steps no better), 19 s for 80
# pieces on one core.
PRESETS["midi_cpu"] = PRESETS["midi_bidir"].replace(
    jit_compile=True, train_hop=32, dropout=0.1, time_warping=True,
    train_steps=24000, sampler="dpmpp_sde", sample_spacing="warp", sample_steps=100)
# The default and the shipped weights/midi: midi_cpu widened 1.4x, and its
# note-resolution layers (input convolution, output block) 4x (3,046,868
# parameters). Those layers carry every note's own codes (92 inputs: x_t and
# the self-conditioning estimate): widening them from 32 to 64 channels lowered
# the held-out cross-entropy (2.170 against 2.217) and the interval distance
# where 2x wider stages had not, and from 64 to 128 again (2.146 against 2.183;
# held-out interval distance 0.0119 against 0.0132 at 100 steps) at some cost
# in key coherence (README, "128 note-resolution channels").
# Its pitch groups (pitch class, octave) count twice in the training loss:
# that lowered the held-out interval distance from 0.0155 to 0.0134 (4 seeds)
# at some cost in duration consistency (README, "Weighting the pitch groups").
# Its step costs 0.55-0.6 s on the machine it was trained on: 97 minutes
# stopped it at step 10,102 of 11,000.
# It samples with autoguidance on its pitch classes (guide: midi_guide below):
# guiding the octaves too widened the register (README, "Autoguidance").
PRESETS["midi_wide"] = PRESETS["midi_cpu"].replace(
    input_channels=128, stage_channels=(56, 112, 112), mid_channels=(224, 224, 112),
    train_steps=11000, group_loss_weights=(2.0, 2.0, 1.0, 1.0), guidance=1.5,
    guidance_groups=(0,), export_average=3)
# midi_wide with the pitch as one class per semitone (encoding onehot_pitch)
# instead of pitch class and octave, which the categorical objective samples
# independently (data/encodings.py, OneHotPitch), and with --pitch_views,
# which shares pitch-class and register codes and logits across the octaves
# again. The pitch group counts twice, as the two pitch groups do in
# midi_wide. At the guide's size and steps it wrote better intervals than
# the onehot guide; at full size (97 minutes) it lost key coherence and
# autoguidance hurt it, so it was not shipped (README, "One pitch group").
PRESETS["midi_pitch"] = PRESETS["midi_wide"].replace(
    encoding="onehot_pitch", group_loss_weights=(2.0, 1.0, 1.0), pitch_views=True,
    input_channels=64, train_steps=12000)  # (midi_wide's values when it was run)
# midi_wide with `VoiceFeatures` (models/voice.py): each note also reads the
# pitch of the notes ending at its onset in the self-conditioning estimate,
# for the stepwise voice leading the shipped net writes a third less often
# than Bach. At full size (97 minutes) it raised those steps (0.649 of short
# onsets against 0.603) but not the held-out interval distance (0.0134
# against 0.0130), so it was not shipped (README, "Voice leading").
PRESETS["midi_voice"] = PRESETS["midi_wide"].replace(voice_features=True)
# The autoguidance network of weights/midi (weights/midi/guide; Karras et al.
# 2024): midi_wide at a third of its parameters (1,046,830; 32 note-resolution
# channels), under a third of its steps (3000, 16 minutes here) and equal loss
# weights, so it makes the same mistakes, more often; sampling pushes the
# model's output away from the guide's. Trained with
# `python train.py --preset=midi_guide --export=weights/midi/guide`.
PRESETS["midi_guide"] = PRESETS["midi_wide"].replace(
    input_channels=32, stage_channels=(32, 64, 64), mid_channels=(128, 128, 64),
    train_steps=3000, group_loss_weights=(), guidance=1.0, guidance_groups=(),
    export_average=1)
# midi_guide with midi_pitch's codes: the guide a midi_pitch model needs
# (a guide must share the model's encoding), and the screen above.
PRESETS["midi_pitch_guide"] = PRESETS["midi_guide"].replace(
    encoding="onehot_pitch", pitch_views=True)
PRESETS["midi_transformer"] = PRESETS["midi_cpu"].replace(model="transformer",
                                                          jit_compile=False)
# Tiny configuration for tests and smoke runs.
PRESETS["midi_tiny"] = _SEED.replace(
    input_channels=8, stage_channels=(16, 16), stage_kernels=(3, 3),
    mid_channels=(16,), attention_heads=1, se_ratio=4, time_dim=16,
    model_dim=16, num_layers=1, mlp_dim=32, batch_size=4, warmup_steps=2,
    train_steps=4, log_every=1, eval_every=2, ckpt_every=2, eval_batches=1,
    transpose=0)


# Waveform domain: rendered Bach by default (no GTZAN ships here); v-prediction
# on the cosine schedule.
_WAVE = Params(
    domain="wave", dataset="bach", encoding="waveform", clip_samples=0,
    model="wave_unet", input_channels=8, input_kernel=7,
    stage_channels=(32, 64, 128, 256), stage_kernels=(3, 3, 3, 3), down_factors=(8, 4, 4, 2),
    res_blocks=2, attention_stages=1, attention_heads=4, time_dim=128,
    schedule="cosine", prediction="v", batch_size=8, train_crop=16384,
    learning_rate=5e-4, warmup_steps=500, train_steps=8000, ema_decay=0.999,
    eval_every=1000, ckpt_every=500, eval_batches=4, sample_every=2000, transpose=0)
PRESETS["wave_cpu"] = _WAVE
# GTZAN with the seed's data parameters (first 30 s of each clip, 6 segments).
PRESETS["wave_gtzan"] = _WAVE.replace(dataset="gtzan", clip_samples=660000)
# A bigger waveform UNet for GPUs.
PRESETS["wave_paper"] = _WAVE.replace(
    input_channels=32, stage_channels=(64, 128, 256, 512), res_blocks=3,
    attention_stages=2, attention_heads=8, time_dim=256, batch_size=32, train_crop=0,
    learning_rate=2e-4, warmup_steps=2000, train_steps=200000)
# The waveform seed's DiffWave-style dilated network: 13 gated layers, dilation 2^i,
# 64 channels. 574,017 parameters here; the seed notebook's net had 1,036,929, the
# difference being its (unpublished) time-embedding MLP widths.
PRESETS["wave_diffwave"] = _WAVE.replace(model="diffwave", residual_layers=13,
                                         residual_channels=64, dilation_cycle=13,
                                         time_dim=128)
PRESETS["wave_tiny"] = _WAVE.replace(
    input_channels=4, stage_channels=(8, 8), stage_kernels=(3, 3), down_factors=(4, 4),
    res_blocks=1, attention_heads=1, time_dim=16, residual_layers=2, residual_channels=8,
    dilation_cycle=2, batch_size=2, train_crop=1024, warmup_steps=2, train_steps=4,
    log_every=1, eval_every=2, ckpt_every=2, eval_batches=1, segment_samples=6000,
    sample_every=0)

DEFAULT_PRESET = "midi_wide"
# The preset used when --preset is not given, by --domain.
DOMAIN_PRESETS = {"midi": "midi_wide", "wave": "wave_cpu"}
DOMAINS = tuple(DOMAIN_PRESETS)


def get_preset(name: str) -> Params:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


def define_flags(preset_default: str = DEFAULT_PRESET, flag_values=None) -> None:
    """Defines --preset and one flag per Params field (default: the preset's)."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("preset", preset_default,
                        f"named preset from params.py: {', '.join(sorted(PRESETS))}",
                        flag_values=flag_values)
    for field in dataclasses.fields(Params):
        help_text = f"override the preset's {field.name}"
        if isinstance(field.default, tuple):
            define, help_text = flags.DEFINE_list, help_text + " (comma separated)"
        elif isinstance(field.default, bool):
            define = flags.DEFINE_boolean
        elif isinstance(field.default, int):
            define = flags.DEFINE_integer
        elif isinstance(field.default, float):
            define = flags.DEFINE_float
        else:
            define = flags.DEFINE_string
        define(field.name, None, help_text, flag_values=flag_values)


def overrides_from_flags(flag_values=None) -> dict:
    """The Params fields the user set explicitly on the command line."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    overrides = {}
    for field in dataclasses.fields(Params):
        value = flag_values[field.name].value
        if value is not None:
            overrides[field.name] = _coerce(field, value)
    return overrides


def preset_name(flag_values=None) -> str:
    """--preset if given, else the default preset of --domain."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    domain = flag_values["domain"].value
    if flag_values["preset"].present or domain is None:
        return flag_values.preset
    if domain not in DOMAIN_PRESETS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    return DOMAIN_PRESETS[domain]


def from_flags(flag_values=None) -> Params:
    flag_values = flags.FLAGS if flag_values is None else flag_values
    overrides = overrides_from_flags(flag_values)
    for folder in ("data_dir", "cache_dir"):  # the shell leaves --data_dir=~/x alone
        if folder in overrides:
            overrides[folder] = os.path.expanduser(overrides[folder])
    params = get_preset(preset_name(flag_values)).replace(**overrides)
    if "data_dir" in overrides and "dataset" not in overrides and params.dataset == "bach":
        # A bare --data_dir means "train on this folder", not "ignore it".
        params = params.replace(dataset=folder_dataset(params))
    validate(params)
    return params


def folder_dataset(params: Params) -> str:
    """The dataset a bare --data_dir names: GTZAN when the folder has its layout."""
    if params.domain == "wave":
        from data import wave_dataset  # imports TensorFlow: only when needed
        if wave_dataset.is_gtzan_tree(params.data_dir):
            return "gtzan"
    return "folder"


_WAVE_MODELS = ("wave_unet", "diffwave")


def sample_length(params: Params) -> int:
    """Steps along the sequence axis of one example: notes per segment, or
    model-rate samples per waveform segment (36,667 with the seed's values)."""
    if params.domain == "wave":
        return -(-params.segment_samples // params.downsample)
    return params.seq_len


def model_rate(params: Params) -> int:
    """Sample rate of the waveform model (7350 Hz with the seed's values)."""
    return int(round(params.sample_rate / params.downsample))


# diffusion.samplers.SPACINGS and "" (spelled out: importing it loads TensorFlow)
SAMPLE_SPACINGS = ("", "uniform", "logsnr", "warp")  # warp: see time_warping


# The samplers with a per-step noise amount eta, and the largest that means
# something: DDIM's sigma_t(eta) reaches the DDPM posterior's std at 1 (Song et
# al. 2021, eq. 16); the SDE solver takes any (k-diffusion's eta). Spelled out
# like SAMPLE_SPACINGS; tests/test_diffusion.py checks it against the samplers.
ETA_MAX = {"ddim": 1.0, "dpmpp_sde": float("inf")}


def eta_option(params: Params, sampler: str) -> dict:
    """The sampler's eta keyword for params.sample_eta ({} when unset, < 0)."""
    if params.sample_eta < 0:
        return {}
    if sampler not in ETA_MAX:
        raise ValueError(f"eta={params.sample_eta:g} sets the per-step noise of "
                         f"{' and '.join(ETA_MAX)}; sampler {sampler!r} has none "
                         "(leave eta unset, or -1)")
    if params.sample_eta > ETA_MAX[sampler]:
        raise ValueError(f"eta={params.sample_eta:g} is above {sampler}'s "
                         f"{ETA_MAX[sampler]:g} (the DDPM posterior's noise)")
    return {"eta": params.sample_eta}


def _check_interval_lags(params: Params) -> None:
    from data import encodings  # pylint: disable=import-outside-toplevel

    if params.interval_lags < 0:
        raise ValueError(f"--interval_lags={params.interval_lags} must be >= 0")
    if params.model != "causal_unet":
        raise ValueError(f"--interval_lags needs --model=causal_unet (got {params.model!r})")
    if encodings.encoding_class(params.encoding).pitch_class_start != 0:
        raise ValueError(f"--interval_lags reads a pitch-class group at channel 0; "
                         f"encoding {params.encoding!r} has none (use onehot)")


def _check_pitch_views(params: Params) -> None:
    from data import encodings  # pylint: disable=import-outside-toplevel

    if params.model != "causal_unet":
        raise ValueError(f"--pitch_views needs --model=causal_unet (got {params.model!r})")
    if params.prediction != "categorical":
        raise ValueError(f"--pitch_views shares logits of --prediction=categorical "
                         f"(got {params.prediction!r})")
    if not encodings.encoding_class(params.encoding).semitone_group:
        raise ValueError(f"--pitch_views reads a one-class-per-semitone pitch group; "
                         f"encoding {params.encoding!r} has none (use onehot_pitch)")


def _check_voice_features(params: Params) -> None:
    if params.model != "causal_unet":
        raise ValueError(f"--voice_features needs --model=causal_unet (got {params.model!r})")
    if params.prediction != "categorical" or not params.self_condition:
        raise ValueError("--voice_features reads the self-conditioning x_0 estimate of "
                         "--prediction=categorical; add --self_condition "
                         "--prediction=categorical")
    # (chord_size's decoder rewrites gaps, and the chord encodings rewrite
    # pitches, so their codes are not the notes VoiceFeatures assumes.)
    if params.encoding not in ("onehot", "onehot_intervals"):
        raise ValueError(f"--voice_features reads the onehot layout (pitch class, octave, "
                         f"duration, gap); encoding {params.encoding!r} has another "
                         f"(use onehot)")


def _check_rolling(params: Params) -> None:
    if params.model != "causal_unet":
        raise ValueError(f"rolling noise levels (--sample_rolling, --rolling_share) need "
                         f"a time per note: --model=causal_unet (got {params.model!r})")
    if not 0 <= params.rolling_share <= 1:
        raise ValueError(f"--rolling_share={params.rolling_share:g} must be in [0, 1]")
    if params.sample_rolling < 0 or params.rolling_width <= 0:
        raise ValueError(f"--sample_rolling={params.sample_rolling:g} must be >= 0 and "
                         f"--rolling_width={params.rolling_width:g} > 0")


def validate(params: Params) -> None:
    """Refuses combinations that cannot work, with the flag to change."""
    if params.domain not in DOMAINS:
        raise ValueError(f"unknown domain {params.domain!r}; choose one of {', '.join(DOMAINS)}")
    wave_model = params.model in _WAVE_MODELS
    if (params.domain == "wave") != wave_model:
        raise ValueError(f"model {params.model!r} does not fit --domain={params.domain}; "
                         f"use --preset={DOMAIN_PRESETS[params.domain]} or pass --model")
    if (params.domain == "wave") != (params.encoding == "waveform"):
        raise ValueError(f"encoding {params.encoding!r} does not fit --domain={params.domain}")
    if params.domain == "wave" and params.encoding_from:
        raise ValueError("--encoding_from sets the statistics of a note encoding; the wave "
                         "domain has none (leave it empty)")
    nyquist = params.sample_rate / (2 * params.downsample)
    if params.domain == "wave" and not 0 < params.cutoff_hz <= nyquist:
        raise ValueError(f"--cutoff_hz={params.cutoff_hz:g} must be in (0, "
                         f"{nyquist:g}] (the Nyquist frequency after "
                         f"--downsample={params.downsample} of --sample_rate="
                         f"{params.sample_rate}), or the decimated audio aliases")
    if params.sample_spacing not in SAMPLE_SPACINGS:
        raise ValueError(f"--sample_spacing={params.sample_spacing!r}: choose one of "
                         f"{', '.join(repr(s) for s in SAMPLE_SPACINGS)}")
    if params.sample_spacing == "warp" and not params.time_warping:
        raise ValueError("--sample_spacing=warp spaces steps by the time warp learned with "
                         "--time_warping; without it use uniform or logsnr")
    if params.time_warping and params.prediction != "categorical":
        raise ValueError(f"--time_warping follows the cross-entropy of categorical "
                         f"prediction; --prediction={params.prediction} has none "
                         "(use --prediction=categorical, or --notime_warping with "
                         "--sample_spacing=uniform or logsnr)")
    if params.interval_lags:
        _check_interval_lags(params)
    if params.pitch_views:
        _check_pitch_views(params)
    if params.voice_features:
        _check_voice_features(params)
    if params.note_attention < 0:
        raise ValueError(f"--note_attention={params.note_attention} must be >= 0")
    if params.note_attention and params.model != "causal_unet":
        raise ValueError(f"--note_attention adds attention blocks to --model=causal_unet "
                         f"(got {params.model!r})")
    if params.group_loss_weights and (params.prediction != "categorical" or min(
            params.group_loss_weights) <= 0):
        raise ValueError(f"--group_loss_weights={','.join(map(str, params.group_loss_weights))}"
                         " weighs the one-hot groups of --prediction=categorical; each "
                         "must be > 0")
    if params.sample_rolling or params.rolling_share:
        _check_rolling(params)
    eta_option(params, params.sampler)
    if params.guidance < 0:
        raise ValueError(f"--guidance={params.guidance:g} must be >= 0 (1: the model "
                         "alone, 0: its guide alone)")
    if params.guidance_groups and params.prediction != "categorical":
        raise ValueError("--guidance_groups picks one-hot groups of categorical prediction; "
                         f"--prediction={params.prediction} has none")
    if not 0 < params.guidance_max_t <= 1:
        raise ValueError(f"--guidance_max_t={params.guidance_max_t:g} must be in (0, 1] "
                         "(a fraction of the diffusion steps)")
    if params.export_average < 1:
        raise ValueError(f"--export_average={params.export_average} must be >= 1 (1: the "
                         "last EMA weights alone)")
    for name in ("batch_size", "log_every", "eval_every", "ckpt_every", "eval_batches"):
        if getattr(params, name) < 1:
            raise ValueError(f"--{name}={getattr(params, name)} must be >= 1")
    if params.train_steps < 0:
        raise ValueError(f"--train_steps={params.train_steps} must be >= 0 (0: export or "
                         "fine-tune setup only)")
    if params.hop < 1 or params.train_hop < 0:
        raise ValueError(f"--hop={params.hop} must be >= 1 and --train_hop="
                         f"{params.train_hop} >= 0 (0: the same as --hop)")
    if params.domain == "wave" and params.train_crop > sample_length(params):
        raise ValueError(f"--train_crop={params.train_crop} is longer than an example "
                         f"({sample_length(params)} samples: --segment_samples / --downsample); "
                         f"lower --train_crop or set it to 0")
