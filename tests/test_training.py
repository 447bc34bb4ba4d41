"""Training loop, resumption, export/load and the weights errors, on tiny models."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import params as params_lib
from data import encodings
from training import budget, pipeline, trainer as trainer_lib, weights

from test_faults import TINY_CHANGES, exported_weights

FEATURES = 3


def tiny_params(**changes):
    # (the loop's tests need a model, not the U-Net: test_faults.TINY_CHANGES)
    return params_lib.get_preset("midi_tiny").replace(**{**TINY_CHANGES, **changes})


def toy_dataset(n=24, seq_len=16):
    rng = np.random.default_rng(0)
    return tf.data.Dataset.from_tensor_slices(
        {"notes": rng.uniform(-1, 1, (n, seq_len, FEATURES)).astype(np.float32)})


def make_trainer(model_dir, **changes):
    params = tiny_params(**changes)
    trainer = trainer_lib.Trainer(params, FEATURES, str(model_dir))
    trainer.attach(toy_dataset())
    trainer.restore_or_start()
    return trainer


def weights_of(model):
    return [w.copy() for w in model.get_weights()]


def test_pipeline_randomness_depends_on_position_only():
    first = next(iter(pipeline.training_stream(toy_dataset(), 3, 1000, 4)))
    again = next(iter(pipeline.training_stream(toy_dataset(), 3, 1000, 4)))
    other = next(iter(pipeline.training_stream(toy_dataset(), 4, 1000, 4)))
    for key in ("x_0", "t", "noise"):
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert not np.array_equal(first["noise"].numpy(), other["noise"].numpy())
    assert first["t"].dtype == tf.int32 and first["x_0"].shape == (4, 16, FEATURES)


# (Also the shipped U-Net, whose stages sit in Python lists that the
# checkpoint must still reach.)
@pytest.mark.parametrize("model", ["transformer", "causal_unet"])
def test_resumed_run_ends_with_identical_weights(tmp_path, model):
    straight = make_trainer(tmp_path / "straight", train_steps=6, model=model)
    straight.fit(progress=False)
    assert int(straight.step.numpy()) == 6

    first_half = make_trainer(tmp_path / "resumed", train_steps=3, ckpt_every=3, model=model)
    first_half.fit(progress=False)
    resumed = make_trainer(tmp_path / "resumed", train_steps=6, model=model)
    assert int(resumed.step.numpy()) == 3  # restored, not restarted
    resumed.fit(progress=False)
    for a, b in zip(weights_of(straight.model), weights_of(resumed.model)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights_of(straight.ema_model), weights_of(resumed.ema_model)):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.optimizer.iterations.numpy()) == 6


def test_training_time_adds_up_over_resumed_runs(tmp_path):
    first = make_trainer(tmp_path / "run", train_steps=2, ckpt_every=2)
    first_result = first.fit(progress=False)
    first_seconds = float(first.train_seconds.numpy())
    assert 0 < first_seconds <= first_result.seconds
    resumed = make_trainer(tmp_path / "run", train_steps=4)
    assert float(resumed.train_seconds.numpy()) == first_seconds  # checkpointed
    second_result = resumed.fit(progress=False)
    total = float(resumed.train_seconds.numpy())
    assert first_seconds < total <= first_seconds + second_result.seconds

    # A checkpoint written before the time was counted still restores; the
    # total is then unknown (NaN), not the last run's time alone.
    older = make_trainer(tmp_path / "older", train_steps=2)
    fields = {k: v for k, v in older._checkpointed.items()
              if k not in trainer_lib.LATER_VARIABLES}
    tf.train.CheckpointManager(tf.train.Checkpoint(**fields),
                               str(tmp_path / "older" / "checkpoints"),
                               max_to_keep=1).save(checkpoint_number=0)
    restored = make_trainer(tmp_path / "older", train_steps=2)
    assert np.isnan(restored.train_seconds.numpy())
    assert int(restored.planned_steps.numpy()) == 0
    restored.fit(progress=False)
    assert int(restored.step.numpy()) == 2 and np.isnan(restored.train_seconds.numpy())


def test_averaging_checkpoints_takes_the_mean_of_their_ema_weights(tmp_path):
    params = tiny_params(train_steps=5, ckpt_every=1, ema_decay=0.5)
    trainer = trainer_lib.Trainer(params, FEATURES, str(tmp_path), keep_checkpoints=4)
    trainer.attach(toy_dataset())
    trainer.restore_or_start()
    trainer.fit(progress=False)
    kept = sorted(name for name in os.listdir(tmp_path / "checkpoints") if name.endswith(".index"))
    assert kept == [f"ckpt-{step}.index" for step in (2, 3, 4, 5)]
    last_ema, raw = weights_of(trainer.ema_model), weights_of(trainer.model)

    def ema_in(step):  # read by name, independently of the trainer's own reader
        reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / f"ckpt-{step}"))
        return [reader.get_tensor(f"ema_weights/{i}/.ATTRIBUTES/VARIABLE_VALUE")
                for i in range(len(last_ema))]

    expected = [(a + b + c) / 3 for a, b, c in zip(ema_in(3), ema_in(4), ema_in(5))]
    assert trainer.average_checkpoints(3) == [3, 4, 5]
    averaged = weights_of(trainer.ema_model)
    assert any(not np.allclose(a, b) for a, b in zip(averaged, last_ema))
    for got, want in zip(averaged, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    for a, b in zip(weights_of(trainer.model), raw):  # the trained weights stay
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"holds 4 checkpoint\(s\); averaging 5 needs"):
        trainer.average_checkpoints(5)


def test_a_run_stopped_by_time_evaluates_its_final_weights(tmp_path):
    trainer = make_trainer(tmp_path, train_steps=50, eval_every=1000)
    held_out = pipeline.held_out_batches(toy_dataset(), 0, trainer.params.timesteps,
                                         trainer.params.batch_size, 1)
    result = trainer.fit(held_out, max_seconds=0, progress=False)
    assert result.step == 1  # out of time after one step, far from an eval_every step
    assert result.eval_losses and result.eval_losses == trainer.evaluate(held_out)


def test_a_stop_request_ends_the_run_with_a_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, train_steps=50, ckpt_every=1000)
    trainer.stop_requested.set()  # what Ctrl-C does in train.py
    result = trainer.fit(progress=False)
    assert result.step == 1 and result.interrupted
    assert result.stop_reason.startswith("interrupted at step 1: checkpoint saved")
    resumed = make_trainer(tmp_path, train_steps=2)
    assert int(resumed.step.numpy()) == 1  # saved, though ckpt_every is 1000
    assert not resumed.stop_requested.is_set()
    assert not resumed.fit(progress=False).interrupted


def test_stop_on_signals_sets_the_event_once_then_restores_the_handlers():
    import signal
    import threading
    from training import interrupt
    stop = threading.Event()
    before, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with interrupt.stop_on_signals(stop):
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)  # handled: the process goes on
        assert stop.is_set()
        assert signal.getsignal(signal.SIGTERM) is before  # a second one acts at once
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is before_int


def test_resume_refuses_other_architecture(tmp_path):
    make_trainer(tmp_path, train_steps=1)
    with pytest.raises(ValueError, match=r"model_dim: 16 -> 32.*--restart"):
        make_trainer(tmp_path, train_steps=1, model_dim=32)


def test_nonfinite_updates_are_skipped_then_training_stops(tmp_path):
    trainer = make_trainer(tmp_path, train_steps=10, max_nonfinite=3, ckpt_every=1)
    trainer.fit(progress=False)  # reaches step 10 normally
    before = weights_of(trainer.model)
    trainer.params = trainer.params.replace(train_steps=20)
    trainer.model.trainable_variables[0].assign(
        trainer.model.trainable_variables[0] * np.nan)
    poisoned = weights_of(trainer.model)
    result = trainer.fit(progress=False)
    assert result.stop_reason and "3 non-finite updates in a row" in result.stop_reason
    assert result.skipped == 3 and result.step == 13
    for a, b in zip(poisoned[1:], weights_of(trainer.model)[1:]):
        np.testing.assert_array_equal(a, b)  # no update was applied
    # The last good checkpoint (step 10) is still the latest one.
    assert trainer.manager.latest_checkpoint.endswith("ckpt-10")
    assert np.isfinite(before[0]).all()


def test_early_stopping_keeps_the_best_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, train_steps=50, eval_every=1, patience=2,
                           learning_rate=0.5, warmup_steps=0)
    held_out = pipeline.held_out_batches(toy_dataset(8), 0, 1000, 4, 1)
    result = trainer.fit(held_out, progress=False)
    assert result.stop_reason and result.stop_reason.startswith("early stop")
    assert result.step < 50
    best = tf.train.latest_checkpoint(os.path.join(tmp_path, "best"))
    assert best is not None and best != trainer.manager.latest_checkpoint


def test_eta_sets_the_per_step_noise_of_ddim_and_the_sde_solver(tmp_path):
    from training import sampling

    trainer = make_trainer(tmp_path, train_steps=1)
    trainer.fit(progress=False)

    def sample(sampler_name, eta=-1.0):
        params = trainer.params.replace(sample_eta=eta)
        return sampling.sample_features(trainer.ema_model, params, seed_log_encoding(), 2,
                                        sampler_name, 4, seed=0)

    # Without fresh noise the SDE solver is DPM-Solver++(2M); DDIM's own eta is 0.
    np.testing.assert_array_equal(sample("dpmpp_sde", 0.0), sample("dpmpp"))
    np.testing.assert_array_equal(sample("dpmpp_sde", 1.0), sample("dpmpp_sde"))
    np.testing.assert_array_equal(sample("ddim", 0.0), sample("ddim"))
    assert np.abs(sample("ddim", 1.0) - sample("ddim")).max() > 1e-4
    assert np.abs(sample("dpmpp_sde", 2.0) - sample("dpmpp_sde")).max() > 1e-4
    with pytest.raises(ValueError, match="sampler 'ddpm' has none"):
        sample("ddpm", 0.5)
    with pytest.raises(ValueError, match="above ddim's 1"):
        sample("ddim", 1.5)


def seed_log_encoding():
    return encodings.get_encoding("seed_log", {
        "encoding": "seed_log", "features": ["midi_pitch", "duration", "delta"],
        "minimum": [40, 0.25, 0], "maximum": [80, 4, 4], "mean_velocity": 90.0,
        "num_notes": 10})


def test_overfit_batches_loss_falls_tenfold(tmp_path):
    trainer = make_trainer(tmp_path, train_steps=200, learning_rate=3e-3, warmup_steps=10,
                           overfit_batches=1, log_every=10, eval_every=1000,
                           ckpt_every=1000)
    result = trainer.fit(progress=False)
    assert result.step == 200
    losses = [float(tf.make_ndarray(event.tensor_proto))
              for event in read_events(tmp_path).Tensors("loss")]
    assert losses[0] / np.mean(losses[-3:]) > 10, losses
    ema, raw = trainer.ema_model.get_weights(), trainer.model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(ema, raw))  # the EMA lags


def read_events(model_dir):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        os.path.join(model_dir, "train"), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def logged_train_steps(model_dir):
    """train_steps as the HParams tab shows it."""
    from tensorboard.plugins.hparams import metadata

    content = read_events(model_dir).PluginTagToContent(metadata.PLUGIN_NAME)
    info = metadata.parse_session_start_info_plugin_data(
        content[metadata.SESSION_START_INFO_TAG])
    return info.hparams["train_steps"].number_value


def test_tensorboard_has_curves_samples_and_hparams(tmp_path):
    trainer = trainer_lib.Trainer(tiny_params(train_steps=4, sample_every=4, eval_every=2),
                                  FEATURES, str(tmp_path))
    trainer.attach(toy_dataset(), seed_log_encoding())
    trainer.restore_or_start()
    held_out = pipeline.held_out_batches(toy_dataset(8), 0, 1000, 4, 2)
    trainer.fit(held_out, progress=False)
    events = read_events(tmp_path)
    tags = set(events.Tags()["tensors"])
    for tag in ("loss", "grad_norm", "learning_rate", "examples_per_second",
                "eval_loss", "eval_loss_ema", "samples/piano_roll", "samples/audio"):
        assert tag in tags, tag
    assert any(tag.startswith("eval_loss_t") for tag in tags)
    image = events.Tensors("samples/piano_roll")[0].tensor_proto
    assert tf.make_ndarray(image).shape[0] >= 3  # width, height, encoded PNGs
    assert logged_train_steps(tmp_path) == 4
    assert os.path.getsize(tmp_path / "loss.png") > 1000


def test_self_conditioned_model_trains_and_samples(tmp_path):
    from training import sampling

    trainer = make_trainer(tmp_path, train_steps=2, self_condition=True,
                           loss_weighting="min_snr", prediction="v", schedule="cosine")
    trainer.fit(progress=False)
    assert trainer.model.layers  # built with 2 x features inputs
    features = sampling.sample_features(trainer.ema_model, trainer.params,
                                        seed_log_encoding(), 2, "dpmpp", 3, seed=0)
    assert features.shape == (2, 16, FEATURES) and np.all(np.isfinite(features))


def test_sampling_follows_the_params_step_spacing(tmp_path):
    from training import sampling

    trainer = make_trainer(tmp_path, train_steps=1)
    trainer.fit(progress=False)

    def sample(spacing, sampler_name="dpmpp"):
        params = trainer.params.replace(sample_spacing=spacing)
        return sampling.sample_features(trainer.ema_model, params, seed_log_encoding(), 2,
                                        sampler_name, 4, seed=0)

    own = sample("")
    np.testing.assert_array_equal(own, sample("logsnr"))  # DPM-Solver++'s own grid
    assert np.abs(sample("uniform") - own).max() > 1e-4
    np.testing.assert_array_equal(sample("", "ddpm"), sample("uniform", "ddpm"))


def test_export_and_load_round_trip(tmp_path):
    trainer = make_trainer(tmp_path / "run", train_steps=1)
    trainer.fit(progress=False)
    encoding = seed_log_encoding()
    out = tmp_path / "weights"
    weights.export(out, trainer.params, encoding, trainer.ema_model, {"step": 1})
    loaded = weights.load(str(out))
    assert loaded.params == trainer.params and loaded.metadata == {"step": 1}
    x = tf.random.stateless_normal([2, 16, FEATURES], [1, 2])
    t = tf.constant([3.0, 700.0])
    np.testing.assert_allclose(loaded.model([x, t]).numpy(),
                               trainer.ema_model([x, t]).numpy(), atol=1e-6)
    with pytest.raises(FileExistsError, match="--overwrite"):
        weights.export(out, trainer.params, encoding, trainer.ema_model, {})
    weights.export(out, trainer.params, encoding, trainer.ema_model, {"step": 2},
                   overwrite=True)
    assert json.load(open(out / "metadata.json")) == {"step": 2}
    assert sorted(os.listdir(tmp_path)) == ["run", "weights"]  # no staging left


def test_a_pitch_views_model_exports_and_loads_with_its_group_width(tmp_path):
    notes = np.array([[40, 1.0, 0.0, 80], [52, 0.5, 1.0, 80], [66, 2.0, 0.5, 80]])
    encoding = encodings.get_encoding("onehot_pitch")
    encoding.fit([notes])  # 27 semitones (15 views), 3 durations, 3 gaps
    params = tiny_params(encoding="onehot_pitch", prediction="categorical",
                         self_condition=True, pitch_views=True, model="causal_unet")
    model = trainer_lib.build_denoiser(params, encoding.num_features,
                                      encoding.categorical_groups)
    assert model.pitch_views == 27 and model.pitch_view_layer.num_views == 15
    out = tmp_path / "weights"
    weights.export(out, params, encoding, model, {})
    loaded = weights.load(str(out))
    assert loaded.model.pitch_views == 27
    x = tf.random.stateless_normal([2, 16, 2 * encoding.num_features], [1, 2])
    t = tf.constant([3.0, 700.0])
    np.testing.assert_allclose(loaded.model([x, t]).numpy(), model([x, t]).numpy(),
                               atol=1e-6)


def test_a_voice_features_model_exports_and_loads_with_its_rhythm_values(tmp_path):
    notes = np.array([[40, 1.0, 0.0, 80], [52, 0.5, 1.0, 80], [66, 2.0, 0.5, 80]])
    encoding = encodings.get_encoding("onehot")
    encoding.fit([notes])  # 3 octaves, 3 durations, 3 gaps
    params = tiny_params(encoding="onehot", prediction="categorical", self_condition=True,
                         voice_features=True, model="causal_unet")
    model = trainer_lib.build_denoiser(params, encoding.num_features,
                                      encoding.categorical_groups, encoding.rhythm_values)
    out = tmp_path / "weights"
    weights.export(out, params, encoding, model, {})
    loaded = weights.load(str(out))
    assert loaded.model.voice_layer.duration_values == (0.5, 1.0, 2.0)
    assert loaded.model.voice_layer.gap_values == (0.0, 0.5, 1.0)
    codes = encoding.encode(np.array([[48, 1.0, 0.0, 80], [50, 0.5, 1.0, 80]] * 8))
    x = tf.concat([tf.random.stateless_normal([1, 16, encoding.num_features], [1, 2]),
                   codes[None]], axis=-1)
    t = tf.constant([3.0])
    np.testing.assert_allclose(loaded.model([x, t]).numpy(), model([x, t]).numpy(),
                               atol=1e-6)


def guided_folder(tmp_path, encoding):
    """A guided model exported to tmp_path/guided, then a smaller guide into
    its guide/ folder; returns (model trainer, guide trainer, folder)."""
    model = make_trainer(tmp_path / "run", train_steps=1)
    guide = make_trainer(tmp_path / "guide_run", train_steps=1, seed=1, model_dim=8,
                         mlp_dim=16)
    out = tmp_path / "guided"
    weights.export(out, model.params.replace(guidance=2.0), encoding, model.ema_model, {})
    weights.export(out / weights.GUIDE_DIR, guide.params, encoding, guide.ema_model, {})
    return model, guide, out


def test_a_guide_ships_inside_the_weights_folder_and_must_read_the_same_data(tmp_path):
    encoding = seed_log_encoding()
    model, guide, out = guided_folder(tmp_path, encoding)
    assert sorted(os.listdir(out)) == sorted([*weights.FILES, weights.GUIDE_DIR])
    loaded = weights.load(str(out))
    assert loaded.params.guidance == 2.0 and loaded.guide is None  # read on demand
    guide_model = weights.load_guide(str(out / weights.GUIDE_DIR), loaded)
    x = tf.random.stateless_normal([2, 16, FEATURES], [1, 2])
    t = tf.constant([3.0, 700.0])
    np.testing.assert_allclose(guide_model([x, t]).numpy(),
                               guide.ema_model([x, t]).numpy(), atol=1e-6)
    # Another objective or noise schedule cannot be mixed with this model's output.
    other = make_trainer(tmp_path / "other_run", train_steps=1, prediction="v",
                         schedule="cosine")
    weights.export(tmp_path / "other", other.params, encoding, other.ema_model, {})
    with pytest.raises(weights.WeightsError, match=r"other cannot guide this model: its "
                                                   r"prediction, schedule differ"):
        weights.load_guide(str(tmp_path / "other"), loaded)


def test_re_exporting_a_model_keeps_its_guide_only_if_it_still_fits(tmp_path, capsys,
                                                                   monkeypatch):
    encoding = seed_log_encoding()
    model, guide, out = guided_folder(tmp_path, encoding)
    guide_files = {name: open(out / weights.GUIDE_DIR / name, "rb").read()
                   for name in weights.FILES}
    model_files = {name: open(out / name, "rb").read() for name in weights.FILES}

    # A rename that fails at the swap leaves the old folder whole, guide included.
    real_replace = os.replace

    def failing_swap(source, target):
        if os.path.basename(source).startswith(".guided."):
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(weights.os, "replace", failing_swap)
    with pytest.raises(OSError, match="disk full"):
        weights.export(out, model.params.replace(guidance=2.0), encoding, model.ema_model,
                       {"step": 9}, overwrite=True)
    monkeypatch.undo()
    assert {name: open(out / name, "rb").read() for name in weights.FILES} == model_files
    assert {name: open(out / weights.GUIDE_DIR / name, "rb").read()
            for name in weights.FILES} == guide_files
    # A new model of the same data and objective (another width): the guide stays.
    wider = make_trainer(tmp_path / "wider_run", train_steps=1, model_dim=32)
    weights.export(out, wider.params.replace(guidance=2.0), encoding, wider.ema_model,
                   {"step": 2}, overwrite=True)
    assert f"kept {out / weights.GUIDE_DIR}" in capsys.readouterr().out
    assert json.load(open(out / "metadata.json")) == {"step": 2}
    assert {name: open(out / weights.GUIDE_DIR / name, "rb").read()
            for name in weights.FILES} == guide_files
    loaded = weights.load(str(out))
    assert loaded.model.model_dim == 32
    weights.load_guide(str(out / weights.GUIDE_DIR), loaded)
    # Another objective: the old guide cannot guide it and is dropped.
    other = make_trainer(tmp_path / "other_run", train_steps=1, prediction="v",
                         schedule="cosine")
    weights.export(out, other.params, encoding, other.ema_model, {}, overwrite=True)
    assert "its prediction, schedule differ" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(weights.FILES)
    # A guide folder without its params is damaged: dropped, and the export goes on.
    os.makedirs(out / weights.GUIDE_DIR)
    weights.export(out, other.params, encoding, other.ema_model, {"step": 3}, overwrite=True)
    assert f"dropped {out / weights.GUIDE_DIR}: damaged" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(weights.FILES)
    assert sorted(os.listdir(tmp_path)) == ["guide_run", "guided", "other_run", "run",
                                            "wider_run"]


def test_float16_export_halves_the_file_and_loads_the_rounded_weights(tmp_path):
    trainer = make_trainer(tmp_path / "run", train_steps=1)
    encoding = seed_log_encoding()
    full, half = tmp_path / "full", tmp_path / "half"
    weights.export(full, trainer.params, encoding, trainer.ema_model, {})
    weights.export(half, trainer.params, encoding, trainer.ema_model, {}, dtype="float16")

    def arrays(folder):
        return [(array.dtype, array.nbytes) for array in exported_weights(folder).values()]

    full_arrays, half_arrays = arrays(full), arrays(half)
    assert {dtype for dtype, _ in full_arrays} == {np.dtype("float32")}
    assert {dtype for dtype, _ in half_arrays} == {np.dtype("float16")}
    assert sum(n for _, n in full_arrays) == 2 * sum(n for _, n in half_arrays) > 0
    modes = [os.stat(folder / weights.WEIGHTS_FILE).st_mode for folder in (full, half)]
    assert modes[0] == modes[1]
    loaded = weights.load(str(half))
    for variable, original in zip(loaded.model.weights, trainer.ema_model.weights):
        assert variable.dtype == "float32"
        np.testing.assert_array_equal(
            variable.numpy(), original.numpy().astype(np.float16).astype(np.float32))
    x = tf.random.stateless_normal([2, 16, FEATURES], [1, 2])
    t = tf.constant([3.0, 700.0])
    np.testing.assert_allclose(loaded.model([x, t]).numpy(),
                               trainer.ema_model([x, t]).numpy(), rtol=0.02, atol=0.02)
    with pytest.raises(ValueError, match="unknown weights dtype 'int8'"):
        weights.store_as(str(half / weights.WEIGHTS_FILE), "int8")
    # export refuses it before writing anything (no model is even needed)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match="unknown weights dtype 'int8'"):
        weights.export(tmp_path / "int8", trainer.params, encoding, None, {}, dtype="int8")
    assert sorted(os.listdir(tmp_path)) == before


def test_float16_storage_refuses_values_out_of_range(tmp_path):
    import h5py

    path = tmp_path / "big.weights.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("layer").create_dataset("kernel", data=np.array([1.0, 7e4], np.float32))
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"big\.weights\.h5: /layer/kernel has values beyond "
                                         r"float16's range \(largest 7e\+04\)"):
        weights.store_as(str(path), "float16")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["big.weights.h5"]  # no staging file left


def test_the_weights_module_loads_without_tensorflow():
    """train.py's flag refusals and generate.py's missing-folder error come
    before TensorFlow loads (seconds): both import training.weights first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, training.weights; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_weights_errors_are_one_line_with_a_remedy(tmp_path):
    with pytest.raises(weights.WeightsError, match=r"no weights folder .*train\.py --export"):
        weights.load(str(tmp_path / "missing"))
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "params.json").write_text(json.dumps(tiny_params().to_dict()))
    with pytest.raises(weights.WeightsError, match="lacks encoding.json"):
        weights.load(str(folder))
    for name in ("encoding.json", "metadata.json"):
        (folder / name).write_text(json.dumps({"name": "seed_log", "stats": None}))
    (folder / weights.WEIGHTS_FILE).write_bytes(b"not an hdf5 file")
    with pytest.raises(weights.WeightsError) as error:
        weights.load(str(folder))
    assert "damaged" in str(error.value) and "\n" not in str(error.value)


def test_learning_rate_warms_up_then_decays():
    schedule = trainer_lib.learning_rate_schedule(tiny_params(
        learning_rate=1e-3, warmup_steps=10, train_steps=110))
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    assert values[0] == 0.0 and values[1] == pytest.approx(5e-4)
    assert values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4] == pytest.approx(1e-5)


def test_steps_that_fit_count_the_held_out_evaluations():
    # 0.5 s per step plus a 10 s evaluation every 20 steps: 1 s per step.
    assert budget.steps_that_fit(100.0, 0.5, 10.0, 20) == 100
    assert budget.steps_that_fit(100.0, 0.5) == 200
    assert budget.steps_that_fit(0.1, 0.5) == 1  # always at least one more step


def test_learning_rate_decay_follows_its_variable_inside_the_step():
    params = tiny_params(learning_rate=1e-3, warmup_steps=10, train_steps=110)
    length = tf.Variable(trainer_lib.decay_steps(params), dtype=tf.int64)
    schedule = tf.function(trainer_lib.learning_rate_schedule(params, length))
    fixed = trainer_lib.learning_rate_schedule(params)
    shorter = trainer_lib.learning_rate_schedule(params.replace(train_steps=60))
    for step in (0, 5, 10, 35, 60, 110):
        assert float(schedule(step)) == pytest.approx(float(fixed(step)))
    length.assign(50)  # traced once, read at every call
    for step in (5, 35, 60, 110):
        assert float(schedule(step)) == pytest.approx(float(shorter(step)))
    assert float(schedule(60)) == pytest.approx(1e-5)


def fit_planned(model_dir, monkeypatch, more_steps, **changes):
    """A fit_schedule run whose pace says `more_steps` fit after the plan;
    returns the trainer and the arguments the plan was computed from."""
    calls = []

    def steps_that_fit(*args):
        calls.append(args)
        return more_steps

    monkeypatch.setattr(budget, "PACE_STEPS", 2)
    monkeypatch.setattr(budget, "steps_that_fit", steps_that_fit)
    trainer = make_trainer(model_dir, **changes)
    held_out = pipeline.held_out_batches(toy_dataset(), 1, trainer.params.timesteps, 4, 1)
    trainer.fit(held_out, max_seconds=600, progress=False, fit_schedule=True)
    return trainer, calls


def test_fit_schedule_plans_like_a_fixed_length_and_a_resumed_run_keeps_it(tmp_path,
                                                                          monkeypatch):
    changes = dict(warmup_steps=4, eval_every=3, ckpt_every=100)
    # (train_steps=3 ends before the plan is due: the plan replaces it.)
    planned, calls = fit_planned(tmp_path / "planned", monkeypatch, 5, train_steps=3,
                                 **changes)
    [(seconds_left, seconds_per_step, eval_seconds, eval_every)] = calls
    assert 0 < seconds_left < 600 and seconds_per_step > 0 and eval_seconds > 0
    assert eval_every == 3
    # Planned at step 4 (the warm-up's end) for 5 more: the run ends at 9, its
    # learning rate decayed to 1%, exactly as a run told --train_steps=9.
    assert int(planned.step.numpy()) == 9 and planned.params.train_steps == 9
    assert int(planned.planned_steps.numpy()) == 9
    assert float(planned.optimizer.learning_rate) == pytest.approx(
        planned.params.learning_rate * 0.01)
    with open(tmp_path / "planned" / "params.json", encoding="utf-8") as handle:
        assert json.load(handle)["train_steps"] == 9
    assert logged_train_steps(tmp_path / "planned") == 9  # the plan, not the flag's 3
    fixed = make_trainer(tmp_path / "fixed", train_steps=9, **changes)
    fixed.fit(progress=False)
    for a, b in zip(weights_of(planned.model), weights_of(fixed.model)):
        np.testing.assert_array_equal(a, b)

    # The same command again (its train_steps=3 included): no new plan, no step.
    resumed, calls = fit_planned(tmp_path / "planned", monkeypatch, 7, train_steps=3,
                                 **changes)
    assert calls == [] and int(resumed.step.numpy()) == 9
    assert resumed.params.train_steps == 9 and int(resumed.decay_steps.numpy()) == 5
    # Without fit_schedule the flags decide, as in any resumed run.
    extended = make_trainer(tmp_path / "planned", train_steps=11, **changes)
    extended.fit(progress=False)
    assert int(extended.step.numpy()) == 11 and int(extended.decay_steps.numpy()) == 7
    with pytest.raises(ValueError, match="fit_schedule plans the run to fit max_seconds"):
        extended.fit(progress=False, fit_schedule=True)


@pytest.mark.parametrize("folder", ["midi", os.path.join("midi", "guide")])
def test_shipped_weights_load_into_the_current_network(folder):
    """Options added since (fields with defaults) build the network they were trained as."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    loaded = weights.load(os.path.join(root, "weights", folder))
    assert loaded.model.count_params() == loaded.metadata["parameters"]
    assert loaded.model.note_attention == 0 and not loaded.model.note_attention_blocks
