"""Anti-aliasing decimation: data.dsp.low_pass (TensorFlow) vs scipy.signal.resample_poly.

  python bench/resample.py [--batches 1,16] [--repeats 3]

Both keep every 3rd sample of 22,050 Hz audio (7,350 Hz out). dsp.low_pass
runs the 128-tap Hamming-windowed sinc at fc = 3675 Hz as one strided
convolution, called eagerly on a numpy batch as the wave cache's preparation
calls it; resample_poly(x, 1, 3) uses its default polyphase Kaiser filter
(61 taps, cut-off at the output's Nyquist frequency, 3675 Hz), clip by clip
along the last axis of the batch. Inputs are GTZAN-length clips (661,794
samples, 30 s) of white noise. Each method is timed after one untimed warm-up
call, the two in turns so that both see the same background load; the table
gives the median wall time per clip, the real-time speed (seconds of audio
per second of wall time) and the speed ratio TF / scipy (> 1: TF faster).

Quality, on 2 s tones (edges trimmed): the level of a 5 kHz tone after
decimation (it would alias to 2,350 Hz; 0 dB = not attenuated), the gain at
1 kHz, and the passband ripple (max - min gain over tones from 100 Hz to
3 kHz). Prints a table and writes bench/results/resample.json.
"""

import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_list("batches", ["1", "16"], "clips per call")
flags.DEFINE_integer("repeats", 3, "timed calls per method and batch (median reported)")
flags.DEFINE_integer("samples", 661794, "samples per clip (GTZAN's 30 s at 22,050 Hz)")
flags.DEFINE_integer("sample_rate", 22050, "input sample rate")
flags.DEFINE_integer("downsample", 3, "keep every n-th sample")
flags.DEFINE_float("cutoff_hz", 3675.0, "dsp.low_pass cut-off")
flags.DEFINE_integer("taps", 128, "dsp.low_pass taps")
flags.DEFINE_string("json", os.path.join("bench", "results", "resample.json"), "output")
FLAGS = flags.FLAGS

PASSBAND_HZ = (100.0, 250.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0, 2500.0, 2750.0, 3000.0)
STOPBAND_HZ = 5000.0
TONE_SECONDS = 2.0
TRIM = 200  # output samples dropped at each end (filter edges)


def methods():
    import numpy as np
    from scipy import signal

    from data import dsp

    def tensorflow_low_pass(x):
        return dsp.low_pass(x, FLAGS.cutoff_hz, FLAGS.sample_rate, npoints=FLAGS.taps,
                            downsample=FLAGS.downsample).numpy()

    def scipy_resample_poly(x):
        return np.asarray(signal.resample_poly(x, 1, FLAGS.downsample, axis=-1))

    return {"tf_low_pass": tensorflow_low_pass, "scipy_resample_poly": scipy_resample_poly}


def alternate_seconds(functions, x, repeats):
    """Median seconds of one call of each function, measured in turns."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function(x)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _level_db(output, input_rms):
    import numpy as np

    core = np.asarray(output, np.float64)[TRIM:-TRIM]
    return float(20 * np.log10(np.sqrt(np.mean(core ** 2)) / input_rms))


def tone_gain_db(function, freq):
    import numpy as np

    t = np.arange(int(TONE_SECONDS * FLAGS.sample_rate)) / FLAGS.sample_rate
    tone = np.sin(2 * np.pi * freq * t).astype(np.float32)
    return _level_db(function(tone), np.sqrt(0.5))


def quality(function):
    gains = [tone_gain_db(function, freq) for freq in PASSBAND_HZ]
    return {"gain_1khz_db": tone_gain_db(function, 1000.0),
            "ripple_db": max(gains) - min(gains),
            "passband_gains_db": dict(zip(map(str, PASSBAND_HZ), gains)),
            "level_5khz_db": tone_gain_db(function, STOPBAND_HZ)}


def main(argv):
    del argv
    import numpy as np

    functions = methods()
    clip_seconds = FLAGS.samples / FLAGS.sample_rate
    rng = np.random.default_rng(0)
    rows = []
    for batch in (int(b) for b in FLAGS.batches):
        x = (0.1 * rng.standard_normal((batch, FLAGS.samples))).astype(np.float32)
        outputs = {name: function(x) for name, function in functions.items()}  # warm-up
        lengths = {name: out.shape[-1] for name, out in outputs.items()}
        seconds = alternate_seconds(functions, x, FLAGS.repeats)
        row = {"batch": batch, "output_samples": lengths}
        for name, value in seconds.items():
            row[name] = {"call_seconds": value, "seconds_per_clip": value / batch,
                         "realtime": clip_seconds * batch / value}
        row["tf_over_scipy_speed"] = (seconds["scipy_resample_poly"] /
                                      seconds["tf_low_pass"])
        rows.append(row)
    qualities = {name: quality(function) for name, function in functions.items()}

    print(f"{FLAGS.samples:,} samples ({clip_seconds:.2f} s) at {FLAGS.sample_rate} Hz -> "
          f"every {FLAGS.downsample}; median of {FLAGS.repeats}; {os.cpu_count()} CPUs")
    print(f"{'batch':>5} {'method':20} {'ms/clip':>9} {'x realtime':>11} {'TF/scipy':>9}")
    for row in rows:
        for name in functions:
            ratio = f"{row['tf_over_scipy_speed']:9.2f}" if name == "tf_low_pass" else ""
            print(f"{row['batch']:5d} {name:20} {1000 * row[name]['seconds_per_clip']:9.1f} "
                  f"{row[name]['realtime']:11.0f} {ratio:>9}")
    print(f"\n{'method':20} {'5 kHz dB':>9} {'1 kHz dB':>9} {'ripple dB':>10}  "
          f"(ripple over {PASSBAND_HZ[0]:.0f}-{PASSBAND_HZ[-1]:.0f} Hz)")
    for name, q in qualities.items():
        print(f"{name:20} {q['level_5khz_db']:9.1f} {q['gain_1khz_db']:9.3f} "
              f"{q['ripple_db']:10.3f}")
    os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
    with open(FLAGS.json, "w", encoding="utf-8") as handle:
        json.dump({"samples": FLAGS.samples, "sample_rate": FLAGS.sample_rate,
                   "downsample": FLAGS.downsample, "cutoff_hz": FLAGS.cutoff_hz,
                   "taps": FLAGS.taps, "repeats": FLAGS.repeats,
                   "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "rows": rows, "quality": qualities},
                  handle, indent=2)
    print(f"wrote {FLAGS.json}")


if __name__ == "__main__":
    app.run(main)
