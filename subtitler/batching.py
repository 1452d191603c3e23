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
from collections import deque
from collections.abc import Callable, Iterable
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
_NOTHING = np.zeros(0, np.float32)  # not a view of the samples let go, which would keep them
Decode = Callable[[list[np.ndarray]], list[tuple[list[Segment], float | None]]]


def decode_in_rounds(audio: np.ndarray, regions: Regions, batch_size: int, decode: Decode,
                     progress: Callable[[float], None] | None = None) -> list[Segment]:
    """The segments (on the audio's clock, in order) of the speech `regions` of 16 kHz `audio`.
    `progress` is told the seconds of audio done as batches finish."""
    return decode_pieces([(audio, regions)], batch_size, decode, progress)[0]


def decode_pieces(pieces: Iterable[tuple[np.ndarray, Regions]], batch_size: int, decode: Decode,
                  progress: Callable[[float], None] | None = None) -> list[list[Segment]]:
    """decode_in_rounds for the consecutive pieces of a long input (media.Audio.pieces), each
    (its samples, its speech regions), pulled one at a time: the segments of each on its own
    clock. Batches are filled across the joins (a piece's last windows go with the next one's
    first) rather than each piece ending in a part batch; a piece's audio is let go once its
    last window is decoded, so at most about two pieces are held. `progress` is told the
    seconds done on the whole input's clock."""
    queue: deque[tuple[_Piece, SpeechOnly]] = deque()
    pulled: list[_Piece] = []

    def run(size: int) -> None:
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        results = decode([window.samples for _, window in batch])
        for (piece, window), (heard, stopped) in zip(batch, results, strict=True):
            queue.extend(piece.heard(window, heard, stopped))
        if progress:
            progress(sum(p.seconds_done for p in pulled))

    for audio, regions in pieces:
        piece = _Piece(audio, seconds(regions))
        pulled.append(piece)
        queue.extend(piece.round(regions))
        del audio  # the piece holds its samples while it needs them, not this loop
        while len(queue) >= batch_size:
            run(batch_size)
    while queue:
        run(batch_size)
    return [sorted(p.segments, key=lambda s: s.start) for p in pulled]


class _Piece:
    """One piece's decoding in rounds: what it heard, and what of it is still to decode."""

    def __init__(self, audio: np.ndarray, total: float) -> None:
        self.audio, self.total = audio, total  # total: seconds of speech to hear
        self.duration = len(audio) / SAMPLE_RATE
        self.segments: list[Segment] = []
        self.rounds = self.waiting = 0  # rounds begun; windows of this round not decoded yet
        self.rests: Regions = []  # what this round's windows left, for the next
        self.done = 0.0
        self.earlier: list[tuple[float, float]] = []  # words heard in earlier rounds

    def round(self, regions: Regions) -> list[tuple[_Piece, SpeechOnly]]:
        """The windows of a round over `regions`."""
        self.rounds += 1
        self.earlier = [(w.start, w.end) for s in self.segments for w in s.words]
        windows = [SpeechOnly.cut(self.audio, w) for w in pack_windows(regions, WINDOW, self.audio)]
        self.waiting = len(windows)
        if not windows:
            self.audio = _NOTHING
        return [(self, w) for w in windows]

    def heard(self, window: SpeechOnly, heard: list[Segment],
              stopped: float | None) -> list[tuple[_Piece, SpeechOnly]]:
        """A window's segments (from its start) and where Whisper stopped in it; the next round's
        windows once this round's last is in."""
        # split: a round's windows join stretches far apart, which must come back apart.
        self.segments += unheard(window.restore(heard, split=True), self.earlier)
        left = window.after(stopped, OVERLAP) if stopped is not None else []
        self.rests += left
        self.done += len(window.samples) / SAMPLE_RATE - seconds(left)
        self.waiting -= 1
        if self.waiting:
            return []
        rests, self.rests = self.rests, []
        if rests and self.rounds < MAX_ROUNDS:
            return self.round(rests)
        self.audio = _NOTHING  # finished: its samples are no longer needed
        return []

    @property
    def seconds_done(self) -> float:
        return self.duration * min(1.0, self.done / self.total) if self.total else self.duration


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
