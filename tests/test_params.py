"""Command-line flags -> Params: presets per domain, a bare --data_dir, validation."""

import os

import pytest
from absl import flags

import params as params_lib


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
])
def test_inconsistent_flags_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        parse(*args)
