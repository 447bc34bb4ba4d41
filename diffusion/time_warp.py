"""Time warping (Dieleman et al. 2022, "Continuous diffusion for categorical
data", CDCD): draw training timesteps where the loss changes fastest.

CDCD fits a monotone function F(t) to the cross-entropy and draws t = F^-1(u),
u uniform, so the density of t is proportional to dF/dt. The network then
trains where the outcome is decided, not where x_t is still noise (loss at its
ceiling, nothing to learn) or already clean (loss ~0). With the cosine schedule
the held-out cross-entropy of the Bach model is below 0.1 nats over the first
30% of t: a uniform t spends 30% of training there.

Here F is piecewise linear over NUM_BUCKETS equal slices of [0, T): each slice
keeps a moving average of its mean loss; F rises by the increase of the
running maximum of those means (so F is monotone even where the averages are
noisy; slice 0 rises from 0, the loss of clean data). A uniform share
(UNIFORM_SHARE) keeps every slice trained: a slice that is never drawn would
never show that it got worse. The uniform draws u come with each example from
the input pipeline, so a resumed run replays them.

Notation: u in [0, 1) the uniform draw, p_b the probability of slice b,
F_b = p_0 + ... + p_{b-1} the CDF at the slice's lower edge.
"""

import numpy as np
import tensorflow as tf

NUM_BUCKETS = 20
UNIFORM_SHARE = 0.2
# Per update of a slice (a batch that drew t there). At batch 32 the likeliest
# slices are updated every step, so their average spans ~100 steps; the least
# likely (p = 0.01) on about a quarter of the steps, so ~400 steps.
DECAY = 0.99


def bucket_probabilities(bucket_losses, bucket_updates, uniform_share=UNIFORM_SHARE):
    """p_b: (1 - uniform_share) * rise_b / sum(rise) + uniform_share / B.

    Uniform until every slice has been seen once, or while no loss rises.
    """
    losses = tf.convert_to_tensor(bucket_losses, tf.float32)
    num_buckets = losses.shape[0]
    lower = tf.linalg.band_part(tf.ones([num_buckets, num_buckets]), -1, 0) > 0
    running_max = tf.reduce_max(tf.where(lower, losses[None, :], -np.inf), axis=1)
    rises = tf.maximum(running_max - tf.concat([[0.0], running_max[:-1]], axis=0), 0.0)
    total = tf.reduce_sum(rises)
    uniform = tf.fill([num_buckets], 1.0 / num_buckets)
    seen = tf.reduce_all(tf.convert_to_tensor(bucket_updates) > 0) & (total > 0)
    warped = (1.0 - uniform_share) * rises / tf.maximum(total, 1e-12) + uniform_share * uniform
    return tf.where(seen, warped, uniform)


def inverse_cdf(u, num_timesteps, probabilities):
    """t = F^-1(u) for u in [0, 1] (any shape), float32 in [0, T]: F is linear
    inside a slice."""
    probabilities = tf.convert_to_tensor(probabilities, tf.float32)
    num_buckets = probabilities.shape[0]
    u = tf.convert_to_tensor(u, tf.float32)
    # 1. the CDF at the slices' edges
    edges = tf.concat([[0.0], tf.cumsum(probabilities)], axis=0)
    # 2. the slice holding u (a comparison count: XLA has no searchsorted)
    bucket = tf.reduce_sum(tf.cast(u[..., None] >= edges[1:-1], tf.int32), axis=-1)
    # 3. the position inside the slice, then the timestep
    fraction = (u - tf.gather(edges, bucket)) / tf.gather(probabilities, bucket)
    return (tf.cast(bucket, tf.float32) + tf.clip_by_value(fraction, 0.0, 1.0)) \
        * (float(num_timesteps) / num_buckets)


def warp_timesteps(u, num_timesteps, probabilities):
    """Int timesteps t = floor(F^-1(u)) for uniform draws u in [0, 1); int32."""
    position = inverse_cdf(u, num_timesteps, probabilities)
    return tf.clip_by_value(tf.cast(tf.floor(position), tf.int32), 0, num_timesteps - 1)


def cdf(t, num_timesteps, probabilities):
    """F(t) for float t in [0, T], float64 numpy (the inverse of inverse_cdf)."""
    probabilities = np.asarray(probabilities, np.float64)
    num_buckets = len(probabilities)
    edges = np.concatenate([[0.0], np.cumsum(probabilities)])
    position = np.clip(np.asarray(t, np.float64) * num_buckets / num_timesteps, 0, num_buckets)
    bucket = np.minimum(np.floor(position).astype(np.int64), num_buckets - 1)
    return edges[bucket] + probabilities[bucket] * (position - bucket)


def bucket_statistics(t, losses, num_timesteps, num_buckets=NUM_BUCKETS):
    """(sum of losses, count) per slice of [0, T) for one batch, float32 [B] each."""
    bucket = tf.cast(t, tf.int32) * num_buckets // num_timesteps
    losses = tf.cast(losses, tf.float32)
    return (tf.math.unsorted_segment_sum(losses, bucket, num_buckets),
            tf.math.unsorted_segment_sum(tf.ones_like(losses), bucket, num_buckets))


def updated_bucket_losses(bucket_losses, bucket_updates, sums, counts, decay=DECAY):
    """(losses, updates) after one batch: a moving average per seen slice,
    with Adam-style warm-up (the first batch's mean is taken whole)."""
    seen = counts > 0
    rate = tf.minimum(decay, bucket_updates / (bucket_updates + 1.0))  # 0 on the first
    means = sums / tf.maximum(counts, 1.0)
    losses = tf.where(seen, rate * bucket_losses + (1.0 - rate) * means, bucket_losses)
    return losses, bucket_updates + tf.cast(seen, tf.float32)
