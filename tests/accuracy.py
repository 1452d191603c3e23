"""Scoring a transcript against the sample's reference: WER and word timing."""

from __future__ import annotations

import difflib
from functools import lru_cache

import jiwer

from subtitler.transcript import Transcript


@lru_cache(maxsize=1)
def _normalizer():
    # openai-whisper's own English normaliser: "Mr." == "mister", "ill-disposed" == "ill disposed".
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    return _normalizer()(text)


def wer(reference: dict, transcript: Transcript) -> float:
    return jiwer.wer(normalize(reference["text"]), normalize(transcript.text))


def timing_hits(reference: dict, transcript: Transcript, tolerance: float = 0.5) -> float:
    """Share of reference words whose start time the transcript matches within `tolerance`.

    Words are paired by aligning the normalised token sequences; a reference
    word with no partner counts as a miss.
    """
    ref = [(tok, w["start"]) for w in reference["words"] for tok in normalize(w["text"]).split()]
    hyp = [(tok, w.start) for w in transcript.words for tok in normalize(w.text).split()]
    matcher = difflib.SequenceMatcher(a=[t for t, _ in ref], b=[t for t, _ in hyp], autojunk=False)
    hits = 0
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            if abs(ref[block.a + k][1] - hyp[block.b + k][1]) <= tolerance:
                hits += 1
    return hits / len(ref)


def _pairs(reference: dict, words: list) -> tuple[list, dict[int, int]]:
    """Reference tokens (token, start) and, per transcript token index, its reference partner."""
    ref = [(tok, w["start"]) for w in reference["words"] for tok in normalize(w["text"]).split()]
    hyp = [tok for w in words for tok in normalize(w.text).split()]
    matcher = difflib.SequenceMatcher(a=[t for t, _ in ref], b=hyp, autojunk=False)
    pair = {b.b + k: b.a + k for b in matcher.get_matching_blocks() for k in range(b.size)}
    return ref, pair


def word_start_errors(reference: dict, transcript: Transcript) -> tuple[float, float]:
    """(share of reference words whose start the transcript matches within 100 ms, mean absolute
    start error in seconds over the paired words)."""
    hyp = [w.start for w in transcript.words for _ in normalize(w.text).split()]
    ref, pair = _pairs(reference, transcript.words)
    errors = [abs(hyp[b] - ref[a][1]) for b, a in pair.items()]
    return sum(e <= 0.1 for e in errors) / len(ref), sum(errors) / len(errors)


def cue_start_errors(reference: dict, transcript: Transcript, cues: list) -> list[float]:
    """Each cue's in-time less the reference start of its first word (inf: no partner). Cues hold
    the transcript's words in order, as many as their text has."""
    words = iter(transcript.words)
    token_cue = []
    for n, cue in enumerate(cues):
        for _ in cue.text.split():
            token_cue += [n] * len(normalize(next(words).text).split())
    ref, pair = _pairs(reference, transcript.words)
    errors = []
    for n, cue in enumerate(cues):
        first = token_cue.index(n) if n in token_cue else None
        errors.append(cue.start - ref[pair[first]][1] if first in pair else float("inf"))
    return errors
