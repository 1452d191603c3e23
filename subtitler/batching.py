"""Batched decoding's plan, the same for every engine: windows of speech decoded a batch at a time,
in rounds.

The speech regions (VAD's) are packed into windows of at most 30 s cut in pauses
(`vad.pack_windows`), and an engine decodes them `batch_size` at a time, each window on its own:
no window is prompted with another's text, which is what lets them go together. Whisper
sometimes stops before a window's end (subtitler.timestamps says when): what it left, from a
little before where it stopped, is packed with the other windows' rests into the windows of a
next round, until nothing is left. A word heard again in that overlap is kept once.
(subtitler.timestamps reads where a decode with timestamps stopped; `rest_after` where one
without them did.)

An engine brings one function, `decode(batch)`: the samples of some windows in, and for each
window its segments (timed from the window's start) and where Whisper stopped (None: it heard
the window to its end). Times go back onto the audio's clock here.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .media import SAMPLE_RATE
from .timestamps import MIN_REST
from .transcript import Segment, Word
from .vad import SpeechOnly, pack_windows

WINDOW = 30.0  # seconds: Whisper's input
# A rest starts this long before where Whisper stopped: its timestamps can come late, and a
# word begun before one would lose its start.
OVERLAP = 0.5
# faster-whisper's cap on the median word's length when it limits words' lengths.
LONGEST_MEDIAN_WORD = 0.7
# Rounds of rests before what is still left is given up (each round's rests are shorter).
MAX_ROUNDS = 4

Regions = list[tuple[float, float]]
Decode = Callable[[list[np.ndarray]], list[tuple[list[Segment], float | None]]]


def decode_in_rounds(audio: np.ndarray, regions: Regions, batch_size: int, decode: Decode,
                     progress: Callable[[float], None] | None = None) -> list[Segment]:
    """The segments (on the audio's clock, in order) of the speech `regions` of 16 kHz `audio`.
    `progress` is told the seconds of audio done as batches finish."""
    duration = len(audio) / SAMPLE_RATE
    total, done = seconds(regions), 0.0
    segments: list[Segment] = []
    for _ in range(MAX_ROUNDS):
        windows = [SpeechOnly.cut(audio, w) for w in pack_windows(regions, WINDOW, audio)]
        regions, earlier = [], [(w.start, w.end) for s in segments for w in s.words]
        for i in range(0, len(windows), batch_size):
            batch = windows[i:i + batch_size]
            left: Regions = []
            for window, (heard, stopped) in zip(batch, decode([w.samples for w in batch]), strict=True):
                # split: a round's windows join stretches far apart, which must come back apart.
                segments += unheard(window.restore(heard, split=True), earlier)
                if stopped is not None:
                    left += window.after(stopped, OVERLAP)
            regions += left
            done += sum(len(w.samples) for w in batch) / SAMPLE_RATE - seconds(left)
            if progress and total:
                progress(duration * min(1.0, done / total))
        if not regions:
            break
    return sorted(segments, key=lambda s: s.start)


def rest_after(segments: list[Segment], duration: float) -> tuple[list[Segment], float | None]:
    """A window decoded without timestamps: its segments as kept, and where it is decoded again
    from, if anywhere (subtitler.batching's rounds).

    Whisper stopped early when more than a moment of the window's speech is left after its last
    word. It also shows in the alignment: a word said just before speech Whisper left unsaid is
    stretched over it (seen: "he" timed 5.5-13.6 s, the rest unheard). A window is VAD's speech,
    its pauses cut out, so a word longer than twice the median word (faster-whisper's own limit)
    by more than a moment covers speech not said: it is cut to that length, the words after it
    go, and decoding goes on from its end.
    """
    words = [w for s in segments for w in s.words]
    if not words:
        return segments, None
    longest = 2 * min(LONGEST_MEDIAN_WORD, float(np.median([w.end - w.start for w in words])))
    n = next((i for i, w in enumerate(words) if w.end - w.start > longest + MIN_REST), None)
    if n is None:
        end = float(words[-1].end)
        return segments, (end if duration - end > MIN_REST else None)
    end = float(words[n].start + longest)
    kept = []
    for s in segments:
        if n >= len(s.words):  # wholly before the stretched word
            kept.append(s)
            n -= len(s.words)
            continue
        cut = [*s.words[:n], replace(s.words[n], end=end)]
        text = s.text if len(cut) == len(s.words) else "".join(w.text for w in cut)
        kept.append(replace(s, end=end, words=cut, text=text))
        break
    return kept, end


def first_window(audio: np.ndarray, regions: Regions) -> np.ndarray:
    """The samples of the first window: what the language is detected on (Whisper's first 30 s)."""
    return SpeechOnly.cut(audio, pack_windows(regions, WINDOW, audio)[0]).samples


def seconds(regions: Regions) -> float:
    return sum(b - a for a, b in regions)


def unheard(segments: list[Segment], earlier: list[tuple[float, float]]) -> list[Segment]:
    """The segments without the words an earlier round heard already: a word mostly inside an
    earlier one's time (a rest starts a little before where its window stopped)."""
    if not earlier:
        return segments
    earlier = sorted(earlier)
    starts = [a for a, _ in earlier]

    def heard(w: Word) -> bool:
        i = bisect.bisect_right(starts, w.end)
        overlap = max((min(w.end, b) - max(w.start, a) for a, b in earlier[max(0, i - 3):i]), default=0.0)
        return overlap > (w.end - w.start) / 2

    out = []
    for s in segments:
        words = [w for w in s.words if not heard(w)]
        if len(words) == len(s.words):
            out.append(s)
        elif words:
            out.append(replace(s, start=words[0].start, end=words[-1].end, words=words,
                               text="".join(w.text for w in words)))
    return out
