"""Cutting long audio at silences: into the pieces a long input reaches an engine in (so memory
does not grow with its length), and for services that take uploads up to a size.

A cut goes in the quietest stretch of the last half of each allowed span, so
it falls in a pause between words rather than inside one; the pieces are
sent separately and their transcripts shifted back into place by `stitch`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .media import SAMPLE_RATE
from .transcript import Segment, Transcript, Word

FRAME = 160  # 10 ms at 16 kHz
# The quiet stretch looked for: long enough to be a pause, short enough to exist in fast speech.
QUIET = 0.3


def split_at_silences(samples: np.ndarray, max_seconds: float, latest: bool = False) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering `samples`, none longer than `max_seconds`, cut in pauses
    (`latest`: in the last of equally quiet ones, as long a piece as may be: digital silence)."""
    return piece_bounds(lambda a, b: samples[a:b], len(samples), max_seconds, latest)


def piece_bounds(read: Callable[[int, int], np.ndarray], n: int, max_seconds: float,
                 latest: bool = False) -> list[tuple[int, int]]:
    """As split_at_silences, for `n` samples read a span at a time (`read(start, end)`): audio
    too long to hold whole is cut reading one piece's worth of it at once."""
    limit = int(max_seconds * SAMPLE_RATE)
    if limit < 2 * SAMPLE_RATE:
        raise ValueError("pieces must be allowed at least 2 seconds")
    pieces, start = [], 0
    while n - start > limit:
        cut = start + cut_in_pause(read(start, start + limit), latest)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


def cut_in_pause(samples: np.ndarray, latest: bool = False) -> int:
    """Where to end a piece that may run to the end of `samples`: the middle of the quietest
    stretch in their last half (the first of equally quiet ones, or the last: `latest`)."""
    frames = len(samples) // FRAME
    energy = np.square(samples[: frames * FRAME].reshape(frames, FRAME), dtype=np.float64).mean(axis=1)
    width = int(QUIET * SAMPLE_RATE / FRAME)
    # loudness[i]: mean energy of frames i .. i+width-1 (a sliding window, by cumulative sums).
    sums = np.concatenate([[0.0], np.cumsum(energy)])
    loudness = (sums[width:] - sums[:-width]) / width
    lo = frames // 2
    hi = max(lo + 1, min(frames - width, len(loudness)))
    span = loudness[lo:hi]
    quietest = lo + int(np.flatnonzero(span <= span.min())[-1] if latest else np.argmin(span))
    return (quietest + width // 2) * FRAME


def stitch(parts: list[tuple[float, float, Transcript]], duration: float) -> Transcript:
    """One transcript from pieces' transcripts: (offset, piece length, transcript) each.

    Times move by the piece's offset; a word the server timed past its piece's
    end is pulled back inside, so pieces never overlap and no word is counted
    twice at a join.
    """
    segments: list[Segment] = []
    for offset, length, t in parts:
        def at(x: float, offset: float = offset, length: float = length) -> float:
            return offset + min(max(0.0, x), length)

        for s in t.segments:
            words = [Word(at(w.start), at(w.end), w.text, w.probability) for w in s.words]
            segments.append(Segment(at(s.start), at(s.end), s.text, words, s.avg_logprob,
                                    s.no_speech_prob, s.compression_ratio, s.temperature))
    languages = [t.language for _, _, t in parts if t.language]
    language = max(set(languages), key=languages.count) if languages else None
    meta = dict(parts[0][2].meta) if parts else {}
    if len(parts) > 1:
        meta["pieces"] = [[round(o, 3), round(o + n, 3)] for o, n, _ in parts]
    return Transcript(language, duration, segments, meta)
