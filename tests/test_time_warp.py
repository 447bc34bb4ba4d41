"""Time warping (CDCD): slice probabilities, the inverse CDF, the moving
averages, and the trainer drawing its t through them."""

import numpy as np
import pytest
import tensorflow as tf

import params as params_lib
from diffusion import samplers, schedules, time_warp
from training import sampling, trainer as trainer_lib

from test_training import tiny_params

T = 1000
B = time_warp.NUM_BUCKETS


def probabilities(losses, updates=1.0):
    return time_warp.bucket_probabilities(
        np.asarray(losses, np.float32), np.full(len(losses), updates, np.float32)).numpy()


def test_uniform_until_every_slice_is_seen_and_then_identity():
    unseen = probabilities(np.arange(B), updates=0.0)
    np.testing.assert_allclose(unseen, np.full(B, 1.0 / B), rtol=1e-6)
    partly = time_warp.bucket_probabilities(np.arange(B, dtype=np.float32),
                                            np.r_[np.ones(B - 1), 0.0].astype(np.float32))
    np.testing.assert_allclose(partly.numpy(), np.full(B, 1.0 / B), rtol=1e-6)
    flat = probabilities(np.zeros(B))  # no rise anywhere: nothing to favour
    np.testing.assert_allclose(flat, np.full(B, 1.0 / B), rtol=1e-6)
    # equal rises give the uniform density, and F^-1 is then the identity
    ramp = probabilities(np.arange(1, B + 1))
    t = np.arange(T)
    np.testing.assert_array_equal(time_warp.warp_timesteps((t + 0.5) / T, T, ramp).numpy(), t)


def test_probabilities_follow_the_rise_of_the_running_maximum():
    losses = np.zeros(B)
    losses[3], losses[4], losses[5] = 1.0, 0.5, 3.0  # a noisy dip at slice 4
    share = time_warp.UNIFORM_SHARE
    expected = np.full(B, share / B)
    expected[3] += (1 - share) * 1.0 / 3.0  # rises: 1 at slice 3, 0 at 4, 2 at 5
    expected[5] += (1 - share) * 2.0 / 3.0
    np.testing.assert_allclose(probabilities(losses), expected, rtol=1e-6)


def test_inverse_cdf_puts_each_slice_its_probability_of_timesteps():
    losses = np.zeros(B)
    losses[B - 1] = 1.0  # all the rise in the last slice
    p = probabilities(losses)
    draws = 100 * T
    t = time_warp.warp_timesteps((np.arange(draws) + 0.5) / draws, T, p).numpy()
    assert t.dtype == np.int32 and t.min() == 0 and t.max() == T - 1
    assert np.all(np.diff(t) >= 0)  # F^-1 is monotone
    share = np.bincount(t * B // T, minlength=B) / draws
    np.testing.assert_allclose(share, p, atol=2 / draws)
    assert share[B - 1] == pytest.approx(1 - time_warp.UNIFORM_SHARE * (B - 1) / B, abs=2e-4)
    # every timestep is reachable, even in the least likely slice
    assert len(np.unique(t)) == T


def test_moving_averages_are_exact_means_then_decay():
    sums, counts = time_warp.bucket_statistics([0, 49, 50, 999], [1.0, 2.0, 3.0, 4.0], T)
    np.testing.assert_array_equal(counts.numpy()[[0, 1, B - 1]], [2, 1, 1])
    np.testing.assert_array_equal(sums.numpy()[[0, 1, B - 1]], [3, 3, 4])
    assert counts.numpy().sum() == 4
    losses, updates = tf.zeros(B), tf.zeros(B)
    for value in (1.0, 2.0, 6.0):  # a running mean while it is young ...
        losses, updates = time_warp.updated_bucket_losses(
            losses, updates, tf.one_hot(0, B) * value, tf.one_hot(0, B))
    assert losses.numpy()[0] == pytest.approx(3.0)
    assert updates.numpy()[0] == 3 and updates.numpy()[1:].sum() == 0
    assert losses.numpy()[1:].sum() == 0  # unseen slices keep their value
    old = tf.fill([B], 2.0)  # ... an exponential moving average when old
    losses, _ = time_warp.updated_bucket_losses(old, tf.fill([B], 1e4), tf.fill([B], 6.0),
                                                tf.fill([B], 2.0))
    decay = time_warp.DECAY
    np.testing.assert_allclose(losses.numpy(), decay * 2.0 + (1 - decay) * 3.0, rtol=1e-6)


def categorical_trainer(model_dir, jit_compile=False, **changes):
    params = tiny_params(prediction="categorical", schedule="cosine", time_warping=True,
                         **changes)
    trainer = trainer_lib.Trainer(params, 3, str(model_dir), jit_compile=jit_compile,
                                  groups=[3])
    rng = np.random.default_rng(0)
    notes = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (24, 16))] * 2 - 1
    trainer.attach(tf.data.Dataset.from_tensor_slices({"notes": notes}))
    trainer.restore_or_start()
    return trainer


def last_slice_curve(trainer):
    """All the rise in the last slice: p = 0.81 there, 0.01 elsewhere."""
    losses = np.zeros(B, np.float32)
    losses[B - 1] = 1.0
    trainer.warp_losses.assign(losses)
    trainer.warp_updates.assign(np.ones(B, np.float32))


# (XLA with the U-Net: the shipped presets compile it.)
@pytest.mark.parametrize("jit_compile, model", [(False, "transformer"), (True, "causal_unet")])
def test_trainer_draws_warped_timesteps(tmp_path, jit_compile, model):
    trainer = categorical_trainer(tmp_path, jit_compile=jit_compile, model=model)
    last_slice_curve(trainer)
    batch = {"x_0": -tf.ones([4, 16, 3]), "t": tf.constant([0, 250, 500, 999]),
             "noise": tf.zeros([4, 16, 3]), "self_condition": tf.zeros([4], tf.bool),
             "u": tf.constant([0.0005, 0.25, 0.5, 0.9995])}
    _, _, _, counts = trainer._replica_gradients(batch)
    # the last slice holds F in [0.19, 1): u = 0.25, 0.5 and 0.9995 land there
    expected = np.zeros(B)
    expected[0], expected[B - 1] = 1, 3
    np.testing.assert_array_equal(counts.numpy(), expected)


def test_time_warped_run_resumes_with_identical_curve_and_weights(tmp_path):
    # A seen, non-uniform curve from the start, so the draws are warped throughout.
    straight = categorical_trainer(tmp_path / "straight", train_steps=6)
    last_slice_curve(straight)
    straight.fit(progress=False)
    assert straight.warp_updates.numpy().sum() > B  # slices were updated
    first = categorical_trainer(tmp_path / "resumed", train_steps=3, ckpt_every=3)
    last_slice_curve(first)
    first.fit(progress=False)
    resumed = categorical_trainer(tmp_path / "resumed", train_steps=6)
    np.testing.assert_array_equal(resumed.warp_losses.numpy(), first.warp_losses.numpy())
    resumed.fit(progress=False)
    np.testing.assert_array_equal(straight.warp_losses.numpy(), resumed.warp_losses.numpy())
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    curve = resumed.time_warp_curve()  # what an export writes to metadata.json
    assert len(curve["probabilities"]) == B and sum(curve["probabilities"]) == pytest.approx(1)
    assert curve["bucket_losses"] == resumed.warp_losses.numpy().tolist()


def test_time_warping_needs_categorical_prediction():
    params = params_lib.get_preset("midi_tiny").replace(time_warping=True)
    with pytest.raises(ValueError, match="--time_warping follows the cross-entropy"):
        params_lib.validate(params)


def test_sampling_grid_is_even_in_the_learned_cdf():
    losses = np.zeros(B)
    losses[12:] = np.arange(1, B - 11)  # rises only in the upper slices
    p = probabilities(losses)
    schedule = schedules.get_schedule("cosine", T)
    grid = samplers.timestep_grid(schedule, 20, list(p))[:-1]  # without the clean end
    assert grid[0] == T - 1 and grid[-1] == 0 and np.all(np.diff(grid) < 0)
    u = time_warp.cdf(grid, T, p)
    np.testing.assert_allclose(np.diff(u[1:-1]), np.diff(u[1:-1]).mean(), rtol=1e-4)
    # more steps where the loss rises: 12 of 20 slices hold 20% * 12/20 of F
    assert np.sum(grid >= 600) > 15
    # a uniform warp gives the even-in-t grid
    np.testing.assert_allclose(samplers.timestep_grid(schedule, 10, list(np.full(B, 1 / B))),
                               samplers.timestep_grid(schedule, 10, "uniform"), atol=1e-3)
    # a variation's shorter run starts at t_start, still even in F below it
    variation = samplers.timestep_grid(schedule, 5, list(p), 300.0)[:-1]
    assert variation[0] == 300.0 and variation[-1] == 0.0
    np.testing.assert_allclose(time_warp.cdf(variation, T, p),
                               np.linspace(time_warp.cdf(300.0, T, p), 0.0, 5), atol=1e-6)
    # one step is the samplers' case (straight from t_start to clean), not the warp's
    np.testing.assert_array_equal(samplers.timestep_grid(schedule, 1, list(p), 300.0),
                                  [300.0, -1.0])


def test_cdf_inverts_inverse_cdf():
    p = probabilities(np.r_[np.zeros(10), np.linspace(1, 5, 10)])
    u = np.linspace(0, 1, 101)
    t = time_warp.inverse_cdf(u, T, p).numpy()
    np.testing.assert_allclose(time_warp.cdf(t, T, p), u, atol=1e-5)


def test_warp_spacing_needs_a_learned_warp():
    params = params_lib.get_preset("midi_tiny").replace(
        prediction="categorical", schedule="cosine", sample_spacing="warp")
    with pytest.raises(ValueError, match="--sample_spacing=warp spaces steps"):
        params_lib.validate(params)
    warped = params.replace(time_warping=True)
    params_lib.validate(warped)
    with pytest.raises(ValueError, match="these weights have none"):
        sampling.grid_options(warped, None)
    assert sampling.grid_options(warped, [0.5, 0.5]) == {"spacing": [0.5, 0.5]}
    assert sampling.grid_options(params.replace(sample_spacing=""), None) == {}


def test_a_skipped_step_leaves_the_curve_alone(tmp_path):
    trainer = categorical_trainer(tmp_path, train_steps=1, max_nonfinite=10)
    last_slice_curve(trainer)
    before = trainer.warp_losses.numpy()
    trainer.model.weights[0].assign(np.full(trainer.model.weights[0].shape, np.nan))
    trainer.fit(progress=False)
    assert int(trainer.skipped.numpy()) == 1
    np.testing.assert_array_equal(trainer.warp_losses.numpy(), before)
    np.testing.assert_array_equal(trainer.warp_updates.numpy(), np.ones(B))


def test_runs_without_warping_keep_the_old_checkpoint_layout(tmp_path):
    params = tiny_params(train_steps=1)
    trainer = trainer_lib.Trainer(params, 3, str(tmp_path))
    trainer.attach(tf.data.Dataset.from_tensor_slices(
        {"notes": np.zeros((8, 16, 3), np.float32)}))
    trainer.restore_or_start()
    trainer.fit(progress=False)
    names = [name for name, _ in tf.train.list_variables(
        tf.train.latest_checkpoint(tmp_path / "checkpoints"))]
    assert not any("warp" in name for name in names)
    assert trainer.time_warp_curve() == {"probabilities": None}
