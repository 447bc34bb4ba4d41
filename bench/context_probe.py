"""How well MIDI weights fill in a note's pitch from the notes around it (TRAIN split).

  python bench/context_probe.py --weights weights/midi [--n 80] [--seed 0]

Takes n training segments and, in two runs, hides the pitch (the
encoding's pitch groups: pitch class and octave, or one pitch group) of
one kind of note and inpaints it with the weights' default sampler while
every other feature stays known (RePaint-style, as
the samplers' known/known_mask do): "lone" notes, the only note of an event
after a 1/4- or 1/2-beat gap (where Bach writes passing notes), and as many
"other" notes drawn at random from the rest. For each it reports how often
the pitch class and the exact pitch come back, and how often the filled-in
note lies a step (1-2 semitones) from a note of the event before, or repeats
one of its pitches, next to Bach's own shares at the same positions. The
held-out split is never read. Prints a markdown table and writes
bench/results/context_<name>.json.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

sys.path.insert(0, common.ROOT)

flags.DEFINE_string("weights", os.path.join("weights", "midi"), "MIDI weights folder")
flags.DEFINE_integer("n", 80, "training segments")
flags.DEFINE_integer("seed", 0, "picks the segments and the 'other' notes; sampler seed")
flags.DEFINE_float("guidance", None, "autoguidance scale (default: the weights' params; "
                   "1 = off)")
flags.DEFINE_string("guide", None, "weights folder of the guide network (default: the "
                    "weights folder's guide/)")
flags.DEFINE_string("name", None, "names the JSON (default: the weights folder's name)")
FLAGS = flags.FLAGS


def pitch_shares(filled, truth, positions):
    """The shares the table reports, over (segment, row) positions."""
    import numpy as np

    from data import notes as notes_lib
    from metrics import midi as midi_metrics

    before_rows = [midi_metrics.previous_event_pitches(piece) for piece in truth]
    counts = dict(pitch_class=0, pitch=0, step=0, repeat=0, bach_step=0, bach_repeat=0)
    for segment, row in positions:
        pitch = filled[segment][row, notes_lib.PITCH]
        true_pitch = truth[segment][row, notes_lib.PITCH]
        before = before_rows[segment][row]
        counts["pitch_class"] += int(pitch) % 12 == int(true_pitch) % 12
        counts["pitch"] += pitch == true_pitch
        if len(before):
            for prefix, value in (("", pitch), ("bach_", true_pitch)):
                distance = np.min(np.abs(before - value))
                counts[prefix + "step"] += distance in (1, 2)
                counts[prefix + "repeat"] += distance == 0
    return {key: value / max(len(positions), 1) for key, value in counts.items()}


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    import evaluate
    from data import corpora
    from diffusion import samplers
    from metrics import midi as midi_metrics
    from training import sampling, weights

    os.chdir(common.ROOT)
    loaded = weights.load(FLAGS.weights)
    if loaded.params.domain != "midi" or loaded.encoding.pitch_groups is None:
        raise app.UsageError(f"{FLAGS.weights}: needs MIDI weights whose encoding writes "
                             f"the absolute pitch in its own groups, such as onehot or "
                             f"onehot_pitch (domain {loaded.params.domain!r}, encoding "
                             f"{loaded.params.encoding!r})")
    if FLAGS.guidance is not None:
        loaded.params = loaded.params.replace(guidance=FLAGS.guidance)
    try:
        note = weights.attach_guide(loaded, FLAGS.weights, FLAGS.guide,
                                    guidance_asked=FLAGS.guidance is not None)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if note:
        print(note)
    params = loaded.params
    encoding = loaded.encoding
    rng = np.random.default_rng(FLAGS.seed)
    segments = [segment for segment in evaluate.reference_segments(
        evaluate.load_reference_pieces(params, corpora.TRAIN), params.seq_len)
        if len(segment) == params.seq_len]
    chosen = rng.choice(len(segments), min(FLAGS.n, len(segments)), replace=False)
    segments = [segments[index] for index in sorted(chosen)]
    codes = np.stack([encoding.encode(segment) for segment in segments])
    pitch_width = sum(encoding.categorical_groups[:encoding.pitch_groups])

    lone = [(segment, int(row)) for segment, piece in enumerate(segments)
            for row in midi_metrics.lone_note_rows(piece)]
    lone_set = set(lone)
    rest = [(segment, row) for segment in range(len(segments))
            for row in range(params.seq_len) if (segment, row) not in lone_set]
    other = [rest[index] for index in sorted(rng.choice(len(rest), len(lone), replace=False))]

    denoiser, schedule = sampling.make_denoiser(
        loaded.model, params, list(codes.shape),
        sampling.categorical_groups(params, encoding), loaded.guide)
    grid = sampling.grid_options(params, loaded.metadata.get("time_warp", {})
                                 .get("probabilities"))
    sampler = samplers.get_sampler(params.sampler)
    results = {}
    for kind, positions in (("lone", lone), ("other", other)):
        known_mask = np.ones_like(codes)
        for segment, row in positions:
            known_mask[segment, row, :pitch_width] = 0.0
        x_init = tf.random.stateless_normal(codes.shape, [FLAGS.seed, 0])
        filled = sampler(denoiser, x_init, schedule, params.sample_steps, FLAGS.seed,
                         known=codes, known_mask=known_mask, **grid).numpy()
        results[kind] = dict(notes=len(positions), **pitch_shares(
            [encoding.decode(piece) for piece in filled], segments, positions))

    print(f"{len(segments)} training segments, {params.sampler} {params.sample_steps} "
          f"steps, guidance {params.guidance:g}\n")
    print("| notes hidden | count | pitch class back | pitch back | step from event "
          "before (Bach) | repeats its pitch (Bach) |\n|---|---|---|---|---|---|")
    for kind, row in results.items():
        print(f"| {kind} | {row['notes']} | {row['pitch_class']:.3f} | {row['pitch']:.3f} | "
              f"{row['step']:.3f} ({row['bach_step']:.3f}) | {row['repeat']:.3f} "
              f"({row['bach_repeat']:.3f}) |")
    name = FLAGS.name or os.path.basename(os.path.normpath(FLAGS.weights))
    path = os.path.join("bench", "results", f"context_{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    evaluate.write_json(path, {
        "weights": FLAGS.weights, "segments": len(segments), "reference": "train split",
        "sampler": params.sampler, "steps": params.sample_steps,
        "guidance": params.guidance, "seed": FLAGS.seed, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    app.run(main)
