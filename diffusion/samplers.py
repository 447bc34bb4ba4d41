"""Samplers: plain functions with one shared signature (k-diffusion style).

    sampler(denoiser, x_init, schedule, num_steps, seed, callback=None, *,
            t_start=None, known=None, known_mask=None, spacing=..., rolling=0.0,
            **options)

  denoiser    callable (x_t, t) -> pred_noise, t float32 [batch] in [0, T-1]
              ([batch, length] with rolling levels)
              (wrap a network with `epsilon_denoiser`);
  x_init      x at the first step: pure noise N(0, I), or a partly noised
              input from `noised_start` for variations (then pass t_start);
  num_steps   denoiser evaluations;
  seed        int; fixes every random draw of the run;
  callback    optional callable(step, x, pred_x0) after each step;
  known, known_mask  inpainting: where known_mask is 1 the output equals
              `known` exactly, and at every step that region is replaced by
              the ground truth noised to the current level (RePaint-style);
  rolling     > 0: every note has its own timestep, earlier notes ahead of
              later ones by this width of the grid (diffusion/rolling.py;
              for networks trained with rolling levels).

A sampler's step is compiled with tf.function once per denoiser and reused by
every later run (any seed, step count or start), so a run costs its denoiser
calls plus one graph call of overhead per step, never a `model.predict`.

The step grid has num_steps timesteps from t_start down to 0 plus the clean
end point t = -1 (alpha_bar = 1); "logsnr" spacing is even in
lambda = log(alpha_bar / (1 - alpha_bar)), which the deterministic solvers need
for their accuracy (Lu et al. 2022).
"""

import numpy as np
import tensorflow as tf

from diffusion import process, time_warp
from diffusion.rolling import rolling_levels_np

SPACINGS = ("uniform", "logsnr")


def epsilon_denoiser(model, schedule, prediction="epsilon", clip_x0=0.0,
                     self_condition_shape=None, groups=None, temperature=1.0,
                     guide=None, guidance=1.0, guide_max_t=None, guided_groups=None):
    """Wraps a network called as model([x_t, t]) into a pred_noise denoiser.

    clip_x0 > 0 clips the x_0 estimate to [-clip_x0, clip_x0] (data known to be
    bounded, e.g. {-1, +1} one-hot codes) and re-derives the noise from it.
    self_condition_shape: the [batch, ...] shape of x for a self-conditioned
    network (Chen et al. 2022), called as model([concat(x_t, x0_estimate), t]);
    the previous step's x_0 estimate is kept in a variable, zero at the start.
    groups: one-hot group sizes of a categorical-prediction network.
    temperature: a categorical network's logits are divided by it; below 1 the
    x_0 estimate (2 softmax - 1) leans towards the likeliest class of each group.
    guide, guidance: autoguidance (Karras et al. 2024, "Guiding a Diffusion Model
    with a Bad Version of Itself"): a smaller, shorter-trained network of the
    same data interface, called on the same inputs; the output used is
    guide + guidance (model - guide). On categorical logits that is
    p_guide^(1 - w) p_model^w per group (softmax ignores a group's offset);
    guidance 1 is the model alone, 0 the guide alone. guide_max_t: guide only
    at timesteps t <= guide_max_t, where details are settled, not at the
    high noise levels that fix the global layout (guidance in a limited
    interval, Kynkaanniemi et al. 2024); None guides at every step.
    guided_groups: indices into `groups` of the one-hot groups guided (None:
    all), e.g. pitch class alone, where octave choices pushed away from a
    weak guide's would widen the register.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if guidance < 0:
        raise ValueError(f"guidance must be at least 0, got {guidance}")
    guided_channels = None
    if guided_groups:
        if groups is None or not set(guided_groups) <= set(range(len(groups))):
            raise ValueError(f"guided groups {list(guided_groups)} are not among the "
                             f"{len(groups or [])} one-hot groups of a categorical network")
        guided_channels = tf.constant(np.concatenate(
            [np.full(size, index in guided_groups) for index, size in enumerate(groups)]),
            tf.float32)
    estimate = None
    if self_condition_shape is not None:
        estimate = tf.Variable(tf.zeros(self_condition_shape), trainable=False)

    def denoiser(x_t, t):
        inputs = x_t if estimate is None else tf.concat([x_t, estimate], axis=-1)
        output = tf.cast(model([inputs, t], training=False), tf.float32)
        if guide is not None and guidance != 1.0:
            guide_output = tf.cast(guide([inputs, t], training=False), tf.float32)
            scale = tf.constant(guidance, tf.float32)
            if guide_max_t is not None:
                scale = process.broadcast(tf.where(tf.cast(t, tf.float32) <= guide_max_t,
                                                   scale, 1.0), output)
            if guided_channels is not None:
                scale = 1.0 + (scale - 1.0) * guided_channels
            output = guide_output + scale * (output - guide_output)
        if prediction == "categorical" and temperature != 1.0:
            output = output / temperature
        signal_rates, noise_rates = schedule.rates(t)
        pred_x0, pred_noise = process.split_prediction(
            x_t, output, signal_rates, noise_rates, prediction, groups)
        if clip_x0 > 0:
            pred_x0 = tf.clip_by_value(pred_x0, -clip_x0, clip_x0)
            pred_noise = process.noise_from_x0(x_t, pred_x0, signal_rates, noise_rates)
        if estimate is not None:
            estimate.assign(pred_x0)
        return pred_noise

    if estimate is not None:
        denoiser.reset = lambda: estimate.assign(tf.zeros_like(estimate))
    return denoiser


def classifier_free_guidance(cond_denoiser, uncond_denoiser, scale):
    """Ho & Salimans 2022: eps = eps_uncond + scale * (eps_cond - eps_uncond)."""
    def denoiser(x_t, t):
        if scale == 1.0:
            return cond_denoiser(x_t, t)
        pred_uncond = uncond_denoiser(x_t, t)
        return pred_uncond + scale * (cond_denoiser(x_t, t) - pred_uncond)
    return denoiser


def strength_to_t(schedule, strength):
    """Start timestep for a variation of strength in (0, 1] (1 = pure noise)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    return strength * (schedule.num_timesteps - 1)


def noised_start(schedule, x_0, t_start, seed):
    """x at t_start drawn from q(x_t | x_0): the start of a variation run."""
    noise = tf.random.stateless_normal(tf.shape(x_0), [seed, 0x5EED])
    return process.q_sample(schedule, x_0, tf.fill([tf.shape(x_0)[0]], float(t_start)), noise)


def timestep_grid(schedule, num_steps, spacing="logsnr", t_start=None, rolling=0.0,
                  length=None):
    """num_steps timesteps from t_start to 0, then -1 (clean), float64 numpy.

    spacing: "uniform" (even in t), "logsnr", or a learned time warp's slice
    probabilities (diffusion/time_warp.py): even in its CDF.
    rolling > 0: a [num_steps + 1, length] grid, one column per note, whose
    levels roll from the first note to the last (diffusion/rolling.py); each
    level maps to a timestep as the shared grid's does.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    warp = None if isinstance(spacing, str) else np.asarray(spacing, np.float64)
    if (warp is None and spacing not in SPACINGS) or (warp is not None and not (
            warp.ndim == 1 and len(warp) and np.all(warp >= 0)
            and abs(warp.sum() - 1.0) < 1e-3)):
        raise ValueError(f"unknown spacing {spacing!r}; choose {' or '.join(SPACINGS)}, "
                         "or pass a time warp's slice probabilities (summing to 1)")
    t_start = schedule.num_timesteps - 1 if t_start is None else float(t_start)
    if rolling:
        if num_steps < 2 or length is None:
            raise ValueError("a rolling grid needs at least 2 steps and the sequence length")
        levels = rolling_levels_np(np.linspace(1.0, 0.0, num_steps), rolling, length)
        grid = _levels_to_times(schedule, levels, warp, spacing, t_start)
        return np.concatenate([grid, np.full([1, length], -1.0)])
    if num_steps == 1:  # straight from t_start to clean, whatever the spacing
        return np.array([t_start, -1.0])
    grid = _levels_to_times(schedule, np.linspace(1.0, 0.0, num_steps), warp, spacing, t_start)
    return np.concatenate([grid, [-1.0]])


def _levels_to_times(schedule, levels, warp, spacing, t_start):
    """Timesteps of levels u in [0, 1] (1: t_start, 0: t = 0), any shape, even
    in the spacing's coordinate: t, log-SNR, or the time warp's CDF (where the
    sampler spends its steps where training found the loss to change)."""
    if warp is not None:
        u = levels * time_warp.cdf(t_start, schedule.num_timesteps, warp)
        times = time_warp.inverse_cdf(u, schedule.num_timesteps, warp).numpy()
    elif spacing == "uniform":
        times = levels * t_start
    else:
        start, end = schedule.log_snr_np(t_start), schedule.log_snr_np(0.0)
        times = schedule.t_from_log_snr(end + levels * (start - end))
    # the end points exactly, whatever the rounding of the maps
    return np.where(levels >= 1.0, t_start, np.where(levels <= 0.0, 0.0, times))


def _grid(schedule, num_steps, spacing, t_start, rolling, x_init):
    """The _Grid of a sampler's arguments (rolling: one column per note of x_init)."""
    length = int(x_init.shape[1]) if rolling else None
    return _Grid(schedule, timestep_grid(schedule, num_steps, spacing, t_start, rolling,
                                         length))


class _Grid:
    """Per-step constants of a grid, computed in float64.

    Step i goes from grid point i to i + 1; `values` holds one array per name
    with a value for each step (`next_*` at point i + 1). `rows()` gives each
    step its own float32 scalars (a rolling grid: one [length, 1] column per
    name, which broadcasts over the batch and the features): the compiled step
    then sees the same argument shapes whatever the step count, so one trace
    serves every run (whole grid arrays indexed in the graph would retrace for
    each new length).
    """

    def __init__(self, schedule, times):
        signal_rates, noise_rates = schedule.rates_np(times)
        with np.errstate(divide="ignore"):
            log_snrs = np.log(signal_rates) - np.log(noise_rates)
        self.num_steps = len(times) - 1
        self.length = np.shape(times)[1] if np.ndim(times) > 1 else None
        self.signal_rates_np, self.noise_rates_np, self.log_snrs_np = (
            signal_rates, noise_rates, log_snrs)
        self.values = {}
        self.add(times=times[:-1], signal_rates=signal_rates[:-1],
                 noise_rates=noise_rates[:-1], next_signal_rates=signal_rates[1:],
                 next_noise_rates=noise_rates[1:])

    def add(self, **values):
        for name, value in values.items():
            value = np.asarray(value, np.float64)
            if self.length is None:
                self.values[name] = np.broadcast_to(value, [self.num_steps])
            else:  # [steps, length, 1]; a value per step applies to every note
                value = value[:, None] if value.ndim == 1 else value
                self.values[name] = np.broadcast_to(value, [self.num_steps, self.length])[..., None]

    def rows(self):
        """One {name: float32 tensor} per step (one unstack op per name)."""
        columns = {name: tf.unstack(tf.constant(value, tf.float32))
                   for name, value in self.values.items()}
        return [dict(zip(columns, row)) for row in zip(*columns.values())]


def _timesteps(grid, x):
    """The denoiser's t for a step's row: [batch], or [batch, length] per note."""
    times = grid["times"]
    if times.shape.rank == 0:
        return tf.fill([tf.shape(x)[0]], times)
    return tf.broadcast_to(tf.reshape(times, [1, -1]), tf.shape(x)[:2])


def _evaluate(denoiser, grid, x):
    """(pred_x0, pred_noise) at the start point of a step (grid: its row)."""
    t = _timesteps(grid, x)
    pred_noise = tf.cast(denoiser(x, t), tf.float32)
    pred_x0 = (x - grid["noise_rates"] * pred_noise) / grid["signal_rates"]
    return pred_x0, pred_noise


def _step_noise(seed, step, shape, stream):
    return tf.random.stateless_normal(shape, tf.stack([tf.cast(seed, tf.int64),
                                                       tf.cast(step, tf.int64) * 4 + stream]))


def _reset(denoiser):
    """Clears a stateful (self-conditioned) denoiser before a new run."""
    if hasattr(denoiser, "reset"):
        denoiser.reset()


def _compiled(denoiser, update, masked):
    """The traced step of `update` for this denoiser, made once and reused."""
    cache = getattr(denoiser, "_compiled_steps", None)
    if cache is None:
        cache = {}
        try:
            denoiser._compiled_steps = cache
        except AttributeError:  # a callable object without attributes: no reuse
            pass
    key = (update, masked)
    if key not in cache:
        # reduce_retracing: a second batch shape gives one trace with the batch
        # dimension left open instead of one trace per batch size.
        @tf.function(reduce_retracing=True)
        def compiled_step(step, x, carry, grid, seed, known, known_mask):
            x, carry, pred_x0 = update(denoiser, step, x, carry, grid, seed)
            if masked:
                # The known region follows the forward process at the next level,
                # which is exactly `known` at the clean end point (rates 1 and 0).
                noise = _step_noise(seed, step, tf.shape(x), 3)
                noised_known = (grid["next_signal_rates"] * known
                                + grid["next_noise_rates"] * noise)
                x = known_mask * noised_known + (1.0 - known_mask) * x
            return x, carry, pred_x0
        cache[key] = compiled_step
    return cache[key]


def _run(denoiser, update, carry, x_init, grid, seed, callback, known=None,
         known_mask=None, order=None):
    """Iterates `update(denoiser, step, x, carry, row, seed) -> (x, carry, pred_x0)`
    over the grid's steps (in `order` if given)."""
    _reset(denoiser)
    rows = grid.rows()
    x = tf.convert_to_tensor(x_init, tf.float32)
    masked = known is not None
    if masked:
        known = tf.convert_to_tensor(known, tf.float32)
        known_mask = tf.cast(tf.convert_to_tensor(known_mask), tf.float32)
        start = known * rows[0]["signal_rates"] + rows[0]["noise_rates"] * _step_noise(
            seed, -1, tf.shape(x), 3)
        x = known_mask * start + (1.0 - known_mask) * x
    else:
        known = known_mask = tf.zeros([0])
    compiled_step = _compiled(denoiser, update, masked)
    seed = tf.constant(seed, tf.int64)
    for index, step in enumerate(range(grid.num_steps) if order is None else order):
        x, carry, pred_x0 = compiled_step(tf.constant(step), x, carry, rows[step], seed,
                                          known, known_mask)
        if callback is not None:
            callback(index, x, pred_x0)
    return x


def _ddpm_update(denoiser, step, x, carry, grid, seed):
    # 1. predict x_0 from the noise estimate at t
    pred_x0, _ = _evaluate(denoiser, grid, x)
    # 2. posterior mean of x_s given x_t and the predicted x_0
    mean = grid["coef_x0"] * pred_x0 + grid["coef_xt"] * x
    # 3. add posterior noise (zero at the clean end point)
    x = mean + grid["posterior_std"] * _step_noise(seed, step, tf.shape(x), 0)
    return x, carry, pred_x0


def sample_ddpm(denoiser, x_init, schedule, num_steps, seed, callback=None, *,
                t_start=None, known=None, known_mask=None, spacing="uniform", rolling=0.0):
    """DDPM ancestral sampling with the posterior variance (Ho et al. 2020, Alg. 2)."""
    grid = _grid(schedule, num_steps, spacing, t_start, rolling, x_init)
    # Posterior q(x_s | x_t, x_0) between consecutive grid points t -> s (equal
    # to eq. 7 of Ho et al. when s = t - 1; "respaced" otherwise).
    alpha_bar = grid.signal_rates_np ** 2
    alpha_bar_t, alpha_bar_s = alpha_bar[:-1], alpha_bar[1:]
    one_minus_t = grid.noise_rates_np[:-1] ** 2
    one_minus_s = grid.noise_rates_np[1:] ** 2
    beta_ts = -np.expm1(np.log(alpha_bar_t) - np.log(alpha_bar_s))
    grid.add(coef_x0=np.sqrt(alpha_bar_s) * beta_ts / one_minus_t,
             coef_xt=np.sqrt(alpha_bar_t / alpha_bar_s) * one_minus_s / one_minus_t,
             posterior_std=np.sqrt(one_minus_s / one_minus_t * beta_ts))
    return _run(denoiser, _ddpm_update, (), x_init, grid, seed, callback, known, known_mask)


def _ddim_update(denoiser, step, x, carry, grid, seed):
    # 1. predict x_0 and epsilon at t
    pred_x0, pred_noise = _evaluate(denoiser, grid, x)
    # 2. x_s = sqrt(alpha_bar_s) x_0 + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z
    x = grid["next_signal_rates"] * pred_x0 + grid["direction_rates"] * pred_noise
    x += grid["sigmas"] * _step_noise(seed, step, tf.shape(x), 1)
    return x, carry, pred_x0


def sample_ddim(denoiser, x_init, schedule, num_steps, seed, callback=None, *,
                t_start=None, known=None, known_mask=None, spacing="logsnr", rolling=0.0,
                eta=0.0):
    """DDIM, deterministic at eta = 0 (Song, Meng & Ermon 2021, eq. 12)."""
    grid = _grid(schedule, num_steps, spacing, t_start, rolling, x_init)
    alpha_bar = grid.signal_rates_np ** 2
    one_minus = grid.noise_rates_np ** 2
    # sigma_t(eta) of eq. 16; at eta = 1 it is the DDPM posterior std.
    sigmas = eta * np.sqrt(one_minus[1:] / one_minus[:-1]
                           * -np.expm1(np.log(alpha_bar[:-1]) - np.log(alpha_bar[1:])))
    grid.add(sigmas=sigmas,
             direction_rates=np.sqrt(np.maximum(one_minus[1:] - sigmas ** 2, 0.0)))
    return _run(denoiser, _ddim_update, (), x_init, grid, seed, callback, known, known_mask)


def _dpmpp_2m_update(denoiser, step, x, previous_x0, grid, seed):
    # 1. data prediction at lambda_i
    pred_x0, _ = _evaluate(denoiser, grid, x)
    # 2. second-order combination with the previous data prediction
    half_inverse_r = grid["half_inverse_r"]
    corrected = (1.0 + half_inverse_r) * pred_x0 - half_inverse_r * previous_x0
    # 3. exponential-integrator update to lambda_{i+1}
    x = grid["ratio_x"] * x + grid["coef_d"] * corrected
    return x, pred_x0, pred_x0


def _dpmpp_2m_sde_update(denoiser, step, x, previous_x0, grid, seed):
    # 1.-3. the multistep update with the SDE's coefficients
    x, previous_x0, pred_x0 = _dpmpp_2m_update(denoiser, step, x, previous_x0, grid, seed)
    # 4. fresh noise (zero at the clean end point)
    x += grid["noise_std"] * _step_noise(seed, step, tf.shape(x), 2)
    return x, previous_x0, pred_x0


def _dpmpp_2m(denoiser, x_init, schedule, num_steps, seed, callback, t_start, known,
              known_mask, spacing, rolling, eta):
    grid = _grid(schedule, num_steps, spacing, t_start, rolling, x_init)
    log_snrs = grid.log_snrs_np
    step_sizes = log_snrs[1:] - log_snrs[:-1]  # h_i = lambda_{i+1} - lambda_i (inf at the end)
    # x_{i+1} = (sigma_{i+1} / sigma_i) exp(-eta h_i) x_i
    #           - alpha_{i+1} (exp(-(1 + eta) h_i) - 1) D_i
    #           + sigma_{i+1} sqrt(1 - exp(-2 eta h_i)) z
    # (eta = 0: the ODE solver, Lu et al. 2022 Alg. 2; eta = 1: its SDE form, whose
    # first-order step is exactly the DDPM posterior step)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ratio_x = grid.noise_rates_np[1:] / grid.noise_rates_np[:-1] * np.exp(-eta * step_sizes)
        coef_d = -grid.signal_rates_np[1:] * np.expm1(-(1.0 + eta) * step_sizes)
        # D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1}, r_i = h_{i-1} / h_i; the
        # first step and the final step to sigma = 0 stay first order.
        half_inverse_r = np.zeros_like(step_sizes)
        half_inverse_r[1:] = step_sizes[1:] / (2.0 * step_sizes[:-1])
    # A rolling grid holds notes still (h = 0) before they start and after they
    # end: their first moving step is first order too.
    half_inverse_r[~np.isfinite(step_sizes) | ~np.isfinite(half_inverse_r)] = 0.0
    ratio_x[~np.isfinite(step_sizes)] = 0.0  # sigma_{i+1} = 0 at the clean end point
    grid.add(ratio_x=ratio_x, coef_d=coef_d, half_inverse_r=half_inverse_r)
    update = _dpmpp_2m_update
    if eta > 0:  # (finite at the end point too: sigma_{i+1} = 0 times 1)
        grid.add(noise_std=grid.noise_rates_np[1:] * np.sqrt(-np.expm1(-2.0 * eta * step_sizes)))
        update = _dpmpp_2m_sde_update
    x_init = tf.convert_to_tensor(x_init, tf.float32)
    return _run(denoiser, update, tf.zeros_like(x_init), x_init, grid, seed,
                callback, known, known_mask)


def sample_dpmpp_2m(denoiser, x_init, schedule, num_steps, seed, callback=None, *,
                    t_start=None, known=None, known_mask=None, spacing="logsnr",
                    rolling=0.0):
    """DPM-Solver++(2M), multistep second order in x_0 (Lu et al. 2022, Alg. 2)."""
    return _dpmpp_2m(denoiser, x_init, schedule, num_steps, seed, callback, t_start,
                     known, known_mask, spacing, rolling, eta=0.0)


def sample_dpmpp_2m_sde(denoiser, x_init, schedule, num_steps, seed, callback=None, *,
                        t_start=None, known=None, known_mask=None, spacing="logsnr",
                        rolling=0.0, eta=1.0):
    """DPM-Solver++(2M) SDE, the stochastic multistep solver (Lu et al. 2022, sec. 5)."""
    return _dpmpp_2m(denoiser, x_init, schedule, num_steps, seed, callback, t_start,
                     known, known_mask, spacing, rolling, eta=eta)


def _inversion_update(denoiser, step, x, carry, grid, seed):
    # A grid step run backwards: from its end point up to its start point.
    # 1. epsilon at the noisier target point's timestep: the DDIM step that
    #    comes back down evaluates there, so the two errors cancel to first order
    t = _timesteps(grid, x)
    pred_noise = tf.cast(denoiser(x, t), tf.float32)
    pred_x0 = (x - grid["next_noise_rates"] * pred_noise) / grid["next_signal_rates"]
    # 2. re-noise deterministically to the target point
    x = grid["signal_rates"] * pred_x0 + grid["noise_rates"] * pred_noise
    return x, carry, pred_x0


def ddim_invert(denoiser, x_0, schedule, num_steps, seed=0, callback=None, *,
                t_start=None, spacing="logsnr"):
    """Deterministic DDIM inversion, data -> noise (Song et al. 2021; Mokady et al. 2023).

    Runs the num_steps-step DDIM grid backwards from its last noisy point
    (t = 0, where x_0 is taken as x_t) up to t_start, so that `sample_ddim`
    with the same arguments maps the result back to x_0.
    """
    grid = _Grid(schedule, timestep_grid(schedule, num_steps, spacing, t_start))
    # Every step but the last (t = 0 -> clean), last first.
    return _run(denoiser, _inversion_update, (), x_0, grid, seed, callback,
                order=range(grid.num_steps - 2, -1, -1))


SAMPLERS = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp": sample_dpmpp_2m,
    "dpmpp_sde": sample_dpmpp_2m_sde,
}


def get_sampler(name):
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose {', '.join(SAMPLERS)}") from None
