"""End-to-end runs of the command-line tools, as a user runs them."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

from test_faults import TINY_MODEL, assert_same_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [*TINY_MODEL, "--progress=false"]


def run(*args, check=True):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_piece(path, seed, n=40, program=0, is_drum=False):
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program, is_drum=is_drum)
    start = 0.0
    for _ in range(n):
        duration = float(rng.choice([0.25, 0.5]))
        instrument.notes.append(pretty_midi.Note(80, int(rng.integers(55, 75)), start,
                                                 start + duration))
        start += duration
    midi.instruments.append(instrument)
    midi.write(str(path))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for index in range(8):
        write_piece(folder / f"good_{index}.mid", index)
    write_piece(folder / "drums_only.mid", 99, is_drum=True)
    (folder / "corrupt.mid").write_bytes(os.urandom(300))
    (folder / "empty.mid").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def tiny_weights(corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    weights = work / "weights"
    result = run("train.py", *TINY, "--dataset=folder", f"--data_dir={corpus}",
                 f"--cache_dir={work / 'cache'}", f"--model_dir={work / 'model'}",
                 "--test_fraction=0.3", f"--export={weights}")
    assert "exported EMA weights" in result.stdout
    return weights


@pytest.mark.slow
def test_prepare_only_reports_good_and_broken_files(corpus, tmp_path):
    result = run("train.py", *TINY, "--dataset=folder", f"--data_dir={corpus}",
                 f"--cache_dir={tmp_path}", "--prepare_only")
    out = result.stdout
    assert "11 listed, 8 read, 3 skipped" in out
    for name in ("corrupt.mid", "empty.mid", "drums_only.mid"):
        assert name in out
    assert not os.path.exists(tmp_path / "model")


@pytest.mark.slow
def test_generate_writes_midi_wav_png_and_never_overwrites(tiny_weights, tmp_path):
    out = tmp_path / "samples"
    result = run("generate.py", str(out), "--n=2", f"--weights={tiny_weights}",
                 "--steps=3", "--progress=false")
    assert "wrote 2 pieces" in result.stdout
    names = sorted(os.listdir(out))
    assert names == ["sample_1.mid", "sample_1.png", "sample_1.wav",
                     "sample_2.mid", "sample_2.png", "sample_2.wav"]
    midi = pretty_midi.PrettyMIDI(str(out / "sample_1.mid"))
    # Overlapping notes of one pitch are written on separate channels.
    assert sum(len(instrument.notes) for instrument in midi.instruments) == 16
    before = (out / "sample_1.mid").read_bytes()

    refused = run("generate.py", str(out), "--n=2", f"--weights={tiny_weights}",
                  "--steps=3", "--seed=5", check=False)
    assert refused.returncode != 0
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert (out / "sample_1.mid").read_bytes() == before

    # With --overwrite the folder holds this run's files only (evaluate.py
    # scores every MIDI file in it).
    replaced = run("generate.py", str(out), "--n=1", f"--weights={tiny_weights}",
                   "--steps=3", "--seed=5", "--overwrite", "--wav=false", "--png=false")
    assert (out / "sample_1.mid").read_bytes() != before
    assert os.listdir(out) == ["sample_1.mid"]
    assert "removed 5 sample files of an earlier run" in replaced.stdout

    for flag in ("--n=0", "--steps=-1", "--tempo=0", "--sample_rate=0"):
        refused = run("generate.py", str(tmp_path / "bad"), flag, f"--weights={tiny_weights}",
                      check=False)
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: {flag} must be positive"), flag
        assert not os.path.exists(tmp_path / "bad")


@pytest.mark.slow
def test_generate_checks_eta_against_the_sampler_asked_for(tiny_weights, tmp_path):
    out = tmp_path / "eta"
    refused = run("generate.py", str(out), "--n=2", f"--weights={tiny_weights}",
                  "--steps=3", "--eta=0.5", check=False)  # the weights' sampler: dpmpp
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: eta=0.5 sets the per-step noise of ddim and dpmpp_sde; sampler 'dpmpp' "
        "has none (leave eta unset, or -1)")
    assert not os.path.exists(out)
    result = run("generate.py", str(out), "--n=2", f"--weights={tiny_weights}", "--steps=3",
                 "--sampler=ddim", "--eta=1", "--progress=false", "--wav=false", "--png=false")
    assert "wrote 2 pieces" in result.stdout and "(ddim, 3 steps" in result.stdout


@pytest.mark.slow
def test_generate_without_weights_says_how_to_get_them(tmp_path):
    result = run("generate.py", str(tmp_path / "out"), f"--weights={tmp_path / 'none'}",
                 check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: no weights folder") and "train.py --export" in last_line
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_shipped_weights_generate(tmp_path):
    """The README's first command, on the weights committed in weights/midi."""
    assert os.path.isdir(os.path.join(ROOT, "weights", "midi"))
    result = run("generate.py", str(tmp_path), "--n=2", "--steps=5", "--progress=false")
    assert "wrote 2 pieces" in result.stdout
    assert len(os.listdir(tmp_path)) == 6


@pytest.mark.slow
def test_export_only_averages_the_last_checkpoints_and_keeps_the_run(corpus, tiny_weights,
                                                                    tmp_path):
    common = [*TINY, "--dataset=folder", f"--data_dir={corpus}",
              f"--cache_dir={tiny_weights.parent / 'cache'}", "--test_fraction=0.3"]
    model_dir = tiny_weights.parent / "model"  # midi_tiny: checkpoints at steps 2 and 4
    kept = sorted(os.listdir(model_dir / "checkpoints"))
    out = tmp_path / "averaged"
    exporting = [*common, f"--model_dir={model_dir}", f"--export={out}", "--export_only"]
    result = run("train.py", *exporting, "--export_average=2")
    assert "averaged the EMA weights of the checkpoints at steps [2, 4]" in result.stdout
    metadata = json.load(open(out / "metadata.json"))
    trained = json.load(open(tiny_weights / "metadata.json"))
    assert metadata["step"] == 4 and metadata["averaged_checkpoints"] == [2, 4]
    assert metadata["train_minutes_this_run"] == 0.0
    # The run's own training time is carried by its checkpoints.
    assert metadata["train_minutes"] == pytest.approx(trained["train_minutes"])
    assert 0 < trained["train_minutes"] <= trained["train_minutes_this_run"]
    # The loss recorded is the average's own; the params are the run's, with
    # the averaging that made these weights.
    assert metadata["eval_losses"]["eval_loss_ema"] != trained["eval_losses"]["eval_loss_ema"]
    assert metadata["eval_losses"]["eval_loss"] == trained["eval_losses"]["eval_loss"]
    assert json.load(open(out / "params.json")) == {
        **json.load(open(tiny_weights / "params.json")), "export_average": 2}
    # --overwrite replaces the export, never the run it exports; without
    # averaging, the export is the training run's own.
    run("train.py", *exporting, "--overwrite")
    assert sorted(os.listdir(model_dir / "checkpoints")) == kept
    assert_same_weights(out, tiny_weights)
    assert json.load(open(out / "metadata.json"))["averaged_checkpoints"] is None
    empty = run("train.py", *common, f"--model_dir={tmp_path / 'none'}",
                f"--export={tmp_path / 'x'}", "--export_only", check=False)
    assert empty.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'none'} holds no checkpoint to export; train it first")
    assert not os.path.exists(tmp_path / "none") and not os.path.exists(tmp_path / "x")


@pytest.mark.slow
def test_init_from_starts_a_new_run_from_exported_weights(corpus, tiny_weights, tmp_path):
    common = [*TINY, "--dataset=folder", f"--data_dir={corpus}",
              f"--cache_dir={tiny_weights.parent / 'cache'}", "--test_fraction=0.3"]
    result = run("train.py", *common, f"--init_from={tiny_weights}", "--train_steps=0",
                 f"--model_dir={tmp_path / 'model'}", f"--export={tmp_path / 'copy'}")
    assert f"initialised from {tiny_weights} (4 steps)" in result.stdout
    assert "warning" not in result.stdout  # the same data, the same statistics

    # zero steps: the exported EMA is exactly the source's
    assert_same_weights(tiny_weights, tmp_path / "copy")

    # Transposed copies widen the pitch range, so other statistics; the
    # source's are kept by --encoding_from.
    wider = [*common, "--transpose=3", f"--init_from={tiny_weights}", "--train_steps=0"]
    warned = run("train.py", *wider, f"--model_dir={tmp_path / 'wide'}")
    assert (f"warning: {tiny_weights}'s encoding statistics differ from the ones fitted on "
            f"this data, so its codes now stand for other notes; pass "
            f"--encoding_from={tiny_weights} to keep them") in warned.stdout.splitlines()
    kept = run("train.py", *wider, f"--encoding_from={tiny_weights}",
               f"--model_dir={tmp_path / 'kept'}", f"--export={tmp_path / 'kept_export'}")
    assert "warning" not in kept.stdout and f"statistics (from {tiny_weights}" in kept.stdout
    assert (json.loads((tmp_path / "kept_export" / "encoding.json").read_text())
            == json.loads((tiny_weights / "encoding.json").read_text()))

    def refusal(flag, name):
        refused = run("train.py", *common, f"--init_from={tiny_weights}", flag,
                      f"--model_dir={tmp_path / name}", check=False)
        assert refused.returncode != 0
        return refused.stderr.strip().splitlines()[-1]

    assert refusal("--model_dim=8", "other").startswith(
        f"error: {tiny_weights} holds another architecture")
    # Same shapes, other function: a causal network's weights in a bidirectional one.
    assert refusal("--causal=false", "bidirectional") == (
        f"error: {tiny_weights} was trained with --causal=True; pass the same --causal "
        "to fine-tune it")
    # Same width, other meaning: log-pitch triples read as Hz triples.
    assert refusal("--encoding=seed_hz", "hz") == (
        f"error: {tiny_weights} was trained with --encoding=seed_log; pass the same "
        "--encoding to fine-tune it")


@pytest.mark.slow
def test_autoguided_weights_sample_with_the_guide_in_their_folder(corpus, tiny_weights,
                                                                   tmp_path):
    common = [*TINY, "--dataset=folder", f"--data_dir={corpus}",
              f"--cache_dir={tiny_weights.parent / 'cache'}", "--test_fraction=0.3"]
    guided = tmp_path / "guided"
    # Large steps, for the model here and its guide below: the tiny transformer
    # starts near "predict 0", where every x_0 estimate clips to the same notes
    # whatever the guidance.
    run("train.py", *common, "--guidance=3", "--guidance_max_t=0.8",
        f"--init_from={tiny_weights}", "--train_steps=4", "--learning_rate=0.05",
        f"--model_dir={tmp_path / 'm'}", f"--export={guided}")

    def sample(name, *flags):
        out = tmp_path / name
        result = run("generate.py", str(out), "--n=2", f"--weights={guided}", "--steps=3",
                     "--progress=false", "--wav=false", "--png=false", *flags)
        return [(out / f"sample_{i}.mid").read_bytes() for i in (1, 2)], result.stdout

    plain, _ = sample("plain", "--guidance=1")
    unguided, out = sample("no_guide_yet")
    assert f"{guided / 'guide'} does not exist, so no autoguidance" in out
    assert unguided == plain
    # another initialisation stands in for a smaller, shorter-trained model
    run("train.py", *common, "--seed=1", "--learning_rate=0.05",
        f"--model_dir={tmp_path / 'g'}", f"--export={guided / 'guide'}")
    assert sample("with_guide")[0] != plain
    # The model as its own guide: guide + w (model - guide) is the model.
    assert sample("self", f"--guide={guided}")[0] == plain
    refused = run("generate.py", str(tmp_path / "none"), f"--weights={tiny_weights}",
                  "--guidance=2", check=False)
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "error: --guidance=2 needs a guide network")


@pytest.mark.slow
def test_restart_and_overwrite_never_lose_a_run_by_mistake(corpus, tiny_weights, tmp_path):
    """--overwrite replaces an export only; --restart alone deletes a run, and
    every misuse is refused before data is prepared or anything is deleted."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_weights.parent / "model", model_dir)
    before = sorted(os.listdir(model_dir / "checkpoints"))
    fresh_cache = tmp_path / "cache"
    common = [*TINY, "--dataset=folder", f"--data_dir={corpus}", "--test_fraction=0.3",
              f"--model_dir={model_dir}"]
    refusals = {
        "--overwrite replaces --export, and none was given; to start --model_dir "
        "afresh pass --restart": ["--overwrite"],
        "--fit_schedule fits the run to --max_minutes; pass it": ["--fit_schedule"],
        "--restart would delete the run that --export_only exports": [
            "--restart", "--export_only", f"--export={tmp_path / 'x'}"],
        f"{tiny_weights} already exists; pass --overwrite to replace it (the run in "
        "--model_dir is kept either way)": [f"--export={tiny_weights}"],
        f"no weights folder at {tmp_path / 'none'}": [
            "--restart", f"--init_from={tmp_path / 'none'}"],
        f"--restart would delete --cache_dir={model_dir / 'cache'}, which is inside "
        f"--model_dir={model_dir}": ["--restart", f"--cache_dir={model_dir / 'cache'}"],
    }
    for message, extra in refusals.items():
        result = run("train.py", *common, f"--cache_dir={fresh_cache}", *extra, check=False)
        assert result.returncode != 0 and message in result.stderr, (extra, result.stderr)
        assert sorted(os.listdir(model_dir / "checkpoints")) == before
        assert not os.path.exists(fresh_cache)  # refused before preparing any data
    cache = f"--cache_dir={tiny_weights.parent / 'cache'}"
    # --init_from is ignored when the run resumes, so its folder need not exist.
    resumed = run("train.py", *common, cache, "--train_steps=6",
                  f"--init_from={tmp_path / 'none'}")
    assert "resumed from step 4" in resumed.stdout
    restarted = run("train.py", *common, cache, "--train_steps=2", "--restart")
    assert f"--restart: deleted {model_dir}" in restarted.stdout
    assert "resumed" not in restarted.stdout and "stopped at step 2" in restarted.stdout
