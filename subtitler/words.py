"""Words as the backend contract has them: each starts with a space.

Both Whisper engines split a hyphenated word ("cold" "-hearted": "-" is one of their
prepended punctuations); a backend joins them again with `join_split_words` before it
returns its transcript.
"""

from __future__ import annotations

from dataclasses import replace

from .transcript import Segment, Word


def join_split_words(segments: list[Segment]) -> list[Segment]:
    """Words split at a hyphen made one again ("cold-hearted"), even across two segments: every
    word starts with a space, and no subtitle line breaks inside one."""
    out: list[Segment] = []
    for seg in segments:
        words: list[Word] = []
        text = seg.text
        for w in seg.words:
            if w.text[:1].isspace():
                words.append(w)
            elif words:
                words[-1] = _joined(words[-1], w)
            elif out and out[-1].words:  # the first word of this segment ends the last one's
                prev = out[-1]
                out[-1] = replace(prev, words=[*prev.words[:-1], _joined(prev.words[-1], w)],
                                  end=max(prev.end, w.end), text=prev.text + w.text)
                text = text[len(w.text):] if text.startswith(w.text) else text
            else:
                words.append(replace(w, text=" " + w.text))
        if seg.words and not words and not text.strip():
            continue  # all of it went to the segment before
        out.append(replace(seg, words=words, text=text, start=words[0].start if words else seg.start))
    return out


def _joined(a: Word, b: Word) -> Word:
    return Word(a.start, max(a.end, b.end), a.text + b.text, min(a.probability, b.probability))
