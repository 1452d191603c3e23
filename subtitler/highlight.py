"""Word-level timing in the subtitle files: highlighting, karaoke, WebVTT word timestamps.

Each cue carries the timed words its text is made of (cues.py). From them:

- `highlighted`: openai-whisper's `--highlight_words` for SRT and WebVTT: one cue per word
  change, the whole cue's text shown with the word being spoken underlined (`<u>`), from the
  word's start to the next word's start (the first from the cue's in-time, the last to its
  out-time), so the cues follow each other without a gap and cover the cue's whole time;
- `vtt_word_timing`: WebVTT's inline timestamps (`Hello <00:00:01.250>world`), which players
  use to colour words as they are spoken (karaoke-style "past" and "future" text);
- `karaoke`: ASS `\\k` tags, each word's duration in centiseconds, summing exactly to the
  cue's duration as ASS stores it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .cues import Cue
from .transcript import Word


def lines_of_words(cue: Cue) -> list[list[Word]]:
    """The cue's words, line by line as its text breaks them (the text is its words joined)."""
    words = list(cue.words)
    out: list[list[Word]] = []
    for line in cue.text.split("\n"):
        taken: list[Word] = []
        while words and len("".join(w.text for w in taken).strip()) < len(line.strip()):
            taken.append(words.pop(0))
        out.append(taken)
    if words:  # never for the layout's cues; keep every word all the same
        out[-1] += words
    return out


# Each word is the current one for at least this long (or its share of a shorter cue): a cue
# the layout moved off its words (the minimum duration, the gap) still shows every word.
MIN_TURN = 0.04


def word_times(cue: Cue) -> list[tuple[float, float]]:
    """When each word of the cue is the current one: from its start (the first word from the
    cue's in-time) to the next one's start (the last to the cue's out-time), within the cue,
    each for at least MIN_TURN (or an equal share of a shorter cue)."""
    n = len(cue.words)
    turn = min(MIN_TURN, (cue.end - cue.start) / n) if n else 0.0
    starts = [min(max(w.start, cue.start), cue.end) for w in cue.words]
    if starts:
        starts[0] = cue.start
    for k in range(1, n):
        starts[k] = max(starts[k], starts[k - 1] + turn)
    for k in range(n - 1, 0, -1):
        starts[k] = min(starts[k], cue.end - (n - k) * turn)
    starts = [round(s, 3) for s in starts]
    return list(zip(starts, [*starts[1:], cue.end], strict=True))


def _render(cue: Cue, word: Callable[[int, Word], str], escape: Callable[[str], str]) -> str:
    """The cue's text, word `n` of it written by `word(n, w)`, the spaces between escaped."""
    lines, n = [], 0
    for line in lines_of_words(cue):
        parts = []
        for k, w in enumerate(line):
            text = w.text.lstrip() if k == 0 else w.text
            lead = text[: len(text) - len(text.lstrip())]
            parts.append(escape(lead) + word(n, dataclasses.replace(w, text=text.lstrip())))
            n += 1
        lines.append("".join(parts))
    return "\n".join(lines)


def highlighted(cues: list[Cue], escape: Callable[[str], str] = lambda s: s) -> list[Cue]:
    """One cue per word: the cue's text with that word underlined, while it is spoken. A cue
    without word times stays as it is."""
    out: list[Cue] = []
    for cue in cues:
        if not cue.words:
            out.append(dataclasses.replace(cue, text=escape(cue.text)))
            continue
        for n, (start, end) in enumerate(word_times(cue)):
            text = _render(cue, lambda k, w, n=n: f"<u>{escape(w.text)}</u>" if k == n else escape(w.text),
                           escape)
            out.append(Cue(start, end, text, (cue.words[n],)))
    return out


def vtt_word_timing(cue: Cue, stamp: Callable[[float], str], escape: Callable[[str], str]) -> str:
    """The cue's WebVTT text with `<hh:mm:ss.ttt>` before each word after the first."""
    times = word_times(cue)
    return _render(cue, lambda k, w: (f"<{stamp(times[k][0])}>" if k else "") + escape(w.text), escape)


def karaoke(cue: Cue, escape: Callable[[str], str]) -> str:
    """The cue's ASS text with a `{\\kNN}` before each word: centiseconds from its start to the
    next's, rounded on the absolute clock so that they sum to the cue's duration in ASS."""
    bounds = [round(start * 100) for start, _ in word_times(cue)] + [round(cue.end * 100)]
    return _render(cue, lambda k, w: f"{{\\k{bounds[k + 1] - bounds[k]}}}" + escape(w.text), escape)
