"""Sampling from a trained network with its params: shared by generate.py,
TensorBoard sample summaries and the benchmarks."""

import tensorflow as tf

import params as params_lib

from diffusion import samplers, schedules


def default_steps(params, sampler_name):
    """All T steps for ancestral DDPM, the params' sample_steps otherwise."""
    return params.timesteps if sampler_name == "ddpm" else params.sample_steps


def categorical_groups(params, encoding):
    """The one-hot group sizes a categorical-prediction model needs (else None)."""
    if params.prediction != "categorical":
        return None
    groups = encoding.categorical_groups
    if groups is None:
        raise ValueError(f"--prediction=categorical needs one-hot features; encoding "
                         f"{encoding.name!r} has none (use --encoding=onehot in the "
                         "midi domain)")
    return groups


def make_denoiser(model, params, shape, groups=None, guide=None):
    """The pred_noise denoiser of `model` for a batch of the given shape;
    with a guide network, autoguided by params.guidance."""
    schedule = schedules.get_schedule(params.schedule, params.timesteps)
    denoiser = samplers.epsilon_denoiser(
        model, schedule, params.prediction, params.clip_x0,
        self_condition_shape=shape if params.self_condition else None, groups=groups,
        temperature=params.sample_temperature, guide=guide,
        guidance=params.guidance,
        guide_max_t=(params.guidance_max_t * (params.timesteps - 1)
                     if params.guidance_max_t < 1 else None),
        guided_groups=params.guidance_groups or None)
    return denoiser, schedule


def grid_options(params, time_warp=None):
    """The samplers' grid arguments: spacing for params.sample_spacing (none
    for the sampler's own grid; "warp" takes the slice probabilities learned in
    training, time_warp as exported in the weights' metadata), and rolling for
    params.sample_rolling when it is set."""
    options = {"rolling": params.sample_rolling} if params.sample_rolling else {}
    if params.sample_spacing != "warp":
        if params.sample_spacing:
            options["spacing"] = params.sample_spacing
        return options
    if time_warp is None:
        raise ValueError("--spacing=warp needs the time warp learned in training; these "
                         "weights have none (trained without --time_warping): use "
                         "--spacing=uniform or logsnr")
    return dict(options, spacing=list(time_warp))


def sample_features(model, params, encoding, n, sampler_name, steps, seed, callback=None,
                    time_warp=None, guide=None):
    """n generated feature arrays [n, length, num_features] (numpy float32).

    time_warp: the slice probabilities a --time_warping run learned, for
    sample_spacing "warp". guide: the network that autoguides `model` (used
    when params.guidance is not 1).
    """
    shape = [n, params_lib.sample_length(params), encoding.num_features]
    denoiser, schedule = make_denoiser(model, params, shape,
                                       categorical_groups(params, encoding), guide)
    x_init = tf.random.stateless_normal(shape, [seed, 0])
    x_0 = samplers.get_sampler(sampler_name)(
        denoiser, x_init, schedule, steps, seed, callback=callback,
        **grid_options(params, time_warp), **params_lib.eta_option(params, sampler_name))
    return x_0.numpy()
