"""Rolling noise levels (a time per note): levels, grids, samplers, network, training."""

import math

import numpy as np
import pytest
import tensorflow as tf

import params as params_lib
from diffusion import process, rolling, samplers, schedules
from models import build_model
from training import sampling, trainer as trainer_lib

from test_time_warp import categorical_trainer

MU, S = 0.3, 0.5


@pytest.fixture(scope="module")
def linear():
    return schedules.linear_schedule(1000)


def per_note_denoiser(schedule):
    """The exact E[eps | x_t] for x_0 ~ N(MU, S^2), with a time per note."""
    def denoiser(x_t, t):
        signal_rates, noise_rates = schedule.rates(t)
        a, sigma = signal_rates[..., None], noise_rates[..., None]
        return sigma * (x_t - a * MU) / (a * a * S * S + sigma * sigma)
    return denoiser


def test_levels_roll_from_the_first_note_to_the_last():
    levels = rolling.rolling_levels_np([1.0, 0.5, 0.0], 1.0, 5)
    np.testing.assert_array_equal(levels[0], 1.0)  # all noise at the start
    np.testing.assert_array_equal(levels[2], 0.0)  # all clean at the end
    # tau = 0.5, w = 1: u_i = 1 - (4 - i) / 4, the first note clean, the last half way
    np.testing.assert_allclose(levels[1], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(rolling.rolling_levels_np([0.3], 0.0, 4), 0.3)
    graph = rolling.rolling_levels(tf.constant([0.5, 0.3]), tf.constant([1.0, 0.0]), 5)
    np.testing.assert_allclose(graph.numpy(), [levels[1], np.full(5, 0.3)], atol=1e-7)
    with pytest.raises(ValueError, match="width"):
        rolling.rolling_levels_np([0.5], -1.0, 4)


@pytest.mark.parametrize("spacing", ["uniform", "logsnr", [0.1] * 10])
def test_rolling_grid_has_a_column_per_note(linear, spacing):
    grid = samplers.timestep_grid(linear, 9, spacing, rolling=2.0, length=6)
    assert grid.shape == (10, 6)
    np.testing.assert_array_equal(grid[0], 999.0)
    np.testing.assert_array_equal(grid[-2:], [[0.0] * 6, [-1.0] * 6])
    assert np.all(np.diff(grid, axis=0) <= 0)  # every note only moves down
    assert np.all(np.diff(grid[1:-2], axis=1) >= 0)  # earlier notes ahead
    assert np.any(np.diff(grid[1:-2], axis=1) > 0)
    shared = samplers.timestep_grid(linear, 9, spacing)
    # the first note moves (1 + w) times faster than the shared grid: at step 1
    # its level is 3 * 7/8 - 2 = 5/8, the shared grid's level at point 3
    np.testing.assert_allclose(grid[1, 0], shared[3], atol=1e-3)
    assert grid[3, 0] == 0.0 and grid[5, -1] == 999.0 and grid[6, -1] < 999.0
    with pytest.raises(ValueError, match="sequence length"):
        samplers.timestep_grid(linear, 9, spacing, rolling=2.0)


@pytest.mark.parametrize("name,num_steps,tolerance", [
    ("ddpm", 1000, 0.03), ("dpmpp", 60, 0.03), ("dpmpp_sde", 100, 0.03)])
def test_rolling_samplers_match_the_data_distribution(linear, name, num_steps, tolerance):
    x_init = tf.random.stateless_normal([4000, 8, 1], [31, 32])
    out = samplers.get_sampler(name)(per_note_denoiser(linear), x_init, linear, num_steps,
                                     seed=5, rolling=1.0).numpy()
    assert np.all(np.isfinite(out))
    assert abs(out.mean() - MU) < 4 * S / math.sqrt(out.size)
    for note in (0, 7):  # the first note and the last run through different grids
        assert abs(out[:, note].std() / S - 1) < tolerance


def test_rolling_deterministic_solver_follows_the_exact_flow(linear):
    x_init = tf.constant([[[0.0]] * 4, [[1.0]] * 4])
    out = samplers.sample_dpmpp_2m(per_note_denoiser(linear), x_init, linear, 60, 0,
                                   rolling=1.0).numpy()
    a_T, sigma_T = linear.rates_np(999)
    exact_gain = S / math.sqrt(a_T ** 2 * S ** 2 + sigma_T ** 2)
    np.testing.assert_allclose((out[1] - out[0])[:, 0] / exact_gain, 1.0, atol=0.02)


def test_rolling_inpainting_keeps_the_known_notes(linear):
    known = tf.random.stateless_normal([4, 16, 2], [1, 2]) * S + MU
    mask = np.zeros([4, 16, 2], np.float32)
    mask[:, :6] = 1.0
    out = samplers.sample_dpmpp_2m_sde(per_note_denoiser(linear), tf.zeros([4, 16, 2]),
                                       linear, 20, 3, known=known, known_mask=mask,
                                       rolling=3.0).numpy()
    np.testing.assert_array_equal(out[mask == 1], known.numpy()[mask == 1])


def test_per_note_loss_averages_to_the_per_example_loss(linear):
    x_0 = tf.random.stateless_normal([3, 8, 2], [5, 5])
    noise = tf.random.stateless_normal([3, 8, 2], [6, 6])
    t = tf.constant([10, 500, 990])
    model_fn = lambda x_t, t_float: 0.5 * x_t  # noqa: E731
    per_example = process.diffusion_loss(model_fn, linear, x_0, t, noise)
    per_note = process.diffusion_loss(model_fn, linear, x_0, tf.tile(t[:, None], [1, 8]),
                                      noise)
    assert per_example.shape == (3,) and per_note.shape == (3, 8)
    np.testing.assert_allclose(per_note.numpy().mean(axis=1), per_example.numpy(), rtol=1e-5)
    # each note is noised to its own level
    rolled = process.diffusion_loss(model_fn, linear, x_0, tf.constant(
        [[0] * 4 + [999] * 4] * 3), noise)
    x_t = process.q_sample(linear, x_0[:, :1], tf.zeros([3], tf.int32), noise[:, :1])
    np.testing.assert_allclose(rolled.numpy()[:, 0], tf.reduce_mean(
        tf.square(0.5 * x_t - noise[:, :1]), axis=[1, 2]).numpy(), rtol=1e-5)


def tiny_unet():
    params = params_lib.get_preset("midi_tiny").replace(causal=False)
    model = build_model(params, 3)
    model.build([(None, 16, 3), (None,)])
    return model


def test_unet_takes_a_time_per_note():
    model = tiny_unet()
    x_t = tf.random.stateless_normal([2, 16, 3], [7, 8])
    t = tf.constant([40.0, 700.0])
    shared = model([x_t, t]).numpy()
    per_note = model([x_t, tf.tile(t[:, None], [1, 16])]).numpy()
    np.testing.assert_allclose(per_note, shared, atol=1e-5)  # the same network
    assert tuple(model.time_embedding(tf.zeros([2, 16])).shape) == (2, 16, 16)
    times = np.tile(t.numpy()[:, None], [1, 16])
    times[0, 9] = 990.0  # one note much noisier
    moved = np.abs(model([x_t, tf.constant(times)]).numpy() - shared).max(axis=2)
    assert moved[0, 9] > 1e-3 and moved[1].max() < 1e-5  # the other example is untouched


def test_rolling_training_draws_a_time_per_note(tmp_path):
    # (a time per note needs the U-Net's per-note time embedding)
    trainer = categorical_trainer(tmp_path, rolling_share=0.5, rolling_width=4.0,
                                  model="causal_unet")
    batch = {"x_0": -tf.ones([4, 16, 3]), "t": tf.zeros([4], tf.int32),
             "noise": tf.zeros([4, 16, 3]), "self_condition": tf.zeros([4], tf.bool),
             "u": tf.constant([0.5, 0.5, 0.5, 0.5]),
             "roll": tf.constant([0.1, 0.25, 0.6, 0.9])}
    seen = []
    original = trainer._losses

    def spy(model, batch, training):
        seen.append(batch["t"])
        return original(model, batch, training)

    trainer._losses = spy
    loss, _, _, counts = trainer._replica_gradients(batch)
    t = seen[0].numpy()
    assert t.shape == (4, 16) and np.isfinite(loss.numpy())
    assert np.all(t[2:] == t[2:, :1])  # roll >= share: one level on every note
    assert np.all(np.diff(t[:2], axis=1) >= 0) and t[1, -1] > t[1, 0]  # rolled
    assert np.ptp(t[1]) > np.ptp(t[0])  # width 4 * 0.25 / 0.5 = 2 against 0.8
    assert counts.numpy().sum() == 4 * 16  # the warp curve sees every note's loss
    trainer._losses = original
    trainer.params = trainer.params.replace(train_steps=2)
    trainer.fit(progress=False)  # a real step in the graph


def test_rolling_option_reaches_the_sampler():
    # (its flag validation is in test_params)
    params = params_lib.get_preset("midi_wide")
    assert sampling.grid_options(params.replace(sample_rolling=2.0), [1.0]) == {
        "rolling": 2.0, "spacing": [1.0]}
    assert "rolling" not in sampling.grid_options(params, [1.0])
    assert "sample_rolling" in trainer_lib.RESUMABLE_FIELDS  # a sampling choice
