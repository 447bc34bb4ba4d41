"""Listening to and looking at note arrays: audio with tinysoundfont and
pretty_midi's bundled General MIDI soundfont, piano rolls with matplotlib.

Everything works offline (the soundfont ships inside pretty_midi's wheel) and
every file is written atomically.
"""

import math
import os
from typing import List, Tuple, Union

import numpy as np

from data import midi_io
from data import notes as notes_lib

DEFAULT_SAMPLE_RATE = 22050
# Release tail after the last note-off, so the final notes decay naturally.
DEFAULT_TAIL_SECONDS = 1.0
# Below 0 dBFS so that dense chords rarely need the safety limiter.
_PEAK_CEILING = 0.99

# (start seconds, end seconds, pitch, velocity, channel)
_Event = Tuple[float, float, int, int, int]


def soundfont_path() -> str:
    import pretty_midi
    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: pretty_midi's bundled soundfont is missing")
    return path


def _notes_to_events(piece: np.ndarray, tempo_bpm: float):
    """Piano on channel 0 at a fixed tempo."""
    piece = midi_io.playable_notes(piece)
    seconds_per_beat = 60.0 / tempo_bpm
    start = notes_lib.onsets(piece) * seconds_per_beat
    end = start + np.maximum(piece[:, notes_lib.DURATION], 0.0) * seconds_per_beat
    pitch = np.clip(np.round(piece[:, notes_lib.PITCH]), 0, 127).astype(int)
    velocity = np.clip(np.round(piece[:, notes_lib.VELOCITY]), 1, 127).astype(int)
    events = [(s, e, p, v, 0) for s, e, p, v in
              zip(start.tolist(), end.tolist(), pitch.tolist(), velocity.tolist()) if e > s]
    return events, {0: (0, False)}


def _midi_file_to_events(path: str):
    """Every instrument of a MIDI file, drums included, with the file's tempo map."""
    midi = midi_io.load_pretty_midi(path)
    programs = {}  # channel -> (program, is_drum)
    channel_of_program = {}
    melodic_channels = [c for c in range(16) if c != midi_io.DRUM_CHANNEL]
    events: List[_Event] = []
    for instrument in midi.instruments:
        if instrument.is_drum:
            channel = midi_io.DRUM_CHANNEL
            programs[channel] = (instrument.program, True)
        else:
            # Instruments of one program share a channel; past 15 programs
            # channels are reused (rare outside of GM demo files).
            if instrument.program not in channel_of_program:
                channel_of_program[instrument.program] = melodic_channels[
                    len(channel_of_program) % len(melodic_channels)]
            channel = channel_of_program[instrument.program]
            programs[channel] = (instrument.program, False)
        events += [(n.start, n.end, n.pitch, max(1, n.velocity), channel)
                   for n in instrument.notes if n.end > n.start]
    return events, programs


def render_audio(notes_or_midi_path: Union[np.ndarray, str, os.PathLike],
                 sample_rate: int = DEFAULT_SAMPLE_RATE, tempo_bpm: float = 120.0,
                 tail_seconds: float = DEFAULT_TAIL_SECONDS) -> np.ndarray:
    """Mono float32 audio in [-1, 1] of a note array (piano at `tempo_bpm`) or
    of a MIDI file (its own instruments and tempo). Length: last note-off
    plus `tail_seconds`."""
    import tinysoundfont
    if isinstance(notes_or_midi_path, (str, os.PathLike)):
        events, programs = _midi_file_to_events(notes_or_midi_path)
    else:
        events, programs = _notes_to_events(notes_or_midi_path, tempo_bpm)
    last_end = max((e[1] for e in events), default=0.0)
    total = int(math.ceil((last_end + tail_seconds) * sample_rate))

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    soundfont = synth.sfload(soundfont_path())
    for channel, (program, is_drum) in programs.items():
        try:
            synth.program_select(channel, soundfont, 0, program, is_drums=is_drum)
        except RuntimeError:
            # TimGM6mb lacks a few presets; the first one still makes it audible.
            synth.program_select(channel, soundfont, 0, 0, is_drums=is_drum)

    # (sample, 0 = off before 1 = on, channel, key, velocity)
    actions = []
    for start, end, pitch, velocity, channel in events:
        actions.append((int(round(start * sample_rate)), 1, channel, pitch, velocity))
        actions.append((int(round(end * sample_rate)), 0, channel, pitch, 0))
    actions.sort()

    stereo = np.zeros((total, 2), np.float32)
    position = 0

    def synthesize_until(sample):
        nonlocal position
        sample = min(sample, total)
        if sample > position:
            block = synth.generate(sample - position)
            stereo[position:sample] = np.frombuffer(block, np.float32).reshape(-1, 2)
            position = sample

    for sample, is_on, channel, key, velocity in actions:
        synthesize_until(sample)
        if is_on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    synthesize_until(total)
    mono = stereo.mean(axis=1)
    peak = float(np.max(np.abs(mono))) if len(mono) else 0.0
    if peak > _PEAK_CEILING:
        mono *= _PEAK_CEILING / peak
    return mono.astype(np.float32)


def render_wav(notes_or_midi_path, wav_path, sample_rate: int = DEFAULT_SAMPLE_RATE,
               tempo_bpm: float = 120.0, tail_seconds: float = DEFAULT_TAIL_SECONDS) -> str:
    """Renders to a mono 16-bit WAV file (atomically); returns its path."""
    import soundfile
    audio = render_audio(notes_or_midi_path, sample_rate, tempo_bpm, tail_seconds)
    with midi_io.atomic_output(wav_path, suffix=".wav") as temp_path:
        soundfile.write(temp_path, audio, sample_rate, subtype="PCM_16", format="WAV")
    return os.fspath(wav_path)


def _piano_roll_figure(piece: np.ndarray, title=None):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure without pyplot: no global state, safe in threads and servers.
    figure = Figure(figsize=(10, 4), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    piece = midi_io.playable_notes(piece)
    if len(piece):
        start = notes_lib.onsets(piece)
        velocity = np.clip(piece[:, notes_lib.VELOCITY], 1, 127) / 127.0
        cmap = matplotlib.colormaps["viridis"]
        axes.barh(piece[:, notes_lib.PITCH], np.maximum(piece[:, notes_lib.DURATION], 1e-3),
                  left=start, height=0.8, color=cmap(velocity), edgecolor="black",
                  linewidth=0.3)
        low, high = piece[:, notes_lib.PITCH].min(), piece[:, notes_lib.PITCH].max()
        axes.set_ylim(low - 2, high + 2)
        axes.set_xlim(0, max(float((start + piece[:, notes_lib.DURATION]).max()), 1.0))
    else:
        axes.text(0.5, 0.5, "no notes", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("beats")
    axes.set_ylabel("MIDI pitch")
    axes.grid(True, linewidth=0.3, alpha=0.5)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return figure, canvas


def piano_roll_image(piece: np.ndarray, title=None) -> np.ndarray:
    """The piano roll as an RGB uint8 array [height, width, 3] (TensorBoard images)."""
    _, canvas = _piano_roll_figure(piece, title)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def piano_roll_png(piece: np.ndarray, png_path, title=None) -> str:
    """Draws the piano roll (time in beats, colour = velocity) to a PNG, atomically."""
    figure, _ = _piano_roll_figure(piece, title)
    with midi_io.atomic_output(png_path, suffix=".png") as temp_path:
        figure.savefig(temp_path, format="png")
    return os.fspath(png_path)
