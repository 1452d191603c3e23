"""Guards against Whisper's repetition loops, applied to a finished Transcript.

A decoder stuck in a loop writes the same phrase over and over ("Thank you.
Thank you. Thank you. ...") or the same segment again and again; the
confidence filters catch most loops, not all. Both forms are collapsed to
their first occurrence, keeping that occurrence's own word times (a sentence
said twice is left alone: people repeat themselves). A loop squeezed into a
moment of silence (seen at the end of audio cut into pieces) is dropped whole:
no one speaks 40 characters a second.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .transcript import Segment, Transcript

# Longest phrase, in words, looked for as a repeating unit: loops are often a
# whole sentence ("I'm going to take a look at how" is 8).
MAX_NGRAM = 16
# A phrase must occur this many times in a row to count as a loop...
MIN_REPEATS = 3
# ...and the run must be this many words long, so that speech such as
# "no, no, no" or "very, very, very" survives while "the the the the the the" does not.
MIN_RUN_WORDS = 6

# Faster than anyone speaks (fast speech is about 20 characters a second): text invented
# into a sliver of time. Short segments are spared: a word's times may be squeezed.
MAX_CPS = 40.0
MIN_IMPOSSIBLE_CHARS = 20

_NOT_WORD = re.compile(r"[^\w']+")


def _norm(text: str) -> str:
    """Case, punctuation and spacing ignored: "Thank you." == " thank you"."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _loop_at(keys: list[str], i: int) -> tuple[int, int]:
    """(n, count) of the longest-running phrase repeated from `i`; (0, 0) if none qualifies."""
    best_n, best_count, best_span = 0, 0, 0
    for n in range(1, MAX_NGRAM + 1):
        unit = keys[i:i + n]
        if len(unit) < n:
            break
        count = 1
        while keys[i + count * n:i + (count + 1) * n] == unit:
            count += 1
        span = n * count
        # Among qualifying loops take the one covering most words; ties go to the shorter unit.
        if count >= MIN_REPEATS and span >= MIN_RUN_WORDS and span > best_span:
            best_n, best_count, best_span = n, count, span
    return best_n, best_count


def _collapse(keys: list[str]) -> list[int]:
    """Indices of the tokens to keep: each loop reduced to its first occurrence."""
    keep: list[int] = []
    i = 0
    while i < len(keys):
        n, count = _loop_at(keys, i)
        if n:
            keep.extend(range(i, i + n))
            end = i + n * count
            # A loop usually stops mid-phrase (the window ran out): that stub goes too.
            stub = 0
            while stub < n - 1 and end + stub < len(keys) and keys[end + stub] == keys[i + stub]:
                stub += 1
            i = end + stub
        else:
            keep.append(i)
            i += 1
    return keep


def _collapse_segment(segment: Segment) -> tuple[Segment, int]:
    """The segment without repeated phrases, and how many words went."""
    if segment.words:
        keep = _collapse([_norm(w.text) for w in segment.words])
        removed = len(segment.words) - len(keep)
        if not removed:
            return segment, 0
        words = [replace(segment.words[k]) for k in keep]
        # The loop's time goes too: the segment now ends with its last kept word.
        return replace(segment, end=words[-1].end, text="".join(w.text for w in words),
                       words=words), removed
    # No word times (an engine without them): collapse the text alone.
    tokens = segment.text.split()
    keep = _collapse([_norm(t) for t in tokens])
    removed = len(tokens) - len(keep)
    if not removed:
        return segment, 0
    return replace(segment, text=" " + " ".join(tokens[k] for k in keep)), removed


def _impossible(segment: Segment) -> bool:
    chars = len(segment.text.strip())
    return chars >= MIN_IMPOSSIBLE_CHARS and chars > MAX_CPS * max(0.0, segment.end - segment.start)


def _copy(segment: Segment) -> Segment:
    return replace(segment, words=[replace(w) for w in segment.words])


def collapse_repetitions(transcript: Transcript) -> Transcript:
    """A new Transcript with repetition loops removed; the input is left as it was.

    Inside a segment, a phrase of 1-16 words repeated 3 or more times in a row
    (6 or more words in all) keeps only its first occurrence, and the
    unfinished repeat a loop often ends with is dropped too. Then segments
    with the same text (case and punctuation ignored) 3 or more times in a
    row, after a segment that was a loop, or twice with a longer silence
    between than the first takes, keep only the first; and a
    segment of 20 or more characters said faster than 40 a second goes.
    Unchanged transcripts come back equal to the input.
    """
    kept: list[tuple[Segment, str, bool]] = []  # (segment, its key, whether a loop was collapsed in it)
    words_removed = segments_removed = 0
    for segment in transcript.segments:
        cleaned, removed = _collapse_segment(segment)
        words_removed += removed
        if _impossible(cleaned):
            segments_removed += 1
            words_removed += len(cleaned.words) or len(cleaned.text.split())
            continue
        kept.append((cleaned, _norm(cleaned.text), removed > 0))
    segments: list[Segment] = []
    i = 0
    while i < len(kept):
        segment, key, looped = kept[i]
        run = 1
        while key and i + run < len(kept) and kept[i + run][1] == key:
            run += 1
        # A sentence said twice is speech (a speaker's repeat, a refrain). A loop repeats it more,
        # repeats a segment that was a loop itself, or says it again out of a stretch where
        # nothing was heard for longer than it takes (Whisper's each window on noise): it keeps
        # its first occurrence.
        loop = run >= MIN_REPEATS or looped or (
            run == 2 and kept[i + 1][0].start - segment.end > segment.end - segment.start)
        copies = 1 if loop else run
        segments += [_copy(s) for s, _, _ in kept[i:i + copies]]
        segments_removed += run - copies
        i += run
    meta = dict(transcript.meta)
    if words_removed or segments_removed:
        # Recorded so the caller can warn and a saved transcript shows what was done.
        meta["repetitions_removed"] = {"segments": segments_removed, "words": words_removed}
    return Transcript(transcript.language, transcript.duration, segments, meta)

