"""Whisper's timestamp tokens: a decoded window's segments, and whether decoding goes on.

Whisper writes a segment as <|start|> text <|end|>; two timestamps in a row separate segments.
The batched decoders decode windows of speech packed from VAD's regions and cut in pauses
(vad.pack_windows), and split what comes back here, by one rule for where decoding goes on:

- text after the last timestamp with no closing one runs to the window's end, and the window
  ends in a pause: it is the window's last sentence, complete;
- a decode that stops on a timestamp with a second or more of the window left goes on from
  there: after a pair of timestamps (a segment begun and not said, as whisper.transcribe reads
  it), and after a single one in a window of VAD speech (Whisper sometimes stops early and
  skips speech; elsewhere a single timestamp means nothing more is said).
"""

from __future__ import annotations

from dataclasses import dataclass

TIME_PRECISION = 0.02  # seconds per timestamp token
# Less than this left after a decode's last timestamp: the window is done (no decode for it).
MIN_REST = 1.0


@dataclass(frozen=True)
class Split:
    """A decoded window's segments, and whether decoding goes on."""

    parts: list[Part]
    resume: float | None  # seconds into the window to decode again from; None: the window is done


@dataclass(frozen=True)
class Part:
    """One segment of a decoded window, in seconds from the window's start."""

    start: float
    end: float
    tokens: list[int]  # its text tokens


def split_at_timestamps(tokens: list[int], timestamp_begin: int, eot: int, duration: float, *,
                        all_speech: bool) -> Split:
    """A window's decoded tokens as segments, and whether to decode again. `duration`: the
    window's seconds of audio; `all_speech`: it is VAD's speech only."""
    tokens = [t for t in tokens if t < eot or t >= timestamp_begin]  # no end of text, no specials
    stamp = [t >= timestamp_begin for t in tokens]

    def at(token: int) -> float:
        return min((token - timestamp_begin) * TIME_PRECISION, duration)

    pairs = [i for i in range(1, len(tokens)) if stamp[i] and stamp[i - 1]]
    parts: list[Part] = []
    bounds = [0, *pairs, len(tokens)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk = tokens[a:b]
        text = [t for t in chunk if t < timestamp_begin]
        if text:
            start = at(chunk[0]) if stamp[a] else 0.0
            end = at(chunk[-1]) if stamp[b - 1] else duration
            parts.append(Part(start, max(start, end), text))
    if not tokens or not stamp[-1]:  # nothing, or text running to the window's end: done
        return Split(parts, None)
    stamps = [t for t in tokens if t >= timestamp_begin]
    last = at(stamps[-1])
    single = len(tokens) == 1 or not stamp[-2]
    if (all_speech or not single) and 0.0 < last < duration - MIN_REST:
        return Split(parts, last)
    return Split(parts, None)
