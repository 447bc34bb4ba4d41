"""Input pipelines that carry each example's diffusion randomness with it.

The timestep t and the noise of an example are drawn with stateless ops from
(seed, the example's position in the stream). So they depend neither on how the
global batch is split across replicas nor on when the run was interrupted: a
restored iterator replays exactly the examples, timesteps and noise that an
uninterrupted run would have seen.
"""

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# The held-out stream uses its own seed so it never shares noise with training.
_EVAL_SEED_OFFSET = 1_000_003


def _with_randomness(seed, num_timesteps, key, crop=0):
    def add(index, element):
        base = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
        x_0 = element[key]
        if crop:
            # A random window of `crop` samples (waveforms): more, shorter examples.
            offset = tf.random.stateless_uniform(
                [], tf.random.experimental.stateless_fold_in(base, 3), 0,
                tf.shape(x_0)[0] - crop + 1, tf.int32)
            x_0 = x_0[offset:offset + crop]
        t = tf.random.stateless_uniform([], base, 0, num_timesteps, tf.int32)
        noise_seed = tf.random.experimental.stateless_fold_in(base, 1)
        noise = tf.random.stateless_normal(tf.shape(x_0), noise_seed, dtype=x_0.dtype)
        # The self-conditioning coin of this example (used only by such models).
        coin = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(base, 2))
        # A continuous uniform draw for time warping (t = F^-1(u), any real t
        # reachable); its own stream, so the other draws are as without it.
        u = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(base, 4))
        # Whether the example's notes get rolling levels (--rolling_share).
        roll = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(base, 5))
        return {"x_0": x_0, "t": t, "noise": noise, "self_condition": coin < 0.5, "u": u,
                "roll": roll}
    return add


def training_stream(dataset, seed, num_timesteps, global_batch, key="notes",
                    shuffle_buffer=10000, fixed_batches=0, start_batch=0, crop=0):
    """Shuffled, repeated batches of {x_0, t, noise, self_condition, u, roll}; infinite.

    start_batch skips that many batches of the same seeded stream, so a resumed
    run continues exactly where its checkpoint's step left off (the skipped
    examples pass the shuffle buffer but not the noise generation).
    crop > 0 trains on a random window of that many steps of each example.
    fixed_batches > 0 keeps only the first N batches of one shuffled pass, with
    their t and noise, and repeats them (the overfit sanity check).
    """
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    skip = start_batch * global_batch
    if fixed_batches:
        dataset = dataset.take(fixed_batches * global_batch).enumerate()
        dataset = dataset.map(_with_randomness(seed, num_timesteps, key, crop)).cache().repeat()
        dataset = dataset.skip(skip)
    else:
        dataset = dataset.repeat().enumerate().skip(skip)
        dataset = dataset.map(_with_randomness(seed, num_timesteps, key, crop),
                              num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.batch(global_batch, drop_remainder=True).prefetch(AUTOTUNE)
    # Saved datasets have no files to shard by: workers split the elements.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def held_out_batches(dataset, seed, num_timesteps, global_batch, num_batches, key="notes",
                     crop=0):
    """A fixed, cached set of held-out batches (same t, noise and crop every evaluation)."""
    dataset = dataset.take(num_batches * global_batch).enumerate()
    dataset = dataset.map(_with_randomness(seed + _EVAL_SEED_OFFSET, num_timesteps, key,
                                           crop))
    return dataset.batch(global_batch, drop_remainder=False).cache()
