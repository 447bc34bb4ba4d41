"""Sampling from a trained network with its params: shared by generate.py,
TensorBoard sample summaries and the benchmarks."""

import tensorflow as tf

from diffusion import samplers, schedules


def default_steps(params, sampler_name):
    """All T steps for ancestral DDPM, the params' sample_steps otherwise."""
    return params.timesteps if sampler_name == "ddpm" else params.sample_steps


def make_denoiser(model, params, shape):
    """The pred_noise denoiser of `model` for a batch of the given shape."""
    schedule = schedules.get_schedule(params.schedule, params.timesteps)
    denoiser = samplers.epsilon_denoiser(
        model, schedule, params.prediction, params.clip_x0,
        self_condition_shape=shape if params.self_condition else None)
    return denoiser, schedule


def sample_features(model, params, num_features, n, sampler_name, steps, seed,
                    callback=None):
    """n generated feature arrays [n, seq_len, num_features] (numpy float32)."""
    shape = [n, params.seq_len, num_features]
    denoiser, schedule = make_denoiser(model, params, shape)
    x_init = tf.random.stateless_normal(shape, [seed, 0])
    x_0 = samplers.get_sampler(sampler_name)(
        denoiser, x_init, schedule, steps, seed, callback=callback)
    return x_0.numpy()
