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
