"""Timing refinement: word and cue times moved onto where the speech really starts and stops.

Whisper's word times (cross-attention alignment, both local engines and the remote ones) are
rough: on the sample a word starts about 0.1 s late on average, and a word after a pause is
often put in the silence before its speech (up to 0.4 s early) or well into it. Viewers see
that first in a cue's in-time. The audio itself says where speech starts: this module measures
short-time energy (25 ms frames every 10 ms, no model), finds the stretches of speech, and

1. pins each speech onset (speech after 0.1 s or more of quiet) on the word Whisper put nearest
   it (a word put mostly in silence goes to the onset after it; with no word near, the word whose
   time covers the quiet and the onset): a cue's first word then starts where its voice starts;
2. moves the other words, inside running speech, back by Whisper's lag and onto the nearest
   energy valley (the dip between syllables), never before the previous word;
3. ends the last word before each onset where its stretch of speech stops.

Then, when laying out cues (`finish_times`), a lead-in of a few frames and frame snapping:
every in- and out-time on a frame boundary of the video's frame rate, and the minimum gap kept
in whole frames (Netflix: 2).

The cost is one pass of numpy over the samples and one of Python over the words: 1 to 3 s an
hour of audio, under 0.3 % of tiny.en's time on a CPU.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .transcript import Segment, Transcript, Word

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
FRAME = HOP / SAMPLE_RATE

_RUN = 3  # frames above the threshold that make speech (shorter: a click)
_REACH = 250  # frames after a word in silence its speech may start (2.5 s)
_QUIET = 10  # frames of quiet that part two stretches of speech (100 ms): an onset follows them
# How late a model's word times are inside running speech (its alignment heads decide): measured
# on the sample and voices.mp4 against forced alignments, both engines alike (the same model, the
# same alignment); tiny.en lags, base leads. A model not measured gets none: only onsets, stops
# and energy dips near its own times move its words. These numbers were chosen on those two
# clips (tests/benchmarks/bench_timing.py).
LAGS = {"tiny": 0.12, "tiny.en": 0.12, "base": -0.05, "base.en": -0.05}
_BEFORE, _AFTER = 0.08, 0.17  # where an inner word's start is looked for, around its target
_VALLEY = 0.2  # weight of an energy valley's depth (in shares of the speech's loudness) per s
# An onset goes to a word Whisper starts up to this much before it, or this much after it.
_EARLY, _LATE = 0.45, 0.7
# Frame rate assumed for --lead-in frames when the media has no picture.
DEFAULT_FPS = 25.0


def energy(samples: np.ndarray) -> np.ndarray:
    """Short-time energy in dB of 16 kHz mono `samples`: one value per 10 ms, 25 ms windows."""
    x = np.asarray(samples, dtype=np.float32)
    n = max(1, math.ceil(len(x) / HOP))
    out = np.empty(n)
    block = 6000  # frames (a minute) at a time: an hour's audio needs no float64 copy of its own
    for first in range(0, n, block):
        count = min(block, n - first)
        chunk = np.zeros(count * HOP + WINDOW, dtype=np.float64)
        piece = x[first * HOP: first * HOP + len(chunk)]
        chunk[:len(piece)] = piece
        squares = np.concatenate([[0.0], np.cumsum(chunk * chunk)])
        starts = np.arange(count) * HOP
        power = (squares[starts + WINDOW] - squares[starts]) / WINDOW
        out[first:first + count] = 10 * np.log10(np.maximum(power, 0.0) + 1e-10)
    return out


def audio_energy(pieces: Iterable[np.ndarray]) -> np.ndarray:
    """`energy` of audio read a piece at a time (a long input never whole in memory): the same
    frames as for the whole, whatever the pieces' lengths (windows span their joins)."""
    parts, buffer = [], np.zeros(0, dtype=np.float32)
    for piece in pieces:
        buffer = np.concatenate([buffer, np.asarray(piece, dtype=np.float32)])
        count = (len(buffer) - WINDOW) // HOP + 1 if len(buffer) >= WINDOW else 0
        if count:  # the frames whose windows are whole; the rest waits for the next piece
            parts.append(energy(buffer[:(count - 1) * HOP + WINDOW])[:count])
            buffer = buffer[count * HOP:]
    if len(buffer) or not parts:
        parts.append(energy(buffer))
    return np.concatenate(parts)


def speech_stretches(db: np.ndarray) -> tuple[list[tuple[int, int]], float]:
    """Stretches of speech as (first, end) frame indices, and the speech's loudness over the
    noise floor in dB. The threshold sits a third of the way up from the noise floor (the
    quietest tenth of the frames, digital silence left out) to the speech's level."""
    if not len(db):
        return [], 1.0
    peak = float(np.percentile(db, 95))
    audible = db[db > peak - 70]
    floor = float(np.percentile(audible, 10)) if len(audible) else peak
    threshold = floor + max(10.0, 0.35 * (peak - floor))
    loud = np.concatenate([[False], db > threshold, [False]])
    edges = np.flatnonzero(loud[1:] != loud[:-1])
    out: list[tuple[int, int]] = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a < _RUN:
            continue
        if out and a - out[-1][1] < _QUIET:
            out[-1] = (out[-1][0], int(b))
        else:
            out.append((int(a), int(b)))
    return out, max(1.0, peak - floor)


def refine_words(words: Sequence[Word], db: np.ndarray, lag: float = 0.0) -> list[Word]:
    """`words` (in order, times in seconds from the start of the audio `db` measures) with their
    starts and ends moved onto the speech, as the module docstring says; texts untouched. `lag`:
    how late the engine's times are inside running speech (LAGS)."""
    n = len(db)
    if not words or not n:
        return list(words)
    stretches, loudness = speech_stretches(db)
    speech = np.zeros(n, dtype=bool)
    for a, b in stretches:
        speech[a:b] = True
    onsets = [a for a, _ in stretches]
    whisper_starts = list(itertools.accumulate((w.start for w in words), max))  # sorted, for bisect
    stops = [b * FRAME for _, b in stretches]
    pinned: dict[int, float] = {}
    # A word Whisper put mostly in silence, with no speech just before it, starts at the next onset
    # when no other word lies between (a word a voice-activity join pulled away from its speech).
    for i, w in enumerate(words):
        f0 = min(int(w.start / FRAME), n - 1)
        f1 = max(int(w.end / FRAME), f0 + 1)
        if speech[f0:f1].mean() < 0.5 and not speech[max(f0 - _QUIET, 0):f0].any():
            k = bisect.bisect_left(onsets, f0)
            following = words[i + 1].start if i + 1 < len(words) else math.inf
            if k < len(onsets) and onsets[k] <= f1 + _REACH and onsets[k] * FRAME < following:
                pinned[i] = onsets[k] * FRAME
    taken = sorted(pinned.values())
    # Every other onset goes to the word nearest it; Whisper is rather late than early, and a word
    # after a pause in Whisper's times is the likelier one.
    for j, a in enumerate(onsets):
        onset = a * FRAME
        k = bisect.bisect_left(taken, onset - 0.05)
        if k < len(taken) and taken[k] < onset + 0.05:
            continue
        best: tuple[float, int] | None = None
        for i in range(bisect.bisect_left(whisper_starts, onset - _EARLY),
                       bisect.bisect_right(whisper_starts, onset + _LATE)):
            w = words[i]
            d = w.start - onset
            if i in pinned:
                continue
            cost = d if d >= 0 else 1.5 * -d
            if i == 0 or w.start - words[i - 1].end >= 0.1:
                cost -= 0.15
            elif not -0.1 <= d - lag <= 0.15:
                continue  # inside running speech (a stop's closure, a soft consonant): only near
            if best is None or cost < best[0]:
                best = (cost, i)
        if best is None:
            # No word starts near it: the word whose time (less the lag) covers the quiet before it
            # and it starts there. Whisper's words follow each other without gaps where its text
            # has no punctuation, and a model early after pauses (base) gives the pause to the
            # word after it, which then starts in the speech before.
            i = bisect.bisect_right(whisper_starts, onset) - 1
            quiet = stretches[j - 1][1] * FRAME if j else 0.0
            covers = i >= 0 and words[i].start - lag <= quiet and words[i].end - lag > onset + 0.05
            if covers and i not in pinned:
                best = (0.0, i)
        if best is not None:
            pinned[best[1]] = onset
    starts: list[float] = []
    previous = -1.0
    for i, w in enumerate(words):
        start = pinned[i] if i in pinned else _inner_start(w.start - lag, previous, db, loudness)
        start = max(start, previous + 0.02, 0.0)
        starts.append(start)
        previous = start
    out = []
    for i, w in enumerate(words):
        following = starts[i + 1] if i + 1 < len(words) else n * FRAME
        end = w.end - lag
        if i + 1 == len(words) or i + 1 in pinned:  # speech stops before the next onset: there
            k = bisect.bisect_right(stops, following + 1e-9) - 1
            while k >= 0 and stops[k] > starts[i]:  # the last stretch ending in the word's time
                if onsets[k] * FRAME <= w.end:
                    end = stops[k]
                    break
                k -= 1
        end = min(max(end, starts[i] + 0.02), following)
        out.append(dataclasses.replace(w, start=round(starts[i], 3), end=round(end, 3)))
    return out


def _inner_start(target: float, previous: float, db: np.ndarray, loudness: float) -> float:
    """A word's start inside running speech: Whisper's less its lag (`target`), moved onto a
    nearby energy dip: of the frames near it, the one that best trades nearness for depth (how
    far below the louder of the quieter side's peak, 8 frames before and after, it lies)."""
    lo = max(int((target - _BEFORE) / FRAME), int(previous / FRAME) + 3, 0)
    hi = min(int((target + _AFTER) / FRAME), len(db) - 1)
    if hi < lo:
        return target
    # Each frame's peaks before (itself and 8 before) and after (itself and 7 after), at once.
    edge = np.full(8, -np.inf)
    near = np.concatenate([edge, db, edge])[lo:hi + 16]
    before = sliding_window_view(near[:hi - lo + 9], 9).max(axis=1)
    after = sliding_window_view(near[8:], 8)[:hi - lo + 1].max(axis=1)
    frames = np.arange(lo, hi + 1)
    depth = (np.minimum(before, after) - db[lo:hi + 1]) / loudness
    cost = np.abs(frames * FRAME - target) - _VALLEY * depth
    return float(frames[int(np.argmin(cost))] * FRAME)


def refine_transcript(transcript: Transcript, db: np.ndarray) -> Transcript:
    """The transcript with every word refined against the audio's energy `db` (on the same
    clock); each segment spans its refined words. Segments without words keep their times."""
    words = [w for s in transcript.segments for w in s.words]
    refined = iter(refine_words(words, db, LAGS.get(str(transcript.meta.get("model")), 0.0)))
    segments: list[Segment] = []
    for s in transcript.segments:
        new = [next(refined) for _ in s.words]
        segments.append(dataclasses.replace(s, words=new, start=new[0].start, end=new[-1].end) if new else s)
    out = dataclasses.replace(transcript, segments=segments)
    out.meta = {**transcript.meta, "timing": "refined"}
    return out


# -- cue times: lead-in and frames ----------------------------------------------------------------

def frames(seconds: float, fps: float) -> int:
    """Whole frames nearest `seconds` (frame k starts at k / fps)."""
    return round(seconds * fps + 1e-9)


def finish_times(times: list[tuple[float, float]], min_gap: float, max_duration: float,
                 lead_in_frames: int = 0, fps: float | None = None,
                 media_end: float | None = None) -> list[tuple[float, float]]:
    """Cue times with a lead-in (`lead_in_frames` before the speech, never into the cue before it
    nor past the maximum duration) and, with `fps`, every time on a frame boundary: in-times
    rounded to the nearest frame, out-times too, then pulled back so that at least the minimum
    gap in whole frames (`min_gap` rounded up: Netflix's 83 ms is 2 frames) parts two cues. Times are
    given to the millisecond at or just after their frame's start."""
    rate = fps or DEFAULT_FPS
    lead = lead_in_frames / rate
    out: list[tuple[float, float]] = []
    for start, end in times:
        floor = out[-1][1] + min_gap if out else 0.0
        if lead:
            start = max(min(start, max(start - lead, end - max_duration)), floor, 0.0)
        out.append((start, end))
    if fps is None:
        return [(round(a, 3), round(b, 3)) for a, b in out]
    gap = max(1, math.ceil(min_gap * fps - 1e-6)) if min_gap > 0 else 0
    last = math.floor(media_end * fps + 1e-6) if media_end is not None else None
    framed: list[list[int]] = []
    for start, end in out:
        a, b = frames(start, fps), frames(end, fps)
        if last is not None:
            b = min(b, last)
        if framed and a < framed[-1][1] + gap:
            # The cue before gives way (this one starts with its speech), down to one frame.
            framed[-1][1] = max(a - gap, framed[-1][0] + 1)
            a = max(a, framed[-1][1] + gap)
        framed.append([a, max(b, a + 1)])
    # To the millisecond above the frame's start, as SRT, WebVTT and TSV write it: still in that frame.
    return [(_ms_in(a, fps), _ms_in(b, fps)) for a, b in framed]


def _ms_in(frame: int, fps: float) -> float:
    return math.ceil(frame * 1000 / fps - 1e-6) / 1000
