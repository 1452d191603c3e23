"""From transcript to cues: what appears on screen, when.

Cue times come from word timestamps, never raw segment times (which stretch
across silences). A segment too long for one cue is split between words.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from .transcript import Segment, Transcript, Word

# Netflix's English limits: 42 characters a line, 2 lines a cue.
MAX_LINE = 42
MAX_LINES = 2


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # lines joined by "\n"


def wrap(text: str, width: int = MAX_LINE) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _chunks(words: list[Word], budget: int) -> list[list[Word]]:
    """Group words into runs of similar length, each fitting `budget` characters.

    Balanced runs read better than a full cue followed by a one-word one.
    """
    total = len("".join(w.text for w in words).strip())
    target = total / -(-total // budget) if total else budget  # total / ceil(total / budget)
    runs: list[list[Word]] = [[]]
    for w in words:
        current = len("".join(x.text for x in runs[-1]).strip())
        candidate = len("".join(x.text for x in runs[-1] + [w]).strip())
        if runs[-1] and (candidate > budget or current >= target):
            runs.append([])
        runs[-1].append(w)
    return [r for r in runs if r]


def _segment_cues(seg: Segment) -> list[Cue]:
    words = [w for w in seg.words if w.text.strip()]
    if not words:
        text = seg.text.strip()
        return [Cue(seg.start, seg.end, "\n".join(wrap(text)))] if text else []
    cues = []
    for run in _chunks(words, MAX_LINE * MAX_LINES):
        text = "".join(w.text for w in run).strip()
        lines = wrap(text)
        if len(lines) > MAX_LINES:  # wrapping lost a few characters: keep all text
            lines = lines[: MAX_LINES - 1] + [" ".join(lines[MAX_LINES - 1:])]
        cues.append(Cue(run[0].start, max(run[-1].end, run[0].start), "\n".join(lines)))
    return cues


def build_cues(transcript: Transcript) -> list[Cue]:
    """Cues in time order with no overlaps."""
    cues = [c for s in transcript.segments for c in _segment_cues(s)]
    cues.sort(key=lambda c: c.start)
    out: list[Cue] = []
    for c in cues:
        if out and c.start < out[-1].end:  # engines may overlap words at a boundary
            prev = out[-1]
            out[-1] = Cue(prev.start, max(prev.start, c.start), prev.text)
        out.append(c)
    return out
