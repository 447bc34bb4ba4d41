"""The note-list convention shared by data, encodings, metrics and generation.

A piece is a float64 numpy array of shape [n, 4], one row per note, sorted by
onset and then by pitch (simultaneous notes keep this fixed order):

  PITCH     MIDI note number (0-127; integral for real data)
  DURATION  length of the note in beats (quarter notes)
  DELTA     onset gap from the previous note's onset in beats (0 for a chord
            note; the first note's delta is its gap from the segment start, 0)
  VELOCITY  MIDI velocity (1-127)
"""

import numpy as np

PITCH, DURATION, DELTA, VELOCITY = range(4)
NUM_COLUMNS = 4


def empty() -> np.ndarray:
    return np.zeros((0, NUM_COLUMNS), np.float64)


def onsets(notes: np.ndarray) -> np.ndarray:
    """Absolute onset of each note in beats (the first note starts at 0)."""
    if len(notes) == 0:
        return np.zeros(0)
    deltas = notes[:, DELTA].copy()
    deltas[0] = 0.0
    return np.cumsum(deltas)


def from_onsets(pitches, starts, durations, velocities) -> np.ndarray:
    """Builds a sorted note array from absolute onsets (beats)."""
    pitches = np.asarray(pitches, np.float64)
    starts = np.asarray(starts, np.float64)
    order = np.lexsort((pitches, starts))
    starts = starts[order]
    deltas = np.diff(starts, prepend=starts[:1] if len(starts) else starts)
    return np.stack([pitches[order], np.asarray(durations, np.float64)[order],
                     deltas, np.asarray(velocities, np.float64)[order]], axis=1
                    ).reshape(-1, NUM_COLUMNS)
