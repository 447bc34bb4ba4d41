"""Rolling noise levels: earlier notes run ahead of later ones.

Diffusion denoises every note at once, so a note's pitch is decided while its
neighbours are as noisy as itself, and nothing makes consecutive choices agree
(the interval statistics show it). With a rolling level the segment is denoised
left to right in an overlapping window: note i is still noisy while the notes
before it are nearly clean, so its choice is conditioned on theirs, as in
AR-Diffusion (Wu et al. 2023) and Rolling Diffusion (Ruhe et al. 2024); the
network learns those configurations from training examples drawn the same way
(per-token levels, Diffusion Forcing, Chen et al. 2024).

Notation: progress tau in [0, 1] (1: every note pure noise, 0: every note
clean), width w >= 0 (how far in progress the first note runs ahead of the
last); a note's level u_i in [0, 1] is then mapped to a timestep by the
sampler's spacing or training's time warp, as a shared level u is.

    u_i = clip((1 + w) tau - w (L - 1 - i) / (L - 1), 0, 1)

so at tau = 1 every note is at u = 1, at tau = 0 every note at 0, and w = 0 is
the usual shared level u_i = tau.
"""

import numpy as np
import tensorflow as tf


def _lags(length):
    """(L - 1 - i) / (L - 1) per note: 1 for the first note, 0 for the last."""
    if length < 1:
        raise ValueError(f"rolling levels need at least one note, got length {length}")
    return np.linspace(1.0, 0.0, length) if length > 1 else np.zeros(1)


def rolling_levels_np(progress, width, length):
    """u [..., length] for progress [...] (float64 numpy; width a float)."""
    if width < 0:
        raise ValueError(f"the rolling width must be at least 0, got {width}")
    progress = np.asarray(progress, np.float64)[..., None]
    return np.clip((1.0 + width) * progress - width * _lags(length), 0.0, 1.0)


def rolling_levels(progress, width, length):
    """u [batch, length] for progress [batch] and width [batch] (float32 tensors)."""
    progress = tf.convert_to_tensor(progress, tf.float32)[:, None]
    width = tf.convert_to_tensor(width, tf.float32)[:, None]
    lags = tf.constant(_lags(length), tf.float32)[None, :]
    return tf.clip_by_value((1.0 + width) * progress - width * lags, 0.0, 1.0)
