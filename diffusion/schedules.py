"""Noise schedules of variance-preserving diffusion, as alpha_bar tables.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"; Nichol &
Dhariwal 2021, "Improved DDPM"). Step t = 1..T is stored at index t - 1, and
index -1 stands for clean data (alpha_bar = 1):

  beta_t          variance of the noise added at step t
  alpha_t         1 - beta_t
  alpha_bar_t     prod_{s <= t} alpha_s, the signal variance kept after t steps
  signal_rates    sqrt(alpha_bar_t)              (alpha_t in Kingma et al. 2021)
  noise_rates     sqrt(1 - alpha_bar_t)          (sigma_t)
  log_snr         log(alpha_bar_t / (1 - alpha_bar_t))   (lambda_t)

Samplers take fractional timesteps: log(alpha_bar) is interpolated linearly
between the integer steps (as DPM-Solver's discrete-time wrapper does), so a
step grid evenly spaced in log-SNR stays on the schedule the model was trained
on.
"""

import math

import numpy as np
import tensorflow as tf

# A schedule whose last step keeps more signal than this is refused: sampling
# starts from pure noise, so the model never learned the first reverse step.
MAX_TERMINAL_SIGNAL = 1e-3


class NoiseSchedule:
    """An alpha_bar table with float64 numpy and float32 TensorFlow views.

    Args:
      alpha_bars: alpha_bar_t for t = 1..T, strictly decreasing in (0, 1).
      name: a label for messages.
      allow_signal_leak: accept alpha_bar_T > MAX_TERMINAL_SIGNAL.
    """

    def __init__(self, alpha_bars, name="custom", allow_signal_leak=False):
        alpha_bars = np.asarray(alpha_bars, np.float64)
        if alpha_bars.ndim != 1 or len(alpha_bars) < 1:
            raise ValueError("alpha_bars must be a non-empty 1-D table")
        if np.any(np.diff(alpha_bars) >= 0) or alpha_bars[0] >= 1 or alpha_bars[-1] <= 0:
            raise ValueError("alpha_bars must decrease strictly inside (0, 1)")
        self.name = name
        self.alpha_bars = alpha_bars
        self.num_timesteps = len(alpha_bars)
        if alpha_bars[-1] > MAX_TERMINAL_SIGNAL and not allow_signal_leak:
            raise ValueError(
                f"{name} schedule with T={self.num_timesteps} keeps alpha_bar_T = "
                f"{alpha_bars[-1]:.3g} of the signal variance at its last step (limit "
                f"{MAX_TERMINAL_SIGNAL:g}), but sampling starts from pure noise; use more "
                "timesteps or the cosine schedule, or pass allow_signal_leak=True")
        # Index 0 of the extended table is t = -1 (clean data, log alpha_bar = 0).
        self._log_alpha_bars_ext = np.concatenate([[0.0], np.log(alpha_bars)])
        self._log_alpha_bars_tf = tf.constant(self._log_alpha_bars_ext, tf.float32)

    # -- float64 numpy views (step grids and update coefficients) -------------
    @property
    def betas(self) -> np.ndarray:
        previous = np.concatenate([[1.0], self.alpha_bars[:-1]])
        return 1.0 - self.alpha_bars / previous

    def log_alpha_bar_np(self, t) -> np.ndarray:
        positions = np.arange(-1, self.num_timesteps, dtype=np.float64)
        return np.interp(np.asarray(t, np.float64), positions, self._log_alpha_bars_ext)

    def rates_np(self, t):
        """(signal_rates, noise_rates) at float timesteps t, in float64."""
        log_alpha_bar = self.log_alpha_bar_np(t)
        return np.exp(0.5 * log_alpha_bar), np.sqrt(-np.expm1(log_alpha_bar))

    def log_snr_np(self, t) -> np.ndarray:
        log_alpha_bar = self.log_alpha_bar_np(t)
        return log_alpha_bar - np.log(-np.expm1(log_alpha_bar))

    def t_from_log_snr(self, log_snr) -> np.ndarray:
        """Exact inverse of log_snr_np on [0, T-1] (log-SNR falls as t grows)."""
        # alpha_bar = sigmoid(lambda), and log(alpha_bar) is piecewise linear in t.
        log_alpha_bar = -np.logaddexp(0.0, -np.asarray(log_snr, np.float64))
        steps = np.arange(-1, self.num_timesteps, dtype=np.float64)
        t = np.interp(log_alpha_bar, self._log_alpha_bars_ext[::-1], steps[::-1])
        return np.clip(t, 0.0, self.num_timesteps - 1)

    # -- float32 TensorFlow view (training and the denoiser's inputs) ---------
    def rates(self, t):
        """(signal_rates, noise_rates) at float or integer timesteps t, float32."""
        t = tf.cast(t, tf.float32)
        position = tf.clip_by_value(t + 1.0, 0.0, float(self.num_timesteps))
        lower = tf.minimum(tf.floor(position), float(self.num_timesteps - 1))
        fraction = position - lower
        lower = tf.cast(lower, tf.int32)
        low_values = tf.gather(self._log_alpha_bars_tf, lower)
        high_values = tf.gather(self._log_alpha_bars_tf, lower + 1)
        log_alpha_bar = low_values + fraction * (high_values - low_values)
        return tf.exp(0.5 * log_alpha_bar), tf.sqrt(-tf.math.expm1(log_alpha_bar))

    def __repr__(self):
        return (f"NoiseSchedule({self.name}, T={self.num_timesteps}, "
                f"alpha_bar_T={self.alpha_bars[-1]:.3g})")


def linear_schedule(num_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                    allow_signal_leak=False) -> NoiseSchedule:
    """DDPM's linear beta schedule (Ho et al. 2020)."""
    betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
    return NoiseSchedule(np.cumprod(1.0 - betas), "linear", allow_signal_leak)


def cosine_schedule(num_timesteps=1000, offset=0.008, max_beta=0.999,
                    allow_signal_leak=False) -> NoiseSchedule:
    """Cosine alpha_bar schedule (Nichol & Dhariwal 2021, eq. 17), betas clipped."""
    def f(step):
        return math.cos((step / num_timesteps + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = np.array([min(1.0 - f(step + 1) / f(step), max_beta)
                      for step in range(num_timesteps)], np.float64)
    return NoiseSchedule(np.cumprod(1.0 - betas), "cosine", allow_signal_leak)


def get_schedule(name: str, num_timesteps: int, allow_signal_leak=False) -> NoiseSchedule:
    if name == "linear":
        return linear_schedule(num_timesteps, allow_signal_leak=allow_signal_leak)
    if name == "cosine":
        return cosine_schedule(num_timesteps, allow_signal_leak=allow_signal_leak)
    raise ValueError(f"unknown noise schedule {name!r}; choose linear or cosine")
