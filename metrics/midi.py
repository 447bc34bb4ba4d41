"""Symbolic-music metrics on note arrays (see data/notes.py for the convention).

Every function takes plain float64 [n, 4] note arrays (PITCH, DURATION, DELTA,
VELOCITY; onsets are the cumulative sum of DELTA with the first note at 0), or a
list of them ("a set"). Pure numpy/scipy/stdlib: no TensorFlow.

What is measured, and why (see /work/shared/REFERENCE.md sections 6 and 7):

* Framewise self-similarity (Mittal et al. 2021, "Symbolic Music Generation
  with Diffusion Models", ISMIR; sec. 4.2): notes quantised to 16ths, windows of
  4 bars (16 beats, 4/4 assumed) with a 2-bar hop, one Gaussian per window for
  pitch and one for duration (in 16th steps, std + 1e-6 as in the public
  re-implementations), overlapping area (OA) of adjacent windows. The mean and
  variance of OA are taken over all adjacent-window pairs pooled over the set;
  Consistency = max(0, 1 - |mu_OA - mu_GT| / mu_GT) and
  Variance = max(0, 1 - |var_OA - var_GT| / var_GT) with GT the reference set.
  These can be fooled by non-musical material, so they are never reported alone.
* Distribution distances (MusPy-style descriptors, Dong et al. 2020, compared
  as distributions, not as raw numbers): Jensen-Shannon divergence (base 2, in
  [0, 1]) between histograms pooled over each set. Note-level descriptors
  (key-invariant pitch class, interval, duration) pool the notes of all pieces;
  piece-level descriptors (pitch range, note density, polyphony) histogram the
  one value per piece.
* Diatonic fit: the best share of a piece's notes inside one major (diatonic)
  scale over the 12 transpositions (REFERENCE.md sec. 7: held-out Bach 0.93,
  random notes 0.65, chromatic 7/12).
* Chord-note fraction, share of durations on the 1/8-beat grid, notes per piece.
* Memorisation: the longest run of consecutive (pitch, duration, delta) triples
  of a piece that occurs verbatim in the training pieces (hashing of n-grams).
"""

import collections
import dataclasses
import math
import statistics
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from data import notes as notes_lib
from data.notes import DELTA, DURATION, PITCH, VELOCITY

Pieces = Union[np.ndarray, Sequence[np.ndarray]]

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])

# Krumhansl & Kessler (1982) key profiles, tonic first (as used by the
# Krumhansl-Schmuckler key-finding algorithm), scaled x100 to integers so the
# key choice is exactly equivariant under transposition.
KK_MAJOR = np.array([635, 223, 348, 233, 438, 409, 252, 519, 239, 366, 229, 288],
                    np.int64)
KK_MINOR = np.array([633, 268, 352, 538, 260, 353, 254, 475, 398, 269, 334, 317],
                    np.int64)

CHORD_TOLERANCE = 1e-6  # |delta| below this: a chord note (same onset)
GRID_PER_BEAT = 8  # the 1/8-beat grid of on_grid_share
# Tolerance in grid steps: |d*8 - round(d*8)| < 0.25, i.e. within 1/32 beat of
# the grid. Uniformly random durations score 0.50 (the "chance" figure of
# REFERENCE.md sec. 7); MIDI tick rounding (>= 24 ticks per beat) stays inside.
GRID_TOLERANCE = 0.25

# voice_step_share reads the onsets at most this many beats after the one
# before (eighths and sixteenths: passing and neighbour notes).
VOICE_GAP = 0.5

INTERVAL_CLIP = 24  # successive pitch differences clipped to +-24 semitones
RANGE_EDGES = np.arange(0.0, 68.0, 4.0)  # pitch range per piece, 4-semitone bins
DENSITY_EDGES = np.arange(0.0, 8.5, 0.5)  # notes per beat per piece
POLYPHONY_EDGES = np.arange(0.0, 8.25, 0.25)  # mean sounding notes per piece
# log2(duration in beats) in half-octave bins centred on the powers of two, so
# 1/4, 3/8, 1/2, 3/4, 1, 3/2, 2, 3, 4 ... beats land in distinct bins; values
# are clipped into [1/32, 16] beats.
DURATION_LOG2_EDGES = np.arange(-5.25, 4.26, 0.5)

COPY_RESOLUTION = 48  # durations/deltas rounded to 1/48 beat for copy detection
COPY_THRESHOLD = 32  # a copied run this long counts as a copy

HISTOGRAMS = ("pitch_class", "interval", "range", "density", "polyphony",
              "duration")


def _as_list(pieces: Pieces) -> List[np.ndarray]:
    if isinstance(pieces, np.ndarray) and pieces.ndim == 2:
        return [pieces]
    return [np.asarray(p, np.float64).reshape(-1, notes_lib.NUM_COLUMNS)
            for p in pieces]


def _pitch_ints(notes: np.ndarray) -> np.ndarray:
    return np.round(notes[:, PITCH]).astype(np.int64)


# ---------------------------------------------------------------------------
# Pitch descriptors
# ---------------------------------------------------------------------------

def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """12-bin note counts per pitch class (pitch rounded to a MIDI number)."""
    return np.bincount(_pitch_ints(notes) % 12, minlength=12).astype(np.float64)


def diatonic_fit(notes: np.ndarray) -> float:
    """Best share of notes inside one major scale over the 12 transpositions.

    REFERENCE.md sec. 7 ("diatonic fit"); the scale-consistency descriptor of
    MusPy (Dong et al. 2020). A C-major scale scores 1.0, a chromatic scale 7/12.
    NaN for an empty piece.
    """
    if len(notes) == 0:
        return float("nan")
    hist = pitch_class_histogram(notes)
    in_scale = [hist[(MAJOR_SCALE + k) % 12].sum() for k in range(12)]
    return float(max(in_scale) / hist.sum())


def estimate_key(hist: np.ndarray) -> tuple:
    """(tonic pitch class, "major"|"minor") by Krumhansl-Schmuckler key finding.

    Pearson correlation of the pitch-class histogram with the 24 rotated
    Krumhansl-Kessler profiles, computed in integer arithmetic so transposing
    the histogram transposes the answer exactly. Ties go to the lowest tonic,
    major first.
    """
    h = np.round(np.asarray(hist)).astype(np.int64)
    best, best_key = -math.inf, (0, "major")
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        # rolled[t] = profile with its tonic at pitch class t.
        rolled = np.stack([np.roll(profile, t) for t in range(12)])
        numer = 12 * (rolled @ h) - h.sum() * profile.sum()
        norm = math.sqrt(12 * int((profile ** 2).sum()) - int(profile.sum()) ** 2)
        for tonic in range(12):
            score = float(numer[tonic]) / norm
            if score > best:
                best, best_key = score, (tonic, mode)
    return best_key


def key_invariant_pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Pitch-class counts rotated so the piece's estimated tonic is bin 0.

    Transposition augmentation (REFERENCE.md sec. 7) shifts raw pitch-class
    profiles; rotating each piece to its Krumhansl-Schmuckler tonic before
    pooling makes the comparison key-invariant (major and minor pieces both
    have their tonic at 0).
    """
    hist = pitch_class_histogram(notes)
    if hist.sum() == 0:
        return hist
    tonic, _ = estimate_key(hist)
    return np.roll(hist, -tonic)


def interval_histogram(notes: np.ndarray, clip: int = INTERVAL_CLIP,
                       in_chord: Optional[bool] = None) -> np.ndarray:
    """Counts of successive pitch differences (row order), clipped to +-clip.

    Bin k holds the interval k - clip. Consecutive rows include chord notes
    (ascending within a chord) and chord-to-chord jumps, as in REFERENCE.md
    sec. 7 "interval histogram". in_chord=True counts only the differences to
    a note starting with the row before (onset gap 0), False only those across
    an onset; the two add up to the default (None: all).
    """
    if len(notes) < 2:
        return np.zeros(2 * clip + 1)
    diffs = np.clip(np.diff(_pitch_ints(notes)), -clip, clip)
    if in_chord is not None:
        diffs = diffs[(np.abs(notes[1:, DELTA]) < CHORD_TOLERANCE) == in_chord]
    return np.bincount(diffs + clip, minlength=2 * clip + 1).astype(np.float64)


def pitch_range(notes: np.ndarray) -> float:
    """Highest minus lowest pitch in semitones (MusPy pitch_range)."""
    if len(notes) == 0:
        return float("nan")
    return float(notes[:, PITCH].max() - notes[:, PITCH].min())


# ---------------------------------------------------------------------------
# Rhythm and texture descriptors
# ---------------------------------------------------------------------------

def piece_length(notes: np.ndarray) -> float:
    """Beats from the first onset to the last note-off."""
    if len(notes) == 0:
        return 0.0
    return float(np.max(notes_lib.onsets(notes) + notes[:, DURATION]))


def note_density(notes: np.ndarray) -> float:
    """Notes per beat: note count / piece_length. NaN if the piece has no length."""
    length = piece_length(notes)
    return float(len(notes) / length) if length > 0 else float("nan")


def polyphony(notes: np.ndarray) -> float:
    """Mean number of simultaneously sounding notes while anything sounds.

    MusPy's polyphony (average number of concurrently played pitches over the
    time where at least one is on), computed exactly in continuous time: the
    summed note durations divided by the length of the union of the notes'
    intervals. A 3-note chord held 1 beat scores 3.
    """
    if len(notes) == 0:
        return float("nan")
    starts = notes_lib.onsets(notes)
    ends = starts + np.maximum(notes[:, DURATION], 0.0)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.concatenate([[True], starts[1:] > reach[:-1]])
    first = np.flatnonzero(new)
    union = float(np.sum(np.maximum.reduceat(ends, first) - starts[first]))
    if union <= 0:
        return float("nan")
    return float(np.sum(ends - starts) / union)


def duration_histogram(notes: np.ndarray) -> np.ndarray:
    """Note counts per half-octave log2-duration bin (DURATION_LOG2_EDGES)."""
    edges = DURATION_LOG2_EDGES
    if len(notes) == 0:
        return np.zeros(len(edges) - 1)
    logd = np.log2(np.maximum(notes[:, DURATION], 2.0 ** -10))
    logd = np.clip(logd, edges[0] + 1e-9, edges[-1] - 1e-9)
    return np.histogram(logd, bins=edges)[0].astype(np.float64)


def chord_note_counts(notes: np.ndarray) -> tuple:
    """(chord notes, candidates): notes after the first with |delta| < 1e-6.

    The first note is left out: its delta is 0 by convention, not a chord.
    """
    if len(notes) < 2:
        return 0, 0
    deltas = notes[1:, DELTA]
    return int(np.sum(np.abs(deltas) < CHORD_TOLERANCE)), len(deltas)


def chord_fraction(pieces: Pieces) -> float:
    """Share of notes starting together with the previous note (pooled).

    REFERENCE.md sec. 4/7: about 0.65-0.67 of onset gaps in Bach chorales are 0.
    """
    chord, total = 0, 0
    for piece in _as_list(pieces):
        c, t = chord_note_counts(piece)
        chord, total = chord + c, total + t
    return chord / total if total else float("nan")


def chord_second_share(pieces: Pieces) -> float:
    """Share of chord steps (a note and the next one starting with it) that
    are 1 or 2 semitones apart, pooled.

    A second inside a chord is a cluster, rare in chorale harmony (about 1%);
    a model that picks each chord note from blurred pitch marginals writes
    many, and they are the bulk of its interval-histogram distance. Like the
    interval histogram it reads the rows in order (the corpus writes chords
    low to high, and so do the models trained on it).
    """
    seconds, steps = 0, 0
    for piece in _as_list(pieces):
        if len(piece) < 2:
            continue
        together = np.abs(piece[1:, DELTA]) < CHORD_TOLERANCE
        apart = np.abs(np.diff(_pitch_ints(piece)))[together]
        seconds, steps = seconds + int(np.sum((apart >= 1) & (apart <= 2))), steps + len(apart)
    return seconds / steps if steps else float("nan")


def step_shares_by_gap(pieces: Pieces, resolution: int = COPY_RESOLUTION) -> Dict[float, tuple]:
    """{onset gap in beats: (notes, share moving 1-2 semitones from the row
    before)}, pooled over notes after the first, gaps rounded to 1/resolution beat.

    It splits the interval histogram by rhythm: at gap 0 the share is
    chord_second_share (clusters, rare in Bach); after a short gap it is
    mostly stepwise passing motion (a lone eighth or sixteenth after the
    soprano of a chord, or a line), common in Bach.
    """
    steps, counts = collections.Counter(), collections.Counter()
    for piece in _as_list(pieces):
        if len(piece) < 2:
            continue
        gaps = np.round(piece[1:, DELTA] * resolution) / resolution
        apart = np.abs(np.diff(_pitch_ints(piece)))
        for gap, step in zip(gaps.tolist(), ((apart >= 1) & (apart <= 2)).tolist()):
            counts[gap] += 1
            steps[gap] += step
    return {gap: (counts[gap], steps[gap] / counts[gap]) for gap in sorted(counts)}


def voice_step_shares_by_gap(pieces: Pieces,
                             resolution: int = COPY_RESOLUTION) -> Dict[float, tuple]:
    """{onset gap in beats: (onsets, share where a note starting there moves
    1-2 semitones from a note ending there)}, pooled over the onsets after the
    first, gaps rounded to 1/resolution beat.

    A note that ends where another starts is, in a chorale, mostly that
    voice's previous note, so this follows the voices where the interval
    histogram reads the rows in order (after a chord, the next row's interval
    is to the chord's top note whichever voice moves). Ends and onsets match
    within 1/32 beat, on_grid_share's tolerance.
    """
    tolerance = GRID_TOLERANCE / GRID_PER_BEAT
    steps, counts = collections.Counter(), collections.Counter()
    for piece in _as_list(pieces):
        onsets = np.cumsum(piece[:, DELTA])
        ends = onsets + piece[:, DURATION]
        pitches = _pitch_ints(piece)
        # (row 0's delta is its gap from the segment start: it opens the first event)
        starts = [row for row in np.flatnonzero(np.abs(piece[:, DELTA]) >= CHORD_TOLERANCE)
                  if row > 0]
        for first, stop in zip(starts, starts[1:] + [len(piece)]):
            ending = pitches[:first][np.abs(ends[:first] - onsets[first]) < tolerance]
            moves = np.abs(pitches[first:stop, None] - ending[None, :])
            gap = round(float(piece[first, DELTA]) * resolution) / resolution
            counts[gap] += 1
            steps[gap] += bool(np.any((moves >= 1) & (moves <= 2)))
    return {gap: (counts[gap], steps[gap] / counts[gap]) for gap in sorted(counts)}


def voice_step_share(pieces: Pieces, max_gap: float = VOICE_GAP) -> float:
    """Share of the onsets at most max_gap beats after the one before where a
    note starting there moves 1-2 semitones from a note ending there (pooled).

    In held-out Bach 0.90 of these short-gap onsets step from the voice they
    continue; the 128-channel net shipped in December 2026 writes 0.60 with 20
    sampling steps and 0.63 with 100 (at half-beat to one-beat gaps it
    matches Bach, 0.80-0.86 against 0.86): the passing notes its interval
    distance lacks.
    """
    shares = voice_step_shares_by_gap(pieces)
    onsets = sum(count for gap, (count, _) in shares.items() if gap <= max_gap)
    steps = sum(count * share for gap, (count, share) in shares.items() if gap <= max_gap)
    return steps / onsets if onsets else float("nan")


def previous_event_pitches(notes: np.ndarray) -> List[np.ndarray]:
    """For each row, the pitches of the onset event before its own (an event:
    the rows starting together; empty for the first event's rows)."""
    if len(notes) == 0:
        return []
    event = np.cumsum(np.abs(notes[:, DELTA]) >= CHORD_TOLERANCE)
    event -= event[0]  # the first note's delta is its gap from the segment start
    events = np.split(notes[:, PITCH], np.flatnonzero(np.diff(event)) + 1)
    return [events[index - 1] if index else np.zeros(0) for index in event]


def lone_note_rows(notes: np.ndarray, gaps=(0.25, 0.5),
                   resolution: int = COPY_RESOLUTION) -> np.ndarray:
    """Rows that are the only note of their event and follow one of `gaps`
    (beats, rounded to 1/resolution): where Bach writes passing notes."""
    if len(notes) < 2:
        return np.zeros(0, np.int64)
    deltas = notes[:, DELTA]
    alone = np.append(np.abs(deltas[1:]) >= CHORD_TOLERANCE, True)  # the next row starts later
    lone = np.isin(np.round(deltas * resolution) / resolution, gaps) & alone
    lone[0] = False
    return np.flatnonzero(lone)


def on_grid_counts(values: np.ndarray, grid: int = GRID_PER_BEAT,
                   tolerance: float = GRID_TOLERANCE) -> int:
    """How many values (beats) lie within `tolerance` grid steps of the grid."""
    scaled = np.asarray(values, np.float64) * grid
    return int(np.sum(np.abs(scaled - np.round(scaled)) < tolerance))


def on_grid_share(pieces: Pieces, column: int = DURATION, grid: int = GRID_PER_BEAT,
                  tolerance: float = GRID_TOLERANCE) -> float:
    """Share of durations (or deltas) on the 1/grid-beat grid, pooled over notes.

    |x*grid - round(x*grid)| < tolerance (in grid steps; default 0.25, so chance
    for continuous values is 0.5, as in REFERENCE.md sec. 7).
    """
    hits, total = 0, 0
    for piece in _as_list(pieces):
        hits += on_grid_counts(piece[:, column], grid, tolerance)
        total += len(piece)
    return hits / total if total else float("nan")


# ---------------------------------------------------------------------------
# Distribution distance
# ---------------------------------------------------------------------------

def js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each bin's share of the Jensen-Shannon divergence of two histograms.

    The terms are >= 0 and sum to js_divergence (before its clamp into
    [0, 1]), so they say which bins make two sets differ. NaN if either
    histogram is empty.
    """
    p = np.asarray(p, np.float64).ravel()
    q = np.asarray(q, np.float64).ravel()
    if p.sum() <= 0 or q.sum() <= 0:
        return np.full(max(len(p), len(q)), np.nan)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl_terms(a):
        terms = np.zeros_like(a)
        mask = a > 0
        terms[mask] = a[mask] * np.log2(a[mask] / m[mask])
        return terms

    return 0.5 * kl_terms(p) + 0.5 * kl_terms(q)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms.

    Lin (1991). Inputs are counts or probabilities (normalised here). Identical
    histograms give 0, disjoint supports give 1; NaN if either is empty.
    Note: this is the divergence, not scipy's jensenshannon (its square root).
    """
    total = float(np.sum(js_terms(p, q)))
    return total if math.isnan(total) else float(min(1.0, max(0.0, total)))


def value_histogram(values: Iterable[float], edges: np.ndarray) -> np.ndarray:
    """Histogram of per-piece values, NaNs dropped, clipped into the edges."""
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if len(values) == 0:
        return np.zeros(len(edges) - 1)
    values = np.clip(values, edges[0], edges[-1] - 1e-9)
    return np.histogram(values, bins=edges)[0].astype(np.float64)


# ---------------------------------------------------------------------------
# Framewise self-similarity (Mittal et al. 2021)
# ---------------------------------------------------------------------------

def framewise_overlaps(notes: np.ndarray, window_bars: int = 4, hop_bars: int = 2,
                       beats_per_bar: int = 4, steps_per_beat: int = 4,
                       eps: float = 1e-6) -> np.ndarray:
    """OA of adjacent windows: array [pairs, 2] of (pitch OA, duration OA).

    Mittal et al. 2021 (sec. 4.2), following the public re-implementation's
    conventions: onsets and durations quantised to 16ths (duration at least one
    step, measured in steps), a note belongs to the bar of its onset, windows of
    `window_bars` bars every `hop_bars` bars over the bars the piece covers
    (ceil(last note-off / bar)), one Gaussian per window (mean, population
    std + eps) for pitch and for duration, OA via statistics.NormalDist.overlap.
    A pair with an empty window (a 4-bar rest) scores OA 0.
    """
    if len(notes) == 0:
        return np.zeros((0, 2))
    steps_per_bar = beats_per_bar * steps_per_beat
    start = np.round(notes_lib.onsets(notes) * steps_per_beat).astype(np.int64)
    dur = np.maximum(np.round(notes[:, DURATION] * steps_per_beat), 1.0)
    n_bars = int(math.ceil(float(np.max(start + dur)) / steps_per_bar))
    if n_bars < window_bars:
        return np.zeros((0, 2))
    bar = start // steps_per_bar
    frames = []
    for w in range((n_bars - window_bars) // hop_bars + 1):
        first = w * hop_bars
        inside = (bar >= first) & (bar < first + window_bars)
        if not inside.any():
            frames.append(None)
            continue
        pitch, length = notes[inside, PITCH], dur[inside]
        frames.append((statistics.NormalDist(float(pitch.mean()), float(pitch.std()) + eps),
                       statistics.NormalDist(float(length.mean()), float(length.std()) + eps)))
    pairs = []
    for a, b in zip(frames[:-1], frames[1:]):
        if a is None or b is None:
            pairs.append((0.0, 0.0))
        else:
            pairs.append((a[0].overlap(b[0]), a[1].overlap(b[1])))
    return np.asarray(pairs, np.float64).reshape(-1, 2)


def overlap_area_stats(pieces: Pieces) -> Dict[str, float]:
    """Mean and variance of OA over all adjacent-window pairs of a set.

    Pairs are pooled over pieces (every pair weighs the same). Returns
    {pitch_mean, pitch_var, duration_mean, duration_var, pairs}.
    """
    oas = [framewise_overlaps(p) for p in _as_list(pieces)]
    oas = np.concatenate(oas) if oas else np.zeros((0, 2))
    if len(oas) == 0:
        nan = float("nan")
        return dict(pitch_mean=nan, pitch_var=nan, duration_mean=nan,
                    duration_var=nan, pairs=0)
    return dict(pitch_mean=float(oas[:, 0].mean()), pitch_var=float(oas[:, 0].var()),
                duration_mean=float(oas[:, 1].mean()),
                duration_var=float(oas[:, 1].var()), pairs=int(len(oas)))


def relative_agreement(value: float, ground_truth: float) -> float:
    """max(0, 1 - |value - gt| / gt): Mittal et al.'s Consistency / Variance."""
    if not (np.isfinite(value) and np.isfinite(ground_truth)) or ground_truth == 0:
        return float("nan")
    return float(max(0.0, 1.0 - abs(value - ground_truth) / ground_truth))


def consistency_variance(stats: Dict[str, float], gt: Dict[str, float]) -> Dict[str, float]:
    """Pitch/duration Consistency and Variance of a set's OA stats against GT."""
    return {f"{feature}_{kind}": relative_agreement(stats[f"{feature}_{moment}"],
                                                    gt[f"{feature}_{moment}"])
            for feature in ("pitch", "duration")
            for kind, moment in (("consistency", "mean"), ("variance", "var"))}


# ---------------------------------------------------------------------------
# Memorisation: longest verbatim run shared with the training pieces
# ---------------------------------------------------------------------------

_U64 = np.uint64
_HASH_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_HASH_BASE_INV = pow(_HASH_BASE, -1, 1 << 64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vigna's splitmix64 finaliser (uint64 arrays wrap modulo 2**64)."""
    x = x.astype(_U64) + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def note_tokens(notes: np.ndarray, resolution: int = COPY_RESOLUTION,
                transpose: int = 0) -> np.ndarray:
    """Two uint64 tokens per note, interleaved: [gap_0, note_0, gap_1, note_1, ...].

    gap_i is the onset gap (delta) before note i in 1/48 beat; note_i is (pitch
    exact, duration in 1/48 beat). A run of L notes starting at note i is the
    2L-1 tokens from note_i: its notes and the L-1 gaps inside it, so the gap
    before its first note (0 at the start of every segment) does not count.
    """
    n = len(notes)
    pitch = np.clip(_pitch_ints(notes) + transpose + 128, 0, 1023).astype(np.int64)
    limit = (1 << 20) - 1
    dur = np.clip(np.round(notes[:, DURATION] * resolution), 0, limit).astype(np.int64)
    delta = np.clip(np.round(notes[:, DELTA] * resolution), 0, limit).astype(np.int64)
    stream = np.empty(2 * n, np.int64)
    stream[0::2] = delta | (1 << 40)  # tag bit: gaps never equal notes
    stream[1::2] = pitch | (dur << 10)
    return _splitmix64(stream.astype(_U64))


def run_hashes(tokens: np.ndarray, length: int) -> np.ndarray:
    """Hashes of every run of `length` notes of an interleaved token stream."""
    return ngram_hashes(tokens, 2 * length - 1)[1::2]


class _Powers:
    """B**j and B**-j modulo 2**64 for j < n, grown on demand."""

    def __init__(self):
        self.pow = np.ones(1, _U64)
        self.inv = np.ones(1, _U64)

    def get(self, n: int):
        if len(self.pow) < n:
            size = max(n, 2 * len(self.pow))
            self.pow = np.concatenate(
                [[_U64(1)], np.cumprod(np.full(size - 1, _HASH_BASE, _U64))])
            self.inv = np.concatenate(
                [[_U64(1)], np.cumprod(np.full(size - 1, _HASH_BASE_INV, _U64))])
        return self.pow[:n], self.inv[:n]


_POWERS = _Powers()


def ngram_hashes(tokens: np.ndarray, length: int) -> np.ndarray:
    """Position-independent polynomial hashes of all `length`-grams of tokens.

    hash(i) = sum_k tokens[i+k] * B**k (mod 2**64), computed for all i at once
    from prefix sums of tokens[j] * B**j times B**-i.
    """
    n = len(tokens)
    if length <= 0 or n < length:
        return np.zeros(0, _U64)
    power, inverse = _POWERS.get(n)
    prefix = np.concatenate([[_U64(0)], np.cumsum(tokens * power, dtype=_U64)])
    return (prefix[length:] - prefix[:-length]) * inverse[:n - length + 1]


class TrainIndex:
    """Training pieces as token streams, queried for verbatim shared runs.

    A run of L notes matches when its pitches (exact; the training pieces
    optionally under each of `transpositions`, the augmentation the model saw),
    durations and the L-1 onset gaps inside it agree, rounded to 1/48 beat. For
    a run length L the hashes of all runs inside training pieces (never across
    a piece boundary) are sorted and probed with the query's runs; the longest is
    found by binary search over L (a shared run of L implies one of L-1), all
    queries of one search level sharing one L-gram table.
    """

    def __init__(self, pieces: Pieces, transpositions: Iterable[int] = (0,),
                 resolution: int = COPY_RESOLUTION):
        self.resolution = resolution
        pieces = [p for p in _as_list(pieces) if len(p)]
        streams = [note_tokens(p, resolution, t) for t in transpositions for p in pieces]
        self.max_len = max((len(p) for p in pieces), default=0)
        self._tokens = np.concatenate(streams) if streams else np.zeros(0, _U64)
        # remaining[i]: notes from note i to the end of its own piece.
        self._remaining = (np.concatenate([np.arange(len(s) // 2, 0, -1) for s in streams])
                           if streams else np.zeros(0, np.int64))
        self._tables = collections.OrderedDict()  # length -> table, least recent first

    def table(self, length: int, cache_size: int = 8) -> np.ndarray:
        """Sorted hashes of every run of `length` notes inside one training piece."""
        if length in self._tables:
            self._tables.move_to_end(length)
            return self._tables[length]
        hashes = run_hashes(self._tokens, length)
        valid = self._remaining[:len(hashes)] >= length
        table = np.sort(hashes[valid])
        self._tables[length] = table
        while len(self._tables) > cache_size:
            self._tables.popitem(last=False)
        return table

    def longest_runs(self, pieces: Pieces) -> np.ndarray:
        """Per piece, the longest run of consecutive notes found in training."""
        tokens = [note_tokens(p, self.resolution) for p in _as_list(pieces)]
        lo = np.zeros(len(tokens), np.int64)
        hi = np.array([min(len(t) // 2, self.max_len) for t in tokens], np.int64)
        while np.any(lo < hi):
            active = np.flatnonzero(lo < hi)
            mids = (lo[active] + hi[active] + 1) // 2
            for length in np.unique(mids):
                table = self.table(int(length))
                for i in active[mids == length]:
                    query = run_hashes(tokens[i], int(length))
                    pos = np.clip(np.searchsorted(table, query), 0, max(len(table) - 1, 0))
                    found = len(table) > 0 and bool(np.any(table[pos] == query))
                    if found:
                        lo[i] = length
                    else:
                        hi[i] = length - 1
        return lo

    def longest_run(self, notes: np.ndarray) -> int:
        return int(self.longest_runs([notes])[0])


def memorisation(pieces: Pieces, index: TrainIndex,
                 threshold: int = COPY_THRESHOLD) -> Dict[str, float]:
    """{longest_copy: max run over pieces, copies: pieces with a run >= threshold}."""
    runs = index.longest_runs(pieces)
    if len(runs) == 0:
        return dict(longest_copy=float("nan"), copies=0)
    return dict(longest_copy=int(runs.max()), copies=int(np.sum(runs >= threshold)))


# ---------------------------------------------------------------------------
# Segments and baselines
# ---------------------------------------------------------------------------

def cut_segments(notes: np.ndarray, seq_len: int, hop: Optional[int] = None
                 ) -> List[np.ndarray]:
    """Consecutive windows of seq_len notes every hop notes; remainder dropped.

    Each segment's first delta is reset to 0 (the note-array convention).
    """
    hop = hop or seq_len
    segments = []
    for start in range(0, len(notes) - seq_len + 1, hop):
        segment = np.array(notes[start:start + seq_len], np.float64)
        segment[0, DELTA] = 0.0
        segments.append(segment)
    return segments


def random_notes(train_pieces: Pieces, lengths: Sequence[int], seed: int = 0,
                 transpose: int = 0) -> List[np.ndarray]:
    """The "random notes" ceiling: each column drawn independently.

    Pitch, duration, delta and velocity are each sampled (with replacement,
    independently) from the pooled training notes; with `transpose` > 0 every
    pitch is also shifted by a uniform random amount in [-transpose, transpose]
    (the transposed marginal a model trained with that augmentation sees;
    REFERENCE.md sec. 7 reports diatonic fit 0.65 for it). One piece per entry
    of `lengths`, rebuilt in the sorted note-array convention. Reproducible
    from `seed`.
    """
    pool = np.concatenate(_as_list(train_pieces))
    rng = np.random.default_rng(seed)
    pieces = []
    for n in lengths:
        draw = lambda column: pool[rng.integers(0, len(pool), n), column]
        pitch, duration, delta, velocity = (draw(c) for c in
                                            (PITCH, DURATION, DELTA, VELOCITY))
        if transpose:
            pitch = np.clip(pitch + rng.integers(-transpose, transpose + 1, n), 0, 127)
        if n:
            delta[0] = 0.0
        pieces.append(notes_lib.from_onsets(pitch, np.cumsum(delta), duration,
                                            velocity))
    return pieces


def shuffled_notes(pieces: Pieces, seed: int = 0) -> List[np.ndarray]:
    """The "shuffled" baseline: each piece's rows in a random order.

    Whole rows move, so every note keeps its own duration and delta (the
    marginals and the per-piece statistics of pitch are preserved exactly; the
    succession of notes is destroyed).
    """
    rng = np.random.default_rng(seed)
    return [p[rng.permutation(len(p))] for p in _as_list(pieces)]


# ---------------------------------------------------------------------------
# Set summaries, comparison, table
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class SetSummary:
    """Everything about a set that comparisons need (computed once per set)."""
    n: int
    notes: int
    histograms: Dict[str, np.ndarray]
    oa: Dict[str, float]
    scalars: Dict[str, float]


def summarize_set(pieces: Pieces) -> SetSummary:
    """Pooled histograms, OA statistics and scalar descriptors of a set."""
    pieces = [p for p in _as_list(pieces)]
    nonempty = [p for p in pieces if len(p)]
    hist = {
        "pitch_class": sum((key_invariant_pitch_class_histogram(p) for p in nonempty),
                           np.zeros(12)),
        "interval": sum((interval_histogram(p) for p in nonempty),
                        np.zeros(2 * INTERVAL_CLIP + 1)),
        "duration": sum((duration_histogram(p) for p in nonempty),
                        np.zeros(len(DURATION_LOG2_EDGES) - 1)),
    }
    ranges = [pitch_range(p) for p in nonempty]
    densities = [note_density(p) for p in nonempty]
    polys = [polyphony(p) for p in nonempty]
    hist["range"] = value_histogram(ranges, RANGE_EDGES)
    hist["density"] = value_histogram(densities, DENSITY_EDGES)
    hist["polyphony"] = value_histogram(polys, POLYPHONY_EDGES)

    def mean(values):
        values = [v for v in values if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    scalars = dict(
        notes_per_piece=mean([len(p) for p in pieces]),
        diatonic_fit=mean([diatonic_fit(p) for p in nonempty]),
        chord_fraction=chord_fraction(pieces),
        chord_seconds=chord_second_share(pieces),
        voice_steps=voice_step_share(pieces),
        on_grid=on_grid_share(pieces, DURATION),
        delta_on_grid=on_grid_share(pieces, DELTA),
        mean_range=mean(ranges), mean_density=mean(densities),
        mean_polyphony=mean(polys),
        mean_length_beats=mean([piece_length(p) for p in nonempty]))
    return SetSummary(n=len(pieces), notes=int(sum(len(p) for p in pieces)),
                      histograms=hist, oa=overlap_area_stats(nonempty),
                      scalars=scalars)


def compare(summary: SetSummary, reference: SetSummary) -> Dict[str, float]:
    """Metrics of a summarised set against a summarised reference (= GT)."""
    row = dict(n=summary.n, notes=summary.notes)
    row.update(consistency_variance(summary.oa, reference.oa))
    row.update({f"oa_{k}": v for k, v in summary.oa.items()})
    for name in HISTOGRAMS:
        row[f"js_{name}"] = js_divergence(summary.histograms[name],
                                          reference.histograms[name])
    row.update(summary.scalars)
    return row


def evaluate_set(pieces: Pieces, reference_pieces: Union[Pieces, SetSummary],
                 train_index: Optional[TrainIndex] = None,
                 copy_threshold: int = COPY_THRESHOLD) -> Dict[str, float]:
    """All metrics of `pieces` against a reference set (also the OA ground truth).

    `reference_pieces` may be a precomputed SetSummary. With a train_index the
    memorisation check is added (longest_copy, copies >= copy_threshold).
    """
    reference = (reference_pieces if isinstance(reference_pieces, SetSummary)
                 else summarize_set(reference_pieces))
    row = compare(summarize_set(pieces), reference)
    if train_index is not None:
        row.update(memorisation(pieces, train_index, copy_threshold))
        row["copy_threshold"] = copy_threshold
    return row


# (key, header, format) of the printed table; JSON rows hold every key.
TABLE_COLUMNS = (
    ("set", "set", "s"),
    ("n", "n", "d"),
    ("notes_per_piece", "notes", ".0f"),
    ("pitch_consistency", "P-cons", ".3f"),
    ("pitch_variance", "P-var", ".3f"),
    ("duration_consistency", "D-cons", ".3f"),
    ("duration_variance", "D-var", ".3f"),
    ("js_pitch_class", "JS-pc", ".4f"),
    ("js_interval", "JS-int", ".4f"),
    ("js_range", "JS-rng", ".4f"),
    ("js_density", "JS-dens", ".4f"),
    ("js_polyphony", "JS-poly", ".4f"),
    ("js_duration", "JS-dur", ".4f"),
    ("diatonic_fit", "diatonic", ".3f"),
    ("chord_fraction", "chord", ".3f"),
    ("chord_seconds", "2nds", ".3f"),
    ("voice_steps", "v-steps", ".3f"),
    ("on_grid", "grid", ".3f"),
    ("longest_copy", "copy", "d"),
    ("copies", "copy>=32", "d"),
)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return "-"
    if fmt == "d":
        return str(int(value))
    return format(value, fmt)


def format_table(rows: Sequence[Dict], columns=TABLE_COLUMNS) -> str:
    """Aligned text table: one line per row dict (its "set" key names it)."""
    header = [title for _, title, _ in columns]
    body = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(columns))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in body])
