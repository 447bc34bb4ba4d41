"""Command-line flags -> Params: presets per domain, a bare --data_dir, validation."""

import json
import os

import pytest
from absl import flags

import params as params_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
    flag_values = flags.FlagValues()
    params_lib.define_flags(flag_values=flag_values)
    flag_values(["prog", *args])
    return params_lib.from_flags(flag_values)


def test_domain_picks_its_default_preset():
    assert parse().model == "causal_unet"
    wave = parse("--domain=wave")
    assert (wave.model, wave.dataset, wave.encoding) == ("wave_unet", "bach", "waveform")
    assert parse("--domain=wave", "--preset=wave_diffwave").model == "diffwave"


def test_bare_data_dir_means_that_folder(tmp_path):
    plain = tmp_path / "recordings"
    plain.mkdir()
    gtzan = tmp_path / "gtzan"
    (gtzan / "Data" / "genres_original" / "jazz").mkdir(parents=True)
    assert parse(f"--data_dir={plain}").dataset == "folder"
    assert parse("--domain=wave", f"--data_dir={plain}").dataset == "folder"
    assert parse("--domain=wave", f"--data_dir={gtzan}").dataset == "gtzan"
    # an explicit --dataset wins
    assert parse("--domain=wave", "--dataset=bach", f"--data_dir={gtzan}").dataset == "bach"
    assert parse("--dataset=lakh", f"--data_dir={plain}").dataset == "lakh"


def test_home_folder_is_expanded():
    params = parse("--dataset=folder", "--data_dir=~/music", "--cache_dir=~/cache")
    assert params.data_dir == os.path.expanduser("~/music") != "~/music"
    assert params.cache_dir == os.path.expanduser("~/cache")


@pytest.mark.parametrize("args, message", [
    (["--domain=wave", "--model=causal_unet"], "does not fit --domain=wave"),
    (["--domain=midi", "--encoding=waveform"], "does not fit --domain=midi"),
    (["--domain=sound"], "unknown domain 'sound'"),
    # 22050 / 4 = 5512.5 Hz: the default 3675 Hz cut-off is above its Nyquist
    (["--domain=wave", "--downsample=4"], r"--cutoff_hz=3675 must be in \(0, 2756.25\]"),
    (["--domain=wave", "--cutoff_hz=0"], "must be in"),
    (["--train_hop=-4"], "--train_hop=-4 >= 0"),
    (["--hop=0"], "--hop=0 must be >= 1"),
    (["--eval_every=0"], "--eval_every=0 must be >= 1"),
    (["--ckpt_every=0"], "--ckpt_every=0 must be >= 1"),
    (["--log_every=0"], "--log_every=0 must be >= 1"),
    (["--batch_size=0"], "--batch_size=0 must be >= 1"),
    (["--train_steps=-1"], "--train_steps=-1 must be >= 0"),
    (["--sample_spacing=karras"], "--sample_spacing='karras': choose one of"),
    (["--interval_lags=2", "--model=transformer"], "needs --model=causal_unet"),
    (["--interval_lags=-1"], "--interval_lags=-1 must be >= 0"),
    (["--interval_lags=2", "--encoding=analog_bits"], "encoding 'analog_bits' has none"),
    (["--interval_lags=2", "--encoding=chord_intervals"], "has none"),
    (["--note_attention=1", "--model=transformer"], "adds attention blocks to"),
    (["--note_attention=-1"], "--note_attention=-1 must be >= 0"),
    (["--pitch_views"], "encoding 'onehot' has none \\(use onehot_pitch\\)"),
    (["--pitch_views", "--preset=midi_pitch", "--model=transformer"],
     "--pitch_views needs --model=causal_unet"),
    (["--pitch_views", "--preset=midi_pitch", "--prediction=v", "--notime_warping",
      "--sample_spacing=uniform", "--group_loss_weights=", "--guidance_groups="],
     "shares logits of --prediction=categorical"),
    (["--voice_features", "--model=transformer"], "--voice_features needs --model=causal_unet"),
    (["--voice_features", "--encoding=onehot_pitch", "--group_loss_weights=2,1,1"],
     "encoding 'onehot_pitch' has another \\(use onehot\\)"),
    (["--voice_features", "--encoding=chord_intervals"], "has another"),
    (["--voice_features", "--encoding=chord_size"], "has another"),
    (["--voice_features", "--noself_condition"], "add --self_condition"),
    (["--guidance=-0.5"], r"--guidance=-0.5 must be >= 0"),
    (["--guidance_max_t=0"], r"--guidance_max_t=0 must be in \(0, 1\]"),
    (["--export_average=0"], r"--export_average=0 must be >= 1 \(1: the last EMA"),
    (["--guidance_max_t=1.2"], r"--guidance_max_t=1.2 must be in"),
    (["--guidance_groups=0", "--preset=midi_onehot"], "--prediction=v has none"),
    (["--group_loss_weights=2,0,1,1"], "each must be > 0"),
    (["--group_loss_weights=2,1", "--preset=midi_onehot"], "weighs the one-hot groups"),
    (["--rolling_share=0.5", "--model=transformer"], "need a time per note"),
    (["--rolling_share=2"], r"--rolling_share=2 must be in \[0, 1\]"),
    (["--sample_rolling=-1"], "--sample_rolling=-1 must be >= 0"),
    (["--sample_eta=0.5", "--sampler=dpmpp"], "sampler 'dpmpp' has none"),
    (["--sample_eta=1.5", "--sampler=ddim"], "above ddim's 1"),
    (["--domain=wave", "--encoding_from=weights/midi"], "the wave domain has none"),
])
def test_inconsistent_flags_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        parse(*args)


def test_float_lists_keep_their_fractions():
    assert parse("--group_loss_weights=2,1.5,1,1").group_loss_weights == (2.0, 1.5, 1.0, 1.0)
    assert parse("--stage_channels=8,16").stage_channels == (8, 16)


def test_seed_cutoff_is_exactly_the_new_nyquist():
    params = parse("--domain=wave")
    assert params.cutoff_hz == params_lib.model_rate(params) / 2 == 3675


def test_runs_saved_before_a_field_existed_still_resume():
    from training import trainer

    current = params_lib.get_preset("midi_cpu").to_dict()
    older = {k: v for k, v in current.items() if k not in ("sample_temperature", "cutoff_hz")}
    trainer.check_resumable(older, current, "runs/x")  # defaults fill the gaps
    changed = {**older, "stage_channels": [8, 8, 8]}
    with pytest.raises(ValueError, match="stage_channels"):
        trainer.check_resumable(changed, current, "runs/x")
    with pytest.raises(ValueError, match="no_such_field"):
        trainer.check_resumable({**current, "no_such_field": 1}, current, "runs/x")


@pytest.mark.parametrize("folder, preset", [("midi", "midi_wide"),
                                            (os.path.join("midi", "guide"), "midi_guide")])
def test_shipped_midi_weights_are_their_presets(folder, preset):
    """`python train.py --preset=P` reproduces the settings of the weights it names."""
    with open(os.path.join(ROOT, "weights", folder, "params.json"), encoding="utf-8") as handle:
        shipped = json.load(handle)
    # Fields added since keep their defaults (as when a run resumes).
    assert params_lib.Params.from_dict(shipped).to_dict() == (
        params_lib.get_preset(preset).to_dict())


@pytest.mark.parametrize("name", sorted(n for n, p in params_lib.PRESETS.items()
                                        if p.group_loss_weights or p.guidance_groups))
def test_preset_group_settings_fit_their_encoding_s_groups(name):
    """A preset's per-group weights and guided groups name groups its encoding has."""
    import numpy as np

    from data import encodings

    preset = params_lib.get_preset(name)
    piece = np.array([[48, 1.0, 0.0, 80], [60, 0.5, 1.0, 80], [72, 2.0, 0.5, 80]])
    encoding = encodings.get_encoding(preset.encoding)
    encoding.fit([piece])
    groups = len(encoding.categorical_groups)
    assert not preset.group_loss_weights or len(preset.group_loss_weights) == groups
    assert all(0 <= group < groups for group in preset.guidance_groups)


@pytest.mark.parametrize("name", sorted(params_lib.PRESETS))
def test_every_preset_passes_validation(name):
    params_lib.validate(params_lib.get_preset(name))
