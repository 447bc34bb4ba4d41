"""Waveform metrics: distances between sets of audio clips (numpy/scipy/librosa).

No embedding network can be downloaded here, so the features are hand-made
(REFERENCE.md sec. 6, "Audio without downloadable embedding weights"):

* Frechet distance (FD) between Gaussians fitted to log-mel frames, the FID
  formula (Heusel et al. 2017) on log-mel instead of Inception features.
  Frames of all clips of a set are pooled: a 5 s clip at 7350 Hz gives about
  140 frames, so even a handful of clips fits a 64-dimensional covariance.
* Kernel Inception Distance (KID, Binkowski et al. 2018) on the same frames:
  the unbiased MMD^2 with the cubic polynomial kernel, averaged over random
  subsets. Unlike FD it has no bias that depends on the number of samples, so
  it stays readable for small generated sets.
* Spectral flatness (Wiener entropy) per frame: white noise sits near
  exp(-euler_gamma) = 0.56, tonal music far below. The distance between two
  sets' log10-flatness distributions is the 1-D Wasserstein distance.

A metric means little alone: evaluate.py always prints the floor (real train
clips against the held-out clips) and the ceiling (`shaped_noise`: Gaussian
noise with the training set's average spectrum and loudness) beside the model.
All functions take mono float clips (1-D, or [samples, 1] as the datasets
yield them) at one sample rate.
"""

import warnings
import zlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import librosa
import numpy as np
import scipy.linalg
import scipy.signal
import scipy.stats

# Feature settings. At the model rate (7350 Hz) a 1024-point FFT is 139 ms with
# 7.2 Hz bins, fine enough that none of 64 mel bands below 3675 Hz is empty.
N_MELS = 64
N_FFT = 1024
HOP = 256
LOG_FLOOR = 1e-10  # added to mel power before the natural log: silence -> -23.0
MAX_FRAMES = 20000  # frames per set kept for FD/KID (seeded subsample beyond this)
KID_SUBSET_SIZE = 1000  # Binkowski et al.'s reference code uses 1000 ...
KID_SUBSETS = 100  # ... and 100 subsets;
EVAL_KID_SUBSETS = 20  # evaluate_sets uses fewer (speed; the std is still usable)


def as_mono(clip) -> np.ndarray:
    """A clip as a 1-D float64 array.

    Accepts [samples], [samples, 1] (the datasets' layout) and
    [samples, channels] (soundfile's layout; channels are averaged).
    """
    audio = np.asarray(clip, np.float64)
    if audio.ndim == 2:
        if audio.shape[1] > audio.shape[0]:  # [channels, samples] would average
            raise ValueError(f"a clip of shape {audio.shape} looks like "  # to noise
                             "[channels, samples]; pass [samples, channels]")
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"expected a mono clip [samples] or [samples, channels], "
                         f"got shape {np.shape(clip)}")
    return audio


def frame_count(samples: int, n_fft: int = N_FFT, hop: int = HOP) -> int:
    """Uncentred frames (see log_mel_frames) in a clip of `samples` samples."""
    return 0 if samples < n_fft else 1 + (samples - n_fft) // hop


def log_mel_frames(audio, sample_rate: int, n_mels: int = N_MELS, n_fft: int = N_FFT,
                   hop: int = HOP) -> np.ndarray:
    """float64 [frames, n_mels]: natural log of mel power + 1e-10, one row per frame.

    Power (|STFT|^2, Hann window) through librosa's Slaney mel filters from 0 Hz
    to the Nyquist frequency sample_rate / 2 (3675 Hz at the model rate: there
    is nothing above it to measure). Frames are not centred (center=False):
    the zero padding of centred frames would add near-silent edge frames whose
    share depends on clip length, and generated clips need not be as long as
    the real ones. A clip shorter than n_fft gives zero rows.
    """
    audio = as_mono(audio)
    if frame_count(len(audio), n_fft, hop) == 0:
        return np.zeros((0, n_mels), np.float64)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sample_rate, n_fft=n_fft, hop_length=hop, center=False,
        power=2.0, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2.0)
    return np.log(mel.T + LOG_FLOOR).astype(np.float64)


def clip_features(audio, sample_rate: int, **mel_args) -> Optional[np.ndarray]:
    """One row per clip: mean and std over frames of its log-mel (2 * n_mels).

    None for a clip too short for one frame. A coarser, clip-level view than
    the pooled frames: it also sees how a clip's spectrum varies over time.
    """
    return _clip_row(log_mel_frames(audio, sample_rate, **mel_args))


def _clip_row(frames: np.ndarray) -> Optional[np.ndarray]:
    if len(frames) == 0:
        return None
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])


def _check_rows(features, name: str) -> np.ndarray:
    rows = np.asarray(features, np.float64)
    if rows.ndim != 2 or len(rows) < 2:
        raise ValueError(f"{name}: need a [rows >= 2, dims] array, got shape {rows.shape}")
    return rows


def frechet_distance(features_a, features_b) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of fitted Gaussians.

    The FID formula. Covariances are unbiased (ddof=1). The matrix square root
    of a product of covariance matrices is real in exact arithmetic; sqrtm's
    round-off leaves tiny imaginary parts, which are dropped. When the product
    is singular (constant features, e.g. silence) and sqrtm fails or warns,
    1e-6 is added to both diagonals as pytorch-fid does. Tiny negative results
    from round-off are clamped to 0.
    """
    a = _check_rows(features_a, "features_a")
    b = _check_rows(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # scipy warns (LinAlgWarning) on a singular product; retry as below.
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
        except scipy.linalg.LinAlgWarning:
            covmean = np.full_like(sigma_a, np.nan)
    if not np.all(np.isfinite(covmean)):
        offset = 1e-6 * np.eye(len(sigma_a))
        covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # k(x, y) = (x.y / d + 1)^3, the kernel of Binkowski et al. 2018.
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples (diagonals left out of K_xx, K_yy)."""
    m = len(x)
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    within = ((k_xx.sum() - np.trace(k_xx)) + (k_yy.sum() - np.trace(k_yy))) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(features_a, features_b, subset_size: int = KID_SUBSET_SIZE,
                              subsets: int = KID_SUBSETS, seed=0) -> Tuple[float, float]:
    """(mean, std) over `subsets` random subsets of the unbiased MMD^2 (KID).

    Each subset draws min(subset_size, rows of a, rows of b) rows of each set
    without replacement (Binkowski et al.'s reference code). The estimate is
    unbiased, so it scatters around 0 (and can go negative) for two samples of
    one distribution. When a subset holds every row of both sets, all subsets
    are the same and the std is 0: it measures subset scatter only. The kernel assumes features of order 1: standardise
    log-mel first (evaluate_sets does, with the reference's statistics).
    """
    a = _check_rows(features_a, "features_a")
    b = _check_rows(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(a[rng.choice(len(a), m, replace=False)],
                             b[rng.choice(len(b), m, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def spectral_flatness(audio, sample_rate: int, n_fft: int = N_FFT,
                      hop: int = HOP) -> np.ndarray:
    """float64 [frames]: geometric / arithmetic mean of each frame's power spectrum.

    librosa.feature.spectral_flatness (power 2, floor 1e-10) on the same
    uncentred frames as log_mel_frames. 1 for a flat spectrum (and for exact
    silence, whose floored spectrum is flat); white noise about 0.56; a pure
    tone near 0. Flatness is a ratio and does not depend on the sample rate;
    `sample_rate` is taken only so that every feature has one signature.
    """
    del sample_rate  # rate-independent, see above
    audio = as_mono(audio)
    if frame_count(len(audio), n_fft, hop) == 0:
        return np.zeros(0, np.float64)
    flatness = librosa.feature.spectral_flatness(
        y=audio, n_fft=n_fft, hop_length=hop, center=False, amin=LOG_FLOOR, power=2.0)
    return flatness[0].astype(np.float64)


def flatness_distance(flatness_a, flatness_b) -> Dict[str, float]:
    """1-D Wasserstein distance between log10-flatness distributions, and medians.

    log10 because flatness spans decades (tones 1e-4, noise 0.5): on a linear
    scale all tonal frames would look alike. The distance is in decades.
    """
    a = np.log10(np.maximum(np.asarray(flatness_a, np.float64), LOG_FLOOR))
    b = np.log10(np.maximum(np.asarray(flatness_b, np.float64), LOG_FLOOR))
    if a.size == 0 or b.size == 0:
        raise ValueError("flatness_distance needs at least one frame in each set")
    return {"wasserstein_log10": float(scipy.stats.wasserstein_distance(a, b)),
            "median_a": float(10.0 ** np.median(a)),
            "median_b": float(10.0 ** np.median(b))}


def rms(clips: Sequence) -> float:
    """Root mean square over all samples of all clips (pooled, not per clip)."""
    total = sum(float(np.sum(as_mono(c) ** 2)) for c in clips)
    count = sum(len(as_mono(c)) for c in clips)
    return float(np.sqrt(total / count)) if count else 0.0


def average_power_spectrum(clips: Sequence, nperseg: int = N_FFT) -> Tuple[np.ndarray, np.ndarray]:
    """(frequencies in cycles per sample, PSD) averaged over clips (Welch, Hann).

    Each clip's Welch estimate counts once, however long the clip is. Clips
    shorter than nperseg use their own length as the segment.
    """
    spectra = []
    for clip in clips:
        audio = as_mono(clip)
        if len(audio) < 2:
            continue
        seg = min(nperseg, len(audio))
        freqs, psd = scipy.signal.welch(audio, fs=1.0, nperseg=seg, window="hann")
        if seg != nperseg:  # put short clips on the common frequency grid
            grid = np.fft.rfftfreq(nperseg)
            psd, freqs = np.interp(grid, freqs, psd), grid
        spectra.append(psd)
    if not spectra:
        raise ValueError("average_power_spectrum: no clip of 2 samples or more")
    return freqs, np.mean(spectra, axis=0)


def shaped_noise(reference_clips: Sequence, n: int, length: int, seed=0) -> np.ndarray:
    """float64 [n, length]: Gaussian noise with the references' spectrum and RMS.

    The ceiling of a waveform table: it has the right loudness and the right
    average spectrum (so it is not trivially far from music in level or tilt)
    but no structure at all. White noise's rfft is multiplied by the square
    root of the references' average Welch power spectrum (interpolated to the
    clip's rfft bins, both in cycles per sample at the references' rate), then
    each clip is scaled to the pooled RMS of the references.
    """
    if n < 0 or length < 1:
        raise ValueError(f"need n >= 0 and length >= 1, got n={n}, length={length}")
    freqs, psd = average_power_spectrum(reference_clips)
    target_rms = rms(reference_clips)
    gain = np.sqrt(np.interp(np.fft.rfftfreq(length), freqs, psd))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((n, length))
    noise = np.fft.irfft(np.fft.rfft(white, axis=1) * gain, n=length, axis=1)
    level = np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True))
    return noise * (target_rms / np.maximum(level, 1e-12))


# ---------------------------------------------------------------------------
# Sets of clips
# ---------------------------------------------------------------------------

def _subsample(rows: np.ndarray, limit: int, seed) -> np.ndarray:
    """At most `limit` rows, a seeded random subset in original order."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))
    return rows[chosen]


def _set_seed(seed: int, name: str) -> List[int]:
    # A set's draws depend on its name, not on its place in the dict.
    return [int(seed), zlib.crc32(name.encode("utf-8"))]


def set_features(clips: Sequence, sample_rate: int) -> Dict[str, np.ndarray]:
    """Frame log-mel rows, clip rows and frame flatness of a set of clips."""
    frames, per_clip, flatness = [], [], []
    for clip in clips:
        audio = as_mono(clip)
        frames.append(log_mel_frames(audio, sample_rate))
        row = _clip_row(frames[-1])
        if row is not None:
            per_clip.append(row)
        flatness.append(spectral_flatness(audio, sample_rate))
    return {"frames": np.concatenate(frames) if frames else np.zeros((0, N_MELS)),
            "clips": np.asarray(per_clip, np.float64).reshape(len(per_clip), 2 * N_MELS),
            "flatness": np.concatenate(flatness) if flatness else np.zeros(0)}


def evaluate_sets(sets: Mapping[str, Sequence], reference_clips: Sequence,
                  sample_rate: int, seed: int = 0, max_frames: int = MAX_FRAMES,
                  kid_subset_size: int = KID_SUBSET_SIZE,
                  kid_subsets: int = EVAL_KID_SUBSETS) -> Dict[str, dict]:
    """Per set name: its distances to `reference_clips` (all at `sample_rate`).

    Keys of each result:
      clips, frames        clips and log-mel frames in the set (frames_used:
                           after the seeded cap of max_frames per set)
      fd                   Frechet distance of pooled log-mel frames (natural
                           log of mel power), the main figure
      fd_clip              Frechet distance of per-clip [mean, std] log-mel
                           (128 dims: noisy and biased upward unless both sets
                           have well over 128 clips; None with < 2 clips)
      kid, kid_std         KID (mean, std over kid_subsets subsets) of frames
                           centred on the reference's per-band mean and divided
                           by its root mean per-band variance
      flatness_w1          Wasserstein distance of log10 flatness (decades)
      flatness_median      the set's median flatness
      rms                  the set's pooled RMS level
    """
    reference = set_features(reference_clips, sample_rate)
    ref_frames = _subsample(reference["frames"], max_frames, _set_seed(seed, "reference"))
    if len(ref_frames) < 2:
        raise ValueError(f"the reference clips give {len(ref_frames)} frames of "
                         f"{N_FFT} samples; need at least 2")
    # The cubic kernel needs features of order 1, so frames are centred on the
    # reference mean and divided by ONE scale, the reference's root mean
    # variance per band. Per-band scales would blow up bands where the
    # reference is nearly constant (e.g. empty bands at the log floor) and let
    # them dominate the kernel. One map shared by all sets keeps KIDs comparable.
    centre = ref_frames.mean(axis=0)
    scale = max(float(np.sqrt(ref_frames.var(axis=0).mean())), 1e-6)
    ref_standard = (ref_frames - centre) / scale
    results = {}
    for name, clips in sets.items():
        features = set_features(clips, sample_rate)
        frames = _subsample(features["frames"], max_frames, _set_seed(seed, name))
        if len(frames) < 2:
            raise ValueError(f"{name}: {len(clips)} clips give {len(frames)} frames of "
                             f"{N_FFT} samples; need at least 2")
        kid, kid_std = kernel_inception_distance(
            (frames - centre) / scale, ref_standard, kid_subset_size, kid_subsets,
            seed=_set_seed(seed, name))
        enough_clips = len(features["clips"]) >= 2 and len(reference["clips"]) >= 2
        flat = flatness_distance(features["flatness"], reference["flatness"])
        results[name] = {
            "clips": len(clips),
            "frames": int(len(features["frames"])),
            "frames_used": int(len(frames)),
            "fd": frechet_distance(frames, ref_frames),
            "fd_clip": (frechet_distance(features["clips"], reference["clips"])
                        if enough_clips else None),
            "kid": kid,
            "kid_std": kid_std,
            "flatness_w1": flat["wasserstein_log10"],
            "flatness_median": flat["median_a"],
            "rms": rms(clips),
        }
    return results

