"""Reading and writing audio files: mono float32 at a requested sample rate.

16-bit PCM WAV (GTZAN's format) goes through TensorFlow's own decoder; other
WAV flavours, FLAC, OGG and Sun/NeXT .au (the original GTZAN tarball) through
soundfile (libsndfile); MP3 through soundfile where its libsndfile supports it.
Resampling uses librosa (soxr). tensorflow-io is not used: its last release
fails with every TensorFlow from 2.18 on.
"""

import os

import numpy as np

from data.midi_io import atomic_output

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".au", ".snd", ".aiff", ".aif", ".mp3")


class AudioReadError(Exception):
    """A file that cannot be decoded; `reason` is one line for the summary."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def _is_pcm16_wav(path) -> bool:
    with open(path, "rb") as handle:
        header = handle.read(36)
    return (len(header) == 36 and header[:4] == b"RIFF" and header[8:12] == b"WAVE"
            and int.from_bytes(header[20:22], "little") == 1  # PCM
            and int.from_bytes(header[34:36], "little") == 16)


def _decode_tf_wav(path):
    import tensorflow as tf
    contents = tf.io.read_file(os.fspath(path))
    audio, rate = tf.audio.decode_wav(contents)
    return audio.numpy(), int(rate.numpy())


def _decode_soundfile(path):
    import soundfile
    if soundfile.info(os.fspath(path)).format == "RAW":
        # libsndfile reads a headerless .au/.snd as raw 8 kHz u-law, so any bytes
        # would "decode"; a file without a header is not audio we can trust.
        raise ValueError("no audio header")
    audio, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    return audio, int(rate)


def read_audio(path, sample_rate: int = 22050) -> np.ndarray:
    """Mono float32 samples of `path` at `sample_rate`; raises AudioReadError."""
    if not os.path.isfile(path):
        raise AudioReadError(path, "no such file")
    try:
        if _is_pcm16_wav(path):
            audio, rate = _decode_tf_wav(path)
        else:
            audio, rate = _decode_soundfile(path)
    except Exception as error:  # decoders raise many types; all mean "unreadable"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else \
            type(error).__name__
        raise AudioReadError(path, f"not a readable audio file ({reason})") from None
    if audio.size == 0:
        raise AudioReadError(path, "no audio samples")
    mono = audio.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioReadError(path, "non-finite samples")
    if rate != sample_rate:
        import librosa
        try:
            mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
        except Exception as error:  # e.g. a clip too short for the resampler's filter
            raise AudioReadError(path, f"cannot resample {rate} -> {sample_rate} Hz "
                                       f"({str(error).splitlines()[0]})") from None
        mono = mono.astype(np.float32)
    return mono


def write_wav(path, audio, sample_rate: int) -> str:
    """Writes mono 16-bit PCM WAV atomically (samples clipped to [-1, 1])."""
    import soundfile
    audio = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
    with atomic_output(path, suffix=".wav") as temp_path:
        soundfile.write(temp_path, audio, int(sample_rate), subtype="PCM_16", format="WAV")
    return os.fspath(path)
