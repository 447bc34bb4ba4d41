"""Exact tests of the diffusion core against closed forms and an analytic denoiser.

For data x_0 ~ N(mu, s^2) per dimension, x_t = a x_0 + sigma eps is Gaussian and
the optimal noise prediction is E[eps | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2).
With it every sampler's output is an affine map of its initial noise, so the
deterministic solvers' discretisation error can be read off without sampling
noise, and the stochastic one checked against the exact Markov-chain variance.
"""

import ast
import inspect
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from diffusion import process, samplers, schedules

MU, S = 0.3, 0.5
NUM_SAMPLES = 40000


@pytest.fixture(scope="module")
def linear():
    return schedules.linear_schedule(1000)


def analytic_denoiser(schedule, mu=MU, s=S):
    def denoiser(x_t, t):
        signal_rates, noise_rates = schedule.rates(t)
        a = tf.reshape(signal_rates, [-1, 1])
        sigma = tf.reshape(noise_rates, [-1, 1])
        return sigma * (x_t - a * mu) / (a * a * s * s + sigma * sigma)
    return denoiser


def ode_gain_error(sampler, schedule, num_steps, spacing="logsnr"):
    """Relative error of the sampler's gain d x_0 / d x_T against the exact flow."""
    x_init = tf.constant([[0.0], [1.0]])
    out = sampler(analytic_denoiser(schedule), x_init, schedule, num_steps, 0,
                  spacing=spacing).numpy()
    a_T, sigma_T = schedule.rates_np(schedule.num_timesteps - 1)
    exact_gain = S / math.sqrt(a_T ** 2 * S ** 2 + sigma_T ** 2)
    return abs((out[1, 0] - out[0, 0]) / exact_gain - 1.0)


# --- schedules ---------------------------------------------------------------
def test_linear_alpha_bar_matches_ddpm_closed_form(linear):
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(linear.alpha_bars, np.cumprod(1 - betas), rtol=1e-12)
    np.testing.assert_allclose(linear.betas, betas, rtol=1e-9)
    assert linear.alpha_bars[-1] == pytest.approx(4.036e-5, rel=1e-3)


def test_cosine_alpha_bar_matches_nichol_dhariwal():
    schedule = schedules.cosine_schedule(1000)

    def f(t):
        return math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2

    expected = np.array([f(t) / f(0) for t in range(1, 1001)])
    # Up to the clipped final betas the product telescopes to f(t) / f(0).
    np.testing.assert_allclose(schedule.alpha_bars[:990], expected[:990], rtol=1e-9)
    assert schedule.alpha_bars[-1] < 1e-6


def test_schedule_guard_refuses_signal_leak():
    with pytest.raises(ValueError, match=r"alpha_bar_T = 0\.8\d* .*allow_signal_leak"):
        schedules.linear_schedule(20)
    leaky = schedules.linear_schedule(20, allow_signal_leak=True)
    assert leaky.alpha_bars[-1] == pytest.approx(0.825, abs=0.01)
    assert schedules.cosine_schedule(20).alpha_bars[-1] < 1e-3


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="linear or cosine"):
        schedules.get_schedule("sigmoid", 1000)


def test_tf_rates_interpolate_log_alpha_bar(linear):
    t = tf.constant([-1.0, 0.0, 10.0, 10.5, 999.0])
    signal, noise = (r.numpy() for r in linear.rates(t))
    alpha_bars = linear.alpha_bars
    np.testing.assert_allclose(signal ** 2, [1.0, alpha_bars[0], alpha_bars[10],
                                             math.sqrt(alpha_bars[10] * alpha_bars[11]),
                                             alpha_bars[999]], rtol=2e-6)
    np.testing.assert_allclose(signal ** 2 + noise ** 2, 1.0, rtol=1e-6)
    assert noise[0] == 0.0
    # The inverse of log-SNR recovers the timestep.
    steps = np.array([0.0, 3.25, 500.0, 998.5])
    np.testing.assert_allclose(linear.t_from_log_snr(linear.log_snr_np(steps)), steps, atol=1e-6)


# --- forward process, targets, posterior, loss ------------------------------------
def test_posterior_matches_ho_et_al_float64(linear):
    rng = np.random.default_rng(0)
    t = np.array([0, 1, 17, 500, 999])
    x_0, x_t = rng.normal(size=(2, len(t), 3))
    mean, variance = process.posterior_mean_variance(
        linear, tf.constant(x_0, tf.float32), tf.constant(x_t, tf.float32), tf.constant(t))
    betas = np.linspace(1e-4, 0.02, 1000)
    alphas = 1 - betas
    alpha_bars = np.cumprod(alphas)
    alpha_bars_prev = np.concatenate([[1.0], alpha_bars[:-1]])
    exp_var = (1 - alpha_bars_prev[t]) / (1 - alpha_bars[t]) * betas[t]
    exp_mean = (np.sqrt(alpha_bars_prev[t]) * betas[t] / (1 - alpha_bars[t]))[:, None] * x_0 + (
        np.sqrt(alphas[t]) * (1 - alpha_bars_prev[t]) / (1 - alpha_bars[t]))[:, None] * x_t
    np.testing.assert_allclose(variance.numpy(), exp_var, rtol=1e-6)
    np.testing.assert_allclose(mean.numpy(), exp_mean, rtol=1e-5, atol=1e-6)
    assert variance.numpy()[0] == 0.0  # the last reverse step adds no noise
    # Ho et al.'s epsilon form of the same mean (Algorithm 2).
    eps = (x_t - np.sqrt(alpha_bars[t])[:, None] * x_0) / np.sqrt(1 - alpha_bars[t])[:, None]
    eps_form = (x_t - (betas[t] / np.sqrt(1 - alpha_bars[t]))[:, None] * eps) / np.sqrt(alphas[t])[:, None]
    np.testing.assert_allclose(mean.numpy(), eps_form, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_targets_reconstruct_x0_and_noise(prediction, schedule_name):
    schedule = schedules.get_schedule(schedule_name, 1000)
    x_0 = tf.random.stateless_normal([6, 16, 3], [1, 1])
    noise = tf.random.stateless_normal([6, 16, 3], [2, 2])
    t = tf.constant([0, 1, 100, 500, 900, 998])
    x_t = process.q_sample(schedule, x_0, t, noise)
    target = process.training_target(schedule, x_0, noise, t, prediction)
    signal, noise_rate = schedule.rates(t)
    pred_x0, pred_noise = process.split_prediction(x_t, target, signal, noise_rate, prediction)
    np.testing.assert_allclose(pred_x0.numpy()[:4], x_0.numpy()[:4], atol=2e-3)
    np.testing.assert_allclose(pred_noise.numpy()[1:], noise.numpy()[1:], atol=2e-3)
    if prediction == "v":
        a, sigma = schedule.rates_np(t.numpy().astype(float))
        expected = a[:, None, None] * noise.numpy() - sigma[:, None, None] * x_0.numpy()
        np.testing.assert_allclose(target.numpy(), expected, atol=1e-5)


def test_unknown_prediction_type_is_refused(linear):
    with pytest.raises(ValueError, match="epsilon, v or categorical"):
        process.training_target(linear, tf.zeros([1, 2]), tf.zeros([1, 2]), tf.constant([3]), "x0")


def test_q_sample_moments(linear):
    x_0 = tf.fill([NUM_SAMPLES, 1], 2.0)
    noise = tf.random.stateless_normal([NUM_SAMPLES, 1], [3, 4])
    x_t = process.q_sample(linear, x_0, tf.fill([NUM_SAMPLES], 300), noise).numpy()
    a = math.sqrt(linear.alpha_bars[300])
    assert x_t.mean() == pytest.approx(2 * a, abs=4 * math.sqrt(1 - a * a) / math.sqrt(NUM_SAMPLES))
    assert x_t.std() == pytest.approx(math.sqrt(1 - a * a), rel=0.02)


def test_loss_is_zero_for_the_oracle_and_t_covers_all_steps(linear):
    x_0 = tf.random.stateless_normal([8, 4, 2], [5, 5])
    noise = tf.random.stateless_normal([8, 4, 2], [6, 6])
    t = process.sample_timesteps([7, 7], 8, 1000)

    def oracle(x_t, t_float):
        return process.training_target(linear, x_0, noise, tf.cast(t_float, tf.int32), "v")

    losses = process.diffusion_loss(oracle, linear, x_0, t, noise, "v")
    assert losses.shape == (8,)
    np.testing.assert_allclose(losses.numpy(), 0.0, atol=1e-10)
    wrong = process.diffusion_loss(lambda x, s: tf.zeros_like(x), linear, x_0, t, noise)
    assert np.all(wrong.numpy() > 0.1)
    draws = process.sample_timesteps([1, 2], 200000, 1000).numpy()
    assert draws.min() == 0 and draws.max() == 999  # never the seed's [0, T-2]


def test_loss_runs_in_graph_mode_under_a_strategy(linear):
    strategy = tf.distribute.get_strategy()

    @tf.function
    def step(x_0):
        t = process.sample_timesteps([0, 1], 4, 1000)
        noise = tf.random.stateless_normal(tf.shape(x_0), [0, 2])
        return process.diffusion_loss(lambda x, s: x * 0.5, linear, x_0, t, noise)

    with strategy.scope():
        losses = strategy.run(step, args=(tf.ones([4, 8, 3]),))
    assert losses.shape == (4,) and np.all(np.isfinite(losses.numpy()))


# --- samplers against the analytic denoiser -----------------------------------------
def exact_ddpm_std(schedule, num_steps):
    """Closed-form std of the DDPM chain (posterior variance) with the optimal eps."""
    grid = samplers.timestep_grid(schedule, num_steps, "uniform")
    a, sigma = schedule.rates_np(grid)
    alpha_bar = a ** 2
    variance = 1.0
    for i in range(num_steps):
        gain_eps = sigma[i] / (a[i] ** 2 * S ** 2 + sigma[i] ** 2)
        gain_x0 = (1 - sigma[i] * gain_eps) / a[i]
        beta = -np.expm1(np.log(alpha_bar[i]) - np.log(alpha_bar[i + 1]))
        coef_x0 = np.sqrt(alpha_bar[i + 1]) * beta / (1 - alpha_bar[i])
        coef_xt = np.sqrt(alpha_bar[i] / alpha_bar[i + 1]) * (1 - alpha_bar[i + 1]) / (1 - alpha_bar[i])
        gain = coef_x0 * gain_x0 + coef_xt
        variance = gain ** 2 * variance + (1 - alpha_bar[i + 1]) / (1 - alpha_bar[i]) * beta
    return math.sqrt(variance)


def test_ddpm_1000_steps_matches_the_data_distribution(linear):
    x_init = tf.random.stateless_normal([NUM_SAMPLES, 1], [11, 12])
    out = samplers.sample_ddpm(analytic_denoiser(linear), x_init, linear, 1000, seed=3).numpy()
    mean_error = S / math.sqrt(NUM_SAMPLES)
    std_error = S / math.sqrt(2 * NUM_SAMPLES)
    assert abs(out.mean() - MU) < 4 * mean_error
    # The posterior-variance chain itself is 0.8% narrow at T = 1000 (closed form);
    # the samples must match that chain within statistical error, and s within 1%.
    assert abs(out.std() - exact_ddpm_std(linear, 1000)) < 4 * std_error
    assert abs(out.std() / S - 1) < 0.01


@pytest.mark.parametrize("sampler,num_steps,tolerance", [
    (samplers.sample_dpmpp_2m, 20, 0.02), (samplers.sample_ddim, 50, 0.06)])
def test_deterministic_samplers_at_their_usual_counts(linear, sampler, num_steps, tolerance):
    x_init = tf.random.stateless_normal([NUM_SAMPLES, 1], [13, 14])
    out = sampler(analytic_denoiser(linear), x_init, linear, num_steps, seed=0).numpy()
    assert abs(out.mean() - MU) < 4 * S / math.sqrt(NUM_SAMPLES)
    assert abs(out.std() / S - 1) < tolerance
    assert ode_gain_error(sampler, linear, num_steps) < tolerance


@pytest.mark.parametrize("num_steps,tolerance", [(20, 0.05), (100, 0.02)])
def test_dpmpp_sde_matches_the_data_distribution(linear, num_steps, tolerance):
    x_init = tf.random.stateless_normal([NUM_SAMPLES, 1], [15, 16])
    out = samplers.sample_dpmpp_2m_sde(analytic_denoiser(linear), x_init, linear,
                                       num_steps, seed=9).numpy()
    assert abs(out.mean() - MU) < 4 * S / math.sqrt(NUM_SAMPLES)
    assert abs(out.std() / S - 1) < tolerance


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_dpmpp_sde_first_order_step_is_the_ddpm_posterior(linear, monkeypatch, fill):
    # With x_0 estimates that never change, the second-order term vanishes and
    # both samplers take DDPM posterior steps on one grid: equal means (fill 0,
    # no noise) and equal noise scales (fill 1: every draw is 1 in both).
    monkeypatch.setattr(samplers, "_step_noise", lambda seed, step, shape, stream:
                        tf.fill(shape, fill))

    def constant_x0(x_t, t):
        signal_rates, noise_rates = linear.rates(t)
        return (x_t - tf.reshape(signal_rates, [-1, 1]) * 0.7) / tf.reshape(noise_rates, [-1, 1])

    x_init = tf.constant([[-1.5], [0.0], [2.0]])
    trajectories = {}
    for name, sampler in (("ddpm", samplers.sample_ddpm),
                          ("sde", samplers.sample_dpmpp_2m_sde)):
        seen = []
        sampler(constant_x0, x_init, linear, 12, 0, spacing="logsnr",
                callback=lambda step, x, pred_x0: seen.append(x.numpy()))
        trajectories[name] = np.stack(seen)
    np.testing.assert_allclose(trajectories["sde"], trajectories["ddpm"], rtol=1e-4, atol=1e-5)
    assert np.abs(trajectories["sde"][3] - 0.7).max() > 0.05  # not collapsed early


def test_ddim_is_first_order(linear):
    errors = [ode_gain_error(samplers.sample_ddim, linear, n) for n in (10, 20, 40, 80)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 1.7) & (ratios < 2.4)), ratios


def test_dpmpp_2m_is_second_order(linear):
    errors = [ode_gain_error(samplers.sample_dpmpp_2m, linear, n) for n in (20, 40, 80)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.0) & (ratios < 5.5)), ratios


def test_step_spacing_matters_for_dpmpp(linear):
    assert ode_gain_error(samplers.sample_dpmpp_2m, linear, 20, spacing="uniform") > 0.2


def test_samplers_are_reproducible_from_the_seed(linear):
    x_init = tf.random.stateless_normal([64, 2], [1, 1])
    denoiser = analytic_denoiser(linear)
    first = samplers.sample_ddpm(denoiser, x_init, linear, 50, seed=5)
    again = samplers.sample_ddpm(denoiser, x_init, linear, 50, seed=5)
    other = samplers.sample_ddpm(denoiser, x_init, linear, 50, seed=6)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert np.abs(first.numpy() - other.numpy()).max() > 1e-2
    stochastic_ddim = samplers.sample_ddim(denoiser, x_init, linear, 50, 5, eta=1.0)
    assert np.abs(stochastic_ddim.numpy() - first.numpy()).max() > 1e-2


def test_callback_sees_every_step(linear):
    seen = []
    samplers.sample_dpmpp_2m(analytic_denoiser(linear), tf.zeros([2, 1]), linear, 7, 0,
                             callback=lambda step, x, pred_x0: seen.append((step, x.shape)))
    assert [step for step, _ in seen] == list(range(7))


def test_one_trace_serves_every_run(linear):
    # The denoiser's Python body only runs while a step is traced; a retrace
    # costs seconds with a network, so seeds, step counts, starts and callbacks
    # must all reuse the first trace.
    traces = []
    analytic = analytic_denoiser(linear)

    def denoiser(x_t, t):
        traces.append(x_t.shape)
        return analytic(x_t, t)

    x_init = tf.random.stateless_normal([4, 1], [2, 2])
    for name in samplers.SAMPLERS:
        sampler = samplers.get_sampler(name)
        first = sampler(denoiser, x_init, linear, 20, 0).numpy()
        sampler(denoiser, x_init, linear, 7, 1, callback=lambda step, x, pred_x0: None)
        sampler(denoiser, x_init, linear, 12, 2, t_start=600.0)
        np.testing.assert_array_equal(sampler(denoiser, x_init, linear, 20, 0).numpy(), first)
    samplers.ddim_invert(denoiser, x_init, linear, 10)
    samplers.ddim_invert(denoiser, x_init, linear, 6, t_start=600.0)
    assert len(traces) == len(samplers.SAMPLERS) + 1


def test_generate_offers_every_sampler():
    # generate.py spells the names out (it must not import TensorFlow for --help).
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "generate.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    names = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "SAMPLER_NAMES")
    assert names == list(samplers.SAMPLERS)
    import params as params_lib  # its spacing names are spelled out for the same reason
    assert params_lib.SAMPLE_SPACINGS == ("", *samplers.SPACINGS, "warp")
    # and so are the samplers that take --eta
    assert set(params_lib.ETA_MAX) == {name for name, sampler in samplers.SAMPLERS.items()
                                       if "eta" in inspect.signature(sampler).parameters}


def test_grid_runs_from_t_start_to_clean(linear):
    grid = samplers.timestep_grid(linear, 10, "logsnr", t_start=600.0)
    assert grid[0] == 600.0 and grid[-2] == 0.0 and grid[-1] == -1.0 and len(grid) == 11
    assert np.all(np.diff(grid) < 0)
    with pytest.raises(ValueError, match="spacing"):
        samplers.timestep_grid(linear, 10, "karras")
    with pytest.raises(ValueError, match="sampler"):
        samplers.get_sampler("euler")


# --- editing hooks ---------------------------------------------------------------------
@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_known_region_comes_back_exactly(linear, name):
    known = tf.random.stateless_normal([16, 32], [21, 22]) * S + MU
    mask = np.zeros([16, 32], np.float32)
    mask[:, :12] = 1.0  # a prefix: continuation
    mask[:, 20:24] = 1.0  # and an island: infilling
    x_init = tf.random.stateless_normal([16, 32], [23, 24])
    out = samplers.get_sampler(name)(analytic_denoiser(linear), x_init, linear, 20, 4,
                                     known=known, known_mask=mask).numpy()
    np.testing.assert_array_equal(out[mask == 1], known.numpy()[mask == 1])
    assert np.abs(out[mask == 0] - known.numpy()[mask == 0]).mean() > 0.1


def test_guidance_combines_predictions(linear):
    def cond(x, t):
        return x * 2.0

    def uncond(x, t):
        return x + 1.0

    x, t = tf.constant([[1.0, 3.0]]), tf.constant([5.0])
    np.testing.assert_array_equal(samplers.classifier_free_guidance(cond, uncond, 1.0)(x, t), cond(x, t))
    np.testing.assert_array_equal(samplers.classifier_free_guidance(cond, uncond, 0.0)(x, t), uncond(x, t))
    np.testing.assert_allclose(samplers.classifier_free_guidance(cond, uncond, 3.0)(x, t),
                               uncond(x, t) + 3.0 * (cond(x, t) - uncond(x, t)))


def test_partial_noising_keeps_the_source_at_low_strength(linear):
    source = tf.random.stateless_normal([4000, 1], [31, 32]) * S + MU
    denoiser = analytic_denoiser(linear)
    for strength in (0.05, 0.3, 1.0):
        t_start = samplers.strength_to_t(linear, strength)
        x_init = samplers.noised_start(linear, source, t_start, seed=1)
        out = samplers.sample_dpmpp_2m(denoiser, x_init, linear, 20, 0, t_start=t_start).numpy()
        assert abs(out.std() / S - 1) < 0.03
        # The flow from t_start is affine, so the output keeps exactly the
        # correlation of the noised start with its source: a s / sqrt(a^2 s^2 + sigma^2).
        a, sigma = linear.rates_np(t_start)
        expected = a * S / math.sqrt(a * a * S * S + sigma * sigma)
        correlation = np.corrcoef(out[:, 0], source.numpy()[:, 0])[0, 1]
        assert correlation == pytest.approx(expected, abs=0.02)
    assert expected < 0.01  # strength 1 forgets the source
    with pytest.raises(ValueError, match="strength"):
        samplers.strength_to_t(linear, 0.0)


def test_ddim_inversion_round_trip(linear):
    source = tf.random.stateless_normal([512, 1], [41, 42]) * S + MU
    denoiser = analytic_denoiser(linear)
    errors = {}
    for num_steps in (100, 200, 500):
        latent = samplers.ddim_invert(denoiser, source, linear, num_steps)
        # The latent is a standard-normal draw, not the source.
        assert abs(latent.numpy().std() - 1.0) < 0.1
        assert abs(np.corrcoef(latent.numpy()[:, 0], source.numpy()[:, 0])[0, 1]) > 0.99
        back = samplers.sample_ddim(denoiser, latent, linear, num_steps, 0).numpy()
        errors[num_steps] = np.sqrt(np.mean((back - source.numpy()) ** 2)) / S
    # First order like DDIM itself: the round-trip error halves with twice the steps.
    assert errors[100] / errors[200] > 1.7
    assert errors[500] < 0.015


# --- objectives -----------------------------------------------------------------------
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_min_snr_weights_match_hang_et_al(linear, prediction):
    t = tf.constant([0, 100, 300, 999])
    weights = process.loss_weights(linear, t, prediction, "min_snr", gamma=5.0).numpy()
    alpha_bar = linear.alpha_bars[t.numpy()]
    snr = alpha_bar / (1 - alpha_bar)
    expected = np.minimum(snr, 5.0) / (snr if prediction == "epsilon" else snr + 1)
    np.testing.assert_allclose(weights, expected, rtol=1e-4)
    np.testing.assert_array_equal(process.loss_weights(linear, t).numpy(), 1.0)
    with pytest.raises(ValueError, match="none or min_snr"):
        process.loss_weights(linear, t, weighting="p2")


def test_self_conditioning_feeds_the_stopped_first_estimate(linear):
    x_0 = tf.random.stateless_normal([4, 8, 2], [8, 8])
    noise = tf.random.stateless_normal([4, 8, 2], [9, 9])
    t = tf.constant([10, 200, 500, 900])
    seen = []

    def model_fn(x_t, t_float, estimate):
        seen.append(estimate)
        return tf.zeros_like(x_t)

    mask = tf.constant([True, False, True, False])
    process.diffusion_loss(model_fn, linear, x_0, t, noise, "epsilon",
                           self_condition_mask=mask)
    first, second = seen
    np.testing.assert_array_equal(first.numpy(), 0.0)
    # With a zero epsilon prediction the estimate is x_t / a_t where used, 0 elsewhere.
    x_t = process.q_sample(linear, x_0, t, noise).numpy()
    a = np.sqrt(linear.alpha_bars[t.numpy()])[:, None, None]
    np.testing.assert_allclose(second.numpy()[0], (x_t / a)[0], rtol=1e-5)
    np.testing.assert_array_equal(second.numpy()[[1, 3]], 0.0)


def test_denoiser_clips_x0_and_rederives_noise(linear):
    class Model:
        def __call__(self, inputs, training=False):
            x_t, _ = inputs
            return tf.zeros_like(x_t)  # epsilon 0: x_0 estimate = x_t / a_t

    denoiser = samplers.epsilon_denoiser(Model(), linear, "epsilon", clip_x0=1.0)
    x_t = tf.constant([[3.0, 0.5]])
    t = tf.constant([100.0])
    pred_noise = denoiser(x_t, t).numpy()
    a, sigma = linear.rates_np(100.0)
    expected_x0 = np.clip(np.array([[3.0, 0.5]]) / a, -1, 1)
    np.testing.assert_allclose(pred_noise, (x_t.numpy() - a * expected_x0) / sigma, rtol=1e-5)


def test_self_conditioned_denoiser_carries_its_estimate(linear):
    calls = []

    class Model:
        def __call__(self, inputs, training=False):
            x_and_estimate, _ = inputs
            calls.append(x_and_estimate.shape[-1])
            return x_and_estimate[..., :1] * 0.0

    denoiser = samplers.epsilon_denoiser(Model(), linear, self_condition_shape=[3, 1])
    out = samplers.sample_ddim(denoiser, tf.ones([3, 1]), linear, 4, 0)
    assert calls and set(calls) == {2} and out.shape == (3, 1)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_categorical_temperature_sharpens_the_x0_estimate(linear, temperature):
    groups = [3, 2]
    logits = np.array([[[2.0, 0.0, -1.0, 0.5, 1.0]]], np.float32)
    model = lambda inputs, training=False: tf.constant(logits)  # noqa: E731
    denoiser = samplers.epsilon_denoiser(model, linear, "categorical", groups=groups,
                                         temperature=temperature)
    x_t = tf.constant([[[0.3, -0.2, 0.1, 0.0, 0.4]]])
    t = tf.constant([200.0])
    signal, sigma = linear.rates(t)
    pred_x0 = (x_t - sigma[0] * denoiser(x_t, t)) / signal[0]

    def softmax(values):
        return np.exp(values) / np.exp(values).sum()
    scaled = logits[0, 0] / temperature
    expected = 2 * np.concatenate([softmax(scaled[:3]), softmax(scaled[3:])]) - 1
    np.testing.assert_allclose(pred_x0.numpy()[0, 0], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        samplers.epsilon_denoiser(model, linear, "categorical", groups=groups, temperature=0)


@pytest.mark.parametrize("guidance", [0.0, 1.0, 2.5])
def test_autoguidance_mixes_the_probabilities_of_model_and_guide(linear, guidance):
    groups = [3, 2]
    logits = np.array([[[2.0, 0.0, -1.0, 0.5, 1.0]]], np.float32)
    guide_logits = np.array([[[0.0, 1.0, 0.0, 3.0, 0.0]]], np.float32)
    seen = []

    def network(values):
        def call(inputs, training=False):
            seen.append(inputs[0].shape[-1])
            return tf.constant(values)
        return call
    denoiser = samplers.epsilon_denoiser(network(logits), linear, "categorical", groups=groups,
                                         guide=network(guide_logits), guidance=guidance,
                                         self_condition_shape=[1, 1, 5])
    x_t = tf.constant([[[0.3, -0.2, 0.1, 0.0, 0.4]]])
    t = tf.constant([200.0])
    signal, sigma = linear.rates(t)
    pred_x0 = (x_t - sigma[0] * denoiser(x_t, t)) / signal[0]

    def probabilities(values):  # p_guide^(1 - w) p_model^w, renormalised
        mixed = np.exp(guide_logits[0, 0][values]) ** (1 - guidance) * \
            np.exp(logits[0, 0][values]) ** guidance
        return mixed / mixed.sum()
    expected = 2 * np.concatenate([probabilities(slice(0, 3)),
                                   probabilities(slice(3, 5))]) - 1
    np.testing.assert_allclose(pred_x0.numpy()[0, 0], expected, rtol=1e-4, atol=1e-5)
    # Both networks read x_t and the shared self-conditioning estimate; w = 1
    # skips the guide.
    assert seen == ([10] if guidance == 1.0 else [10, 10])
    with pytest.raises(ValueError, match="guidance must be at least 0"):
        samplers.epsilon_denoiser(network(logits), linear, guide=network(logits),
                                  guidance=-1)


def test_limited_interval_guidance_leaves_high_noise_steps_alone(linear):
    model = lambda inputs, training=False: tf.ones_like(inputs[0])  # noqa: E731
    guide = lambda inputs, training=False: tf.zeros_like(inputs[0])  # noqa: E731
    denoiser = samplers.epsilon_denoiser(model, linear, guide=guide, guidance=3.0,
                                         guide_max_t=500.0)
    x_t = tf.zeros([3, 2])
    # epsilon prediction: the output is the noise estimate itself
    pred_noise = denoiser(x_t, tf.constant([10.0, 500.0, 501.0])).numpy()
    np.testing.assert_array_equal(pred_noise, [[3.0, 3.0], [3.0, 3.0], [1.0, 1.0]])


def test_guided_groups_leave_the_other_groups_to_the_model(linear):
    groups = [3, 2]
    logits = tf.constant([[[2.0, 0.0, -1.0, 0.5, 1.0]]])
    guide_logits = tf.constant([[[0.0, 1.0, 0.0, 3.0, 0.0]]])

    def pred_x0(**options):
        denoiser = samplers.epsilon_denoiser(
            lambda inputs, training=False: logits, linear, "categorical", groups=groups,
            guide=lambda inputs, training=False: guide_logits, guidance=2.0, **options)
        x_t, t = tf.zeros([1, 1, 5]), tf.constant([200.0])
        signal, sigma = linear.rates(t)
        return ((x_t - sigma[0] * denoiser(x_t, t)) / signal[0]).numpy()[0, 0]

    everything, model_alone = pred_x0(), pred_x0(guide_max_t=1.0)  # t = 200 > 1: unguided
    first_only = pred_x0(guided_groups=[0])
    np.testing.assert_allclose(first_only[:3], everything[:3], atol=1e-5)
    np.testing.assert_allclose(first_only[3:], model_alone[3:], atol=1e-5)
    assert np.abs(everything[3:] - model_alone[3:]).max() > 0.1
    with pytest.raises(ValueError, match=r"guided groups \[2\] are not among the 2"):
        pred_x0(guided_groups=[2])


def test_categorical_prediction_is_cross_entropy_with_expected_x0(linear):
    groups = [3, 2]
    x_0 = tf.constant([[[1.0, -1, -1, -1, 1]]])  # classes 0 and 1
    logits = tf.constant([[[2.0, 0.0, 0.0, 0.0, 1.0]]])
    pred_x0 = process.categorical_x0(logits, groups).numpy()[0, 0]
    p = np.exp([2.0, 0, 0]) / np.exp([2.0, 0, 0]).sum()
    q = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    np.testing.assert_allclose(pred_x0, 2 * np.concatenate([p, q]) - 1, rtol=1e-6)
    ce = process.categorical_cross_entropy(logits, x_0, groups).numpy()[0, 0]
    assert ce == pytest.approx(-np.log(p[0]) - np.log(q[1]), rel=1e-6)
    weighted = process.categorical_cross_entropy(logits, x_0, groups, [2.0, 0.5])
    assert weighted.numpy()[0, 0] == pytest.approx(-2 * np.log(p[0]) - 0.5 * np.log(q[1]),
                                                   rel=1e-6)
    with pytest.raises(ValueError, match="3 group weights for 2 one-hot groups"):
        process.categorical_cross_entropy(logits, x_0, groups, [1.0, 1.0, 1.0])
    t = tf.constant([300])
    noise = tf.random.stateless_normal(x_0.shape, [1, 1])
    losses = process.diffusion_loss(lambda x, s: logits, linear, x_0, t, noise,
                                    "categorical", groups=groups)
    assert losses.numpy()[0] == pytest.approx(ce / 1.0, rel=1e-6)
    # The derived noise is consistent with the expected x_0 at x_t's level.
    x_t = process.q_sample(linear, x_0, t, noise)
    signal, sigma = linear.rates(t)
    pred_x0_t, pred_noise = process.split_prediction(x_t, logits, signal, sigma,
                                                     "categorical", groups)
    np.testing.assert_allclose((signal[0] * pred_x0_t + sigma[0] * pred_noise).numpy(),
                               x_t.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="group sizes"):
        process.split_prediction(x_t, logits, signal, sigma, "categorical")
    with pytest.raises(ValueError, match="epsilon and v"):
        process.loss_weights(linear, t, "categorical", "min_snr")
