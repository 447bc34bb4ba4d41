"""Anti-aliasing low-pass filter and decimation in TensorFlow.

The waveform seed low-passes 22050 Hz audio at fc = 3675 Hz with a 128-tap
windowed sinc and keeps every 3rd sample (7350 Hz). Its filter had a centre tap
of 0.5 instead of 2 * fc / SR, which leaves the stopband near -15.6 dB and lets
everything above 3675 Hz alias into the band. Here the ideal low-pass impulse
response h[n] = (2 fc / SR) sinc(2 fc n / SR) is windowed with a Hamming window,
so the centre tap is exactly 2 fc / SR and the stopband sits below -50 dB.
"""

import numpy as np
import tensorflow as tf


def low_pass_taps(fc: float, sample_rate: float, npoints: int = 128) -> np.ndarray:
    """Hamming-windowed sinc taps (float64) with cut-off fc, centre tap 2 fc / SR.

    n runs from -npoints // 2 to npoints - npoints // 2 - 1, so for an even
    npoints (the seed's 128) tap npoints // 2 is the centre, n = 0.
    """
    if not 0 < fc < sample_rate / 2:
        raise ValueError(f"cut-off {fc} Hz must lie in (0, {sample_rate / 2}) Hz "
                         f"for sample rate {sample_rate} Hz")
    if npoints < 3:
        raise ValueError(f"a low-pass filter needs at least 3 taps, got {npoints}")
    n = np.arange(npoints) - npoints // 2
    cutoff = 2.0 * fc / sample_rate  # the ideal filter's gain-bandwidth, 2 fc / SR
    window = np.hamming(npoints)
    # The window's centre is at (npoints - 1) / 2, ours at npoints // 2: for
    # even npoints re-evaluate the Hamming window centred on n = 0.
    window = 0.54 + 0.46 * np.cos(2.0 * np.pi * n / npoints) if npoints % 2 == 0 else window
    return cutoff * np.sinc(cutoff * n) * window


def low_pass(signal, fc: float, sample_rate: float = 22050.0, npoints: int = 128,
             downsample: int = 1):
    """Low-passes `signal` ([samples] or [batch, samples]) and keeps every
    `downsample`-th sample; float32 tensor of ceil(samples / downsample).

    The filter runs as one strided convolution, so the samples that
    decimation drops are never computed. Edges are zero-padded ('SAME').
    """
    signal = tf.convert_to_tensor(signal, tf.float32)
    squeeze = signal.shape.rank == 1
    if squeeze:
        signal = signal[None]
    taps = low_pass_taps(fc, sample_rate, npoints)
    # conv1d computes a correlation; the taps are symmetric about n = 0 apart
    # from the extra left tap of an even npoints, so flip to get a convolution.
    kernel = tf.constant(taps[::-1].copy().reshape(npoints, 1, 1), tf.float32)
    length = tf.shape(signal)[1]
    # Pad so that output k is centred on input k * downsample exactly.
    left = npoints - 1 - npoints // 2
    right = npoints // 2
    padded = tf.pad(signal, [[0, 0], [left, right]])[..., None]
    filtered = tf.nn.conv1d(padded, kernel, stride=downsample, padding="VALID")[..., 0]
    out_length = (length + downsample - 1) // downsample
    filtered = filtered[:, :out_length]
    return filtered[0] if squeeze else filtered
