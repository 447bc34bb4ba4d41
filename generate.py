"""Generates music from trained weights (the shipped ones by default).

  python generate.py samples --n 8
  python generate.py samples --n 4 --sampler ddpm --steps 1000 --seed 7 --overwrite
  python generate.py samples --domain=wave --n 8 [--sample_rate 22050]

For the symbolic domain it writes sample_1.mid ... sample_N.mid, a WAV render
of each (General MIDI soundfont) and a piano-roll PNG of each. For the
waveform domain it writes sample_1.wav ... sample_N.wav at the model's rate
(or --sample_rate) and a spectrogram PNG of each. Existing files are never
replaced without --overwrite; with it, an earlier run's sample files that
this run does not write are removed too, so the folder holds this run's only.
"""

import json
import os
import re
import sys
import time

from absl import app, flags

flags.DEFINE_integer("n", 8, "number of pieces")
flags.DEFINE_enum("domain", None, ["midi", "wave"], "what to generate (default: the "
                  "domain of --weights, else midi)")
flags.DEFINE_string("weights", None, "weights folder (default weights/<domain>)")
# diffusion.samplers.SAMPLERS (spelled out: importing it loads TensorFlow)
SAMPLER_NAMES = ["ddpm", "ddim", "dpmpp", "dpmpp_sde"]
flags.DEFINE_enum("sampler", None, SAMPLER_NAMES,
                  "sampler (default: the one the weights were trained for)")
flags.DEFINE_enum("spacing", None, ["uniform", "logsnr", "warp"], "step grid: even in t, "
                  "in log-SNR, or in the time warp learned with --time_warping (default: "
                  "the weights' sample_spacing, else the sampler's own)")
flags.DEFINE_float("rolling", None, "midi models trained with --rolling_share: width of "
                   "the rolling noise levels, earlier notes denoised ahead of later ones; "
                   "0: every note at one level (default: the weights' sample_rolling)")
flags.DEFINE_integer("steps", None, "denoiser evaluations (default: the weights' "
                     "sample_steps; all T steps for ddpm)")
flags.DEFINE_float("temperature", None, "categorical models: divide the logits by this "
                   "when sampling (default: the weights' sample_temperature)")
flags.DEFINE_float("eta", None, "ddim and dpmpp_sde: fresh noise per step, 0 none, 1 the "
                   "DDPM posterior's (ddim) or the SDE's (dpmpp_sde); -1: the sampler's own "
                   "(default: the weights' sample_eta, else ddim 0, dpmpp_sde 1)")
flags.DEFINE_float("guidance", None, "autoguidance scale (Karras et al. 2024): the output "
                   "is guide + guidance * (model - guide); 1 turns it off (default: the "
                   "weights' guidance)")
flags.DEFINE_float("guidance_max_t", None, "autoguidance only at timesteps up to this "
                   "fraction of T (default: the weights' guidance_max_t)")
flags.DEFINE_list("guidance_groups", None, "categorical models: guide only these one-hot "
                  "groups, comma separated (onehot: 0 pitch class, 1 octave, 2 duration, "
                  "3 onset gap; default: the weights' guidance_groups, empty for all)")
flags.DEFINE_string("guide", None, "weights folder of the guide network (default: the "
                    "weights folder's guide/)")
flags.DEFINE_integer("seed", 0, "fixes the initial noise and every sampling draw")
flags.DEFINE_float("tempo", 120.0, "midi domain: tempo of the written MIDI files "
                   "(beats per minute)")
flags.DEFINE_boolean("wav", True, "also render each MIDI piece to WAV")
flags.DEFINE_integer("sample_rate", None, "waveform domain: rate of the written WAV files "
                     "(default: the model's, 7350 Hz for the shipped weights)")
flags.DEFINE_boolean("png", True, "also draw each piece's piano roll (midi) or "
                     "spectrogram (wave)")
flags.DEFINE_boolean("overwrite", False, "replace existing sample files")
flags.DEFINE_boolean("progress", True, "show a progress bar")
FLAGS = flags.FLAGS


def output_paths(folder, n, wav=True, png=True, domain="midi"):
    """{index: [paths]} of everything a run will write (the main file first)."""
    main = ".wav" if domain == "wave" else ".mid"
    extensions = [main] + ([".wav"] if wav and domain != "wave" else []) + \
        ([".png"] if png else [])
    return {index: [os.path.join(folder, f"sample_{index}{ext}") for ext in extensions]
            for index in range(1, n + 1)}


def weights_domain(weights_dir):
    """The domain named in a weights folder's params.json, or None if unreadable
    (loading the folder then reports what is wrong)."""
    try:
        with open(os.path.join(weights_dir, "params.json"), encoding="utf-8") as handle:
            return json.load(handle)["domain"]
    except (TypeError, OSError, ValueError, KeyError):
        return None


def check_flag_values():
    """One-line errors for values no run can use, before anything is loaded."""
    positive = {"n": FLAGS.n, "steps": FLAGS.steps, "tempo": FLAGS.tempo,
                "sample_rate": FLAGS.sample_rate}
    for name, value in positive.items():
        if value is not None and not value > 0:  # (nan too)
            raise ValueError(f"--{name}={value:g} must be positive")


def stale_samples(folder, paths):
    """Sample files in folder that this run does not write (an earlier run's
    pieces numbered above --n, or its WAV and PNG files when this run skips
    them): with --overwrite they would otherwise sit beside the new pieces
    without matching them, and evaluate.py would score the extra MIDI files."""
    if not os.path.isdir(folder):
        return []
    written = {os.path.basename(path) for group in paths.values() for path in group}
    ours = re.compile(r"sample_[1-9]\d*\.(mid|wav|png)")  # the names output_paths gives
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if ours.fullmatch(name) and name not in written)


def check_free(paths, overwrite):
    if overwrite:
        return
    taken = [path for group in paths.values() for path in group if os.path.exists(path)]
    if taken:
        raise FileExistsError(f"{taken[0]} already exists ({len(taken)} files would be "
                              "replaced); pass --overwrite or choose another folder")


def sample_pieces(loaded, n, sampler_name, steps, seed, progress=True):
    """Runs the sampler and decodes n note arrays (or n mono clips)."""
    from tqdm import tqdm

    from training import sampling

    bar = tqdm(total=steps, desc=f"{sampler_name} x{n}", unit="step", disable=not progress,
               dynamic_ncols=True)
    features = sampling.sample_features(
        loaded.model, loaded.params, loaded.encoding, n, sampler_name, steps, seed,
        callback=lambda *_: bar.update(1),
        time_warp=loaded.metadata.get("time_warp", {}).get("probabilities"),
        guide=loaded.guide)
    bar.close()
    return [loaded.encoding.decode(piece) for piece in features]


def set_guidance(loaded, weights_dir):
    """Applies --guidance, --guidance_max_t, --guidance_groups and --guide, and
    loads the guide network only when guidance is on.

    Weights whose params ask for guidance but that hold no guide/ sample
    without it, with a note; --guidance without a guide network is refused.
    """
    import params as params_lib
    from training import weights

    if FLAGS.guidance is not None:
        loaded.params = loaded.params.replace(guidance=FLAGS.guidance)
    if FLAGS.guidance_max_t is not None:
        loaded.params = loaded.params.replace(guidance_max_t=FLAGS.guidance_max_t)
    if FLAGS.guidance_groups is not None:
        loaded.params = loaded.params.replace(
            guidance_groups=tuple(int(group) for group in FLAGS.guidance_groups))
    params_lib.validate(loaded.params)
    note = weights.attach_guide(loaded, weights_dir, FLAGS.guide,
                                guidance_asked=FLAGS.guidance is not None)
    if note:
        print(note)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python generate.py SAVE_FOLDER [--n 8] [flags]")
    folder = argv[1]
    check_flag_values()
    domain = FLAGS.domain or weights_domain(FLAGS.weights) or "midi"
    paths = output_paths(folder, FLAGS.n, FLAGS.wav, FLAGS.png, domain)
    check_free(paths, FLAGS.overwrite)

    from training import weights

    weights_dir = FLAGS.weights or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "weights", domain)
    loaded = weights.load(weights_dir)  # (a missing folder is refused before TF loads)
    from training import sampling

    if loaded.params.domain != domain:
        raise ValueError(f"{weights_dir} holds a {loaded.params.domain} model; pass "
                         f"--domain={loaded.params.domain} or other --weights")
    if FLAGS.temperature is not None:
        loaded.params = loaded.params.replace(sample_temperature=FLAGS.temperature)
    if FLAGS.sampler is not None:  # validated with --eta below
        loaded.params = loaded.params.replace(sampler=FLAGS.sampler)
    if FLAGS.eta is not None:
        loaded.params = loaded.params.replace(sample_eta=FLAGS.eta)
    if FLAGS.spacing is not None:
        loaded.params = loaded.params.replace(sample_spacing=FLAGS.spacing)
    if FLAGS.rolling is not None:
        loaded.params = loaded.params.replace(sample_rolling=FLAGS.rolling)
    set_guidance(loaded, weights_dir)
    sampler_name = loaded.params.sampler
    steps = FLAGS.steps if FLAGS.steps is not None else sampling.default_steps(
        loaded.params, sampler_name)
    started = time.time()
    pieces = sample_pieces(loaded, FLAGS.n, sampler_name, steps, FLAGS.seed, FLAGS.progress)
    sampling_seconds = time.time() - started
    os.makedirs(folder, exist_ok=True)
    if domain == "wave":
        write_clips(paths, pieces, loaded.params)
    else:
        write_pieces(paths, pieces)
    stale = stale_samples(folder, paths) if FLAGS.overwrite else []
    for path in stale:  # only after the new pieces are written
        os.remove(path)
    if stale:
        print(f"--overwrite: removed {len(stale)} sample files of an earlier run that "
              f"this one did not write ({os.path.basename(stale[0])} ...)")
    kind = "clips" if domain == "wave" else "pieces"
    print(f"wrote {FLAGS.n} {kind} to {folder} ({sampler_name}, {steps} steps, seed "
          f"{FLAGS.seed}; sampling {sampling_seconds:.1f} s, total "
          f"{time.time() - started:.1f} s)")


def write_clips(paths, clips, params):
    import params as params_lib
    from data import audio_io, spectrogram

    rate = params_lib.model_rate(params)
    out_rate = FLAGS.sample_rate if FLAGS.sample_rate is not None else rate
    for index, clip in zip(paths, clips):
        wav_path, *others = paths[index]
        if out_rate != rate:
            import librosa
            clip = librosa.resample(clip, orig_sr=rate, target_sr=out_rate)
        audio_io.write_wav(wav_path, clip, out_rate)
        for path in others:
            spectrogram.spectrogram_png(clip, out_rate, path, title=os.path.basename(wav_path))


def write_pieces(paths, pieces):
    from data import midi_io, render

    for index, piece in zip(paths, pieces):
        midi_path, *others = paths[index]
        midi_io.write_midi(piece, midi_path, tempo_bpm=FLAGS.tempo)
        for path in others:
            if path.endswith(".wav"):
                render.render_wav(piece, path, tempo_bpm=FLAGS.tempo)
            else:
                render.piano_roll_png(piece, path, title=os.path.basename(midi_path))


if __name__ == "__main__":
    try:
        app.run(main)
    except Exception as error:  # one line for the user, whatever went wrong
        from training.weights import WeightsError

        if isinstance(error, (WeightsError, FileExistsError, ValueError)):
            sys.exit(f"error: {error}")
        raise
