"""The forward process q(x_t | x_0), training targets, posterior and loss.

Notation as in schedules.py: x_t = signal_rates * x_0 + noise_rates * epsilon,
with signal_rates = sqrt(alpha_bar_t) and noise_rates = sqrt(1 - alpha_bar_t).
v-prediction (Salimans & Ho 2022): v = signal_rates * epsilon - noise_rates * x_0.
Categorical prediction (score interpolation, Dieleman et al. 2022, "Continuous
diffusion for categorical data"): for x_0 made of one-hot groups in {-1, +1},
the network outputs logits per group, is trained with cross-entropy, and its
x_0 estimate is the expectation 2 * softmax(logits) - 1 of each group.
"""

import numpy as np
import tensorflow as tf

PREDICTION_TYPES = ("epsilon", "v", "categorical")


def _check_prediction(prediction):
    if prediction not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {prediction!r}; choose "
                         "epsilon, v or categorical")


def broadcast(rates, like):
    """[batch] (or per-note [batch, length]) rates -> trailing 1s to the rank of `like`."""
    rates = tf.convert_to_tensor(rates)
    if rates.shape.rank == 0:
        return rates
    if rates.shape.rank == 1:
        return tf.reshape(rates, [-1] + [1] * (like.shape.rank - 1))
    return tf.reshape(rates, tf.concat(
        [tf.shape(rates), tf.ones([like.shape.rank - rates.shape.rank], tf.int32)], 0))


def q_sample(schedule, x_0, t, noise):
    """Draws x_t ~ q(x_t | x_0) with the given noise (Ho et al. 2020, eq. 4)."""
    signal_rates, noise_rates = schedule.rates(t)
    return broadcast(signal_rates, x_0) * x_0 + broadcast(noise_rates, x_0) * noise


def training_target(schedule, x_0, noise, t, prediction="epsilon"):
    """What the network regresses: epsilon, or v = a_t * epsilon - sigma_t * x_0."""
    _check_prediction(prediction)
    if prediction == "epsilon":
        return noise
    if prediction == "categorical":
        return x_0
    signal_rates, noise_rates = schedule.rates(t)
    return broadcast(signal_rates, x_0) * noise - broadcast(noise_rates, x_0) * x_0


def categorical_x0(logits, groups):
    """Expected x_0 in {-1, +1} codes: 2 * softmax - 1 per one-hot group."""
    parts = tf.split(tf.cast(logits, tf.float32), groups, axis=-1)
    return 2.0 * tf.concat([tf.nn.softmax(part) for part in parts], axis=-1) - 1.0


def categorical_cross_entropy(logits, x_0, groups, group_weights=None):
    """Sum over groups of the cross-entropy against x_0's hot entries, [batch, L]
    (each group's times its weight when group_weights are given)."""
    logits = tf.split(tf.cast(logits, tf.float32), groups, axis=-1)
    labels = tf.split((x_0 + 1.0) / 2.0, groups, axis=-1)
    group_weights = group_weights or [1.0] * len(groups)
    if len(group_weights) != len(groups):
        raise ValueError(f"{len(group_weights)} group weights for {len(groups)} one-hot "
                         f"groups {list(groups)}")
    return tf.add_n([weight * tf.nn.softmax_cross_entropy_with_logits(label, logit)
                     for label, logit, weight in zip(labels, logits, group_weights)])


def split_prediction(x_t, model_output, signal_rates, noise_rates, prediction="epsilon",
                     groups=None):
    """(pred_x0, pred_noise) from a network output, given the rates at x_t's step."""
    _check_prediction(prediction)
    signal_rates = broadcast(signal_rates, x_t)
    noise_rates = broadcast(noise_rates, x_t)
    if prediction == "epsilon":
        pred_noise = model_output
        pred_x0 = (x_t - noise_rates * pred_noise) / signal_rates
    elif prediction == "v":
        pred_x0 = signal_rates * x_t - noise_rates * model_output
        pred_noise = noise_rates * x_t + signal_rates * model_output
    else:
        if groups is None:
            raise ValueError("categorical prediction needs the one-hot group sizes")
        pred_x0 = categorical_x0(model_output, groups)
        pred_noise = (x_t - signal_rates * pred_x0) / noise_rates
    return pred_x0, pred_noise


def noise_from_x0(x_t, pred_x0, signal_rates, noise_rates):
    """epsilon = (x_t - a_t x_0) / sigma_t (sigma_t > 0)."""
    return (x_t - broadcast(signal_rates, x_t) * pred_x0) / broadcast(noise_rates, x_t)


def posterior_mean_variance(schedule, x_0, x_t, t):
    """Mean and variance of q(x_{t-1} | x_t, x_0) at integer t (Ho et al. 2020, eq. 7).

    mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
           + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    variance = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    """
    # Coefficients come from the float64 table: beta_t ~ 1e-4 would lose three
    # digits if recomputed as 1 - alpha_bar_t / alpha_bar_{t-1} in float32.
    alpha_bar = schedule.alpha_bars
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    beta = schedule.betas
    tables = {
        "coef_x0": np.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar),
        "coef_xt": np.sqrt(1.0 - beta) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
        "variance": (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta,
    }
    t = tf.cast(t, tf.int32)
    coef_x0, coef_xt, variance = (
        tf.gather(tf.constant(tables[name], tf.float32), t)
        for name in ("coef_x0", "coef_xt", "variance"))
    mean = broadcast(coef_x0, x_0) * x_0 + broadcast(coef_xt, x_t) * x_t
    return mean, variance


def sample_timesteps(seed, batch_size, num_timesteps):
    """t per example, uniform over all T steps (indices 0..T-1), int32."""
    return tf.random.stateless_uniform([batch_size], seed, 0, num_timesteps, tf.int32)


LOSS_WEIGHTINGS = ("none", "min_snr")


def loss_weights(schedule, t, prediction="epsilon", weighting="none", gamma=5.0):
    """Per-example weights of the MSE; min-SNR-gamma (Hang et al. 2023).

    With SNR = alpha_bar_t / (1 - alpha_bar_t), the x_0-space weight
    min(SNR, gamma) becomes min(SNR, gamma) / SNR for epsilon-prediction and
    min(SNR, gamma) / (SNR + 1) for v-prediction.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose none or min_snr")
    if weighting == "none":
        return tf.ones_like(tf.cast(t, tf.float32))
    if prediction == "categorical":
        raise ValueError("min_snr weighting is defined for epsilon and v prediction")
    signal_rates, noise_rates = schedule.rates(t)
    snr = tf.square(signal_rates) / tf.maximum(tf.square(noise_rates), 1e-12)
    clipped = tf.minimum(snr, gamma)
    return clipped / snr if prediction == "epsilon" else clipped / (snr + 1.0)


def diffusion_loss(model_fn, schedule, x_0, t, noise, prediction="epsilon",
                   weighting="none", gamma=5.0, self_condition_mask=None, groups=None,
                   group_weights=None):
    """Per-example weighted mean squared error of the network against its target.

    Args:
      model_fn: callable (x_t, t_float) -> network output shaped like x_0, or
        (x_t, t_float, x0_estimate) -> output when self_condition_mask is given.
      t: int timesteps [batch], or [batch, length] for a level per note (rolling
        levels, diffusion/rolling.py); noise: epsilon shaped like x_0.
      self_condition_mask: optional bool [batch]; where true the network also
        sees its own (stop-gradient) estimate of x_0 from a first pass, as in
        self-conditioning (Chen et al. 2022, "Analog Bits"); elsewhere zeros.
      groups: one-hot group sizes, for categorical prediction (cross-entropy).
      group_weights: optional weight of each group's cross-entropy (None: 1s).
    Returns:
      float32 losses shaped like t: [batch], or [batch, length] per note
      (callers average them over the global batch).
    """
    x_t = q_sample(schedule, x_0, t, noise)
    target = training_target(schedule, x_0, noise, t, prediction)
    t_float = tf.cast(t, tf.float32)
    if self_condition_mask is None:
        output = tf.cast(model_fn(x_t, t_float), tf.float32)
    else:
        no_estimate = tf.zeros_like(x_0)
        first = tf.cast(model_fn(x_t, t_float, no_estimate), tf.float32)
        signal_rates, noise_rates = schedule.rates(t_float)
        estimate, _ = split_prediction(x_t, first, signal_rates, noise_rates, prediction,
                                       groups)
        use = broadcast(tf.cast(self_condition_mask, tf.float32), x_0)
        estimate = tf.stop_gradient(use * estimate)
        output = tf.cast(model_fn(x_t, t_float, estimate), tf.float32)
    if prediction == "categorical":
        losses = categorical_cross_entropy(output, x_0, groups,
                                           group_weights)  # [batch, length]
    else:
        losses = tf.square(output - target)
    # per example, or per note when t is: the mean over everything else
    losses = tf.reduce_mean(tf.reshape(losses, tf.concat([tf.shape(t), [-1]], 0)), axis=-1)
    return losses * loss_weights(schedule, t, prediction, weighting, gamma)
