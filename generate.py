"""Generates music from trained weights (the shipped ones by default).

  python generate.py samples --n 8
  python generate.py samples --n 4 --sampler ddpm --steps 1000 --seed 7 --overwrite

For the symbolic domain it writes sample_1.mid ... sample_N.mid, a WAV render
of each (General MIDI soundfont) and a piano-roll PNG of each. Existing files
are never replaced without --overwrite.
"""

import os
import sys
import time

from absl import app, flags

flags.DEFINE_integer("n", 8, "number of pieces")
flags.DEFINE_enum("domain", "midi", ["midi"], "what to generate")
flags.DEFINE_string("weights", None, "weights folder (default weights/<domain>)")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim", "dpmpp"],
                  "sampler (default: the one the weights were trained for)")
flags.DEFINE_integer("steps", None, "denoiser evaluations (default: the weights' "
                     "sample_steps; all T steps for ddpm)")
flags.DEFINE_integer("seed", 0, "fixes the initial noise and every sampling draw")
flags.DEFINE_float("tempo", 120.0, "tempo of the written MIDI files (beats per minute)")
flags.DEFINE_boolean("wav", True, "also render each piece to WAV")
flags.DEFINE_boolean("png", True, "also draw each piece's piano roll")
flags.DEFINE_boolean("overwrite", False, "replace existing sample files")
flags.DEFINE_boolean("progress", True, "show a progress bar")
FLAGS = flags.FLAGS


def output_paths(folder, n, wav=True, png=True):
    """{index: [paths]} of everything a run will write."""
    extensions = [".mid"] + ([".wav"] if wav else []) + ([".png"] if png else [])
    return {index: [os.path.join(folder, f"sample_{index}{ext}") for ext in extensions]
            for index in range(1, n + 1)}


def check_free(paths, overwrite):
    if overwrite:
        return
    taken = [path for group in paths.values() for path in group if os.path.exists(path)]
    if taken:
        raise FileExistsError(f"{taken[0]} already exists ({len(taken)} files would be "
                              "replaced); pass --overwrite or choose another folder")


def sample_pieces(loaded, n, sampler_name, steps, seed, progress=True):
    """Runs the sampler and decodes n note arrays."""
    from tqdm import tqdm

    from training import sampling

    bar = tqdm(total=steps, desc=f"{sampler_name} x{n}", unit="step", disable=not progress,
               dynamic_ncols=True)
    features = sampling.sample_features(
        loaded.model, loaded.params, loaded.encoding, n, sampler_name, steps, seed,
        callback=lambda *_: bar.update(1))
    bar.close()
    return [loaded.encoding.decode(piece) for piece in features]


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python generate.py SAVE_FOLDER [--n 8] [flags]")
    folder = argv[1]
    paths = output_paths(folder, FLAGS.n, FLAGS.wav, FLAGS.png)
    check_free(paths, FLAGS.overwrite)

    from data import midi_io, render
    from training import sampling, weights

    weights_dir = FLAGS.weights or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "weights", FLAGS.domain)
    loaded = weights.load(weights_dir)
    sampler_name = FLAGS.sampler or loaded.params.sampler
    steps = FLAGS.steps or sampling.default_steps(loaded.params, sampler_name)
    started = time.time()
    pieces = sample_pieces(loaded, FLAGS.n, sampler_name, steps, FLAGS.seed, FLAGS.progress)
    sampling_seconds = time.time() - started
    os.makedirs(folder, exist_ok=True)
    for index, piece in zip(paths, pieces):
        midi_path, *others = paths[index]
        midi_io.write_midi(piece, midi_path, tempo_bpm=FLAGS.tempo)
        for path in others:
            if path.endswith(".wav"):
                render.render_wav(piece, path, tempo_bpm=FLAGS.tempo)
            else:
                render.piano_roll_png(piece, path, title=os.path.basename(midi_path))
    print(f"wrote {FLAGS.n} pieces to {folder} ({sampler_name}, {steps} steps, seed "
          f"{FLAGS.seed}; sampling {sampling_seconds:.1f} s, total "
          f"{time.time() - started:.1f} s)")


if __name__ == "__main__":
    try:
        app.run(main)
    except Exception as error:  # one line for the user, whatever went wrong
        from training.weights import WeightsError

        if isinstance(error, (WeightsError, FileExistsError, ValueError)):
            sys.exit(f"error: {error}")
        raise
