"""The cue builder: property-based tests over random word streams, plus reading rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subtitler.cues import Cue, layout
from subtitler.profiles import PROFILES, get_profile
from subtitler.transcript import Word

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PUNCT = ["", "", "", "", ",", ".", "?", "!"]


@st.composite
def word_streams(draw, max_words: int = 80) -> list[Word]:
    """Plausible speech: words of 1-14 characters, 0.08-0.9 s long, 0-2 s apart, in order."""
    n = draw(st.integers(1, max_words))
    t = draw(st.floats(0, 5))
    words = []
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.0, 0.0, 0.05, 0.2, 0.7, 2.0]))
        length = draw(st.floats(0.08, 0.9))
        text = draw(st.text(_LETTERS, min_size=1, max_size=13)) + draw(st.sampled_from(_PUNCT))
        words.append(Word(round(t, 3), round(t + length, 3), " " + text, 0.9))
        t += length
    return words


def _tokens(cues: list[Cue]) -> list[str]:
    return [tok for c in cues for tok in c.text.split()]


@settings(max_examples=200, deadline=None)
@given(words=word_streams(), name=st.sampled_from(["netflix", "bbc", "relaxed"]))
def test_layout_properties(words, name):
    profile = get_profile(name)
    cues = layout(words, profile)
    # No word lost or duplicated, order kept.
    assert _tokens(cues) == [w.text.strip() for w in words]
    starts = iter(words)
    for k, cue in enumerate(cues):
        lines = cue.text.split("\n")
        n_words = len(cue.text.split())
        first = next(starts)
        for _ in range(n_words - 1):
            last = next(starts)
        last = first if n_words == 1 else last
        # Layout: words here are at most 14 characters, so they always allow the limits.
        assert 1 <= len(lines) <= profile.max_lines
        assert all(len(line) <= profile.max_line_chars for line in lines)
        # Timing: with the speech, never overlapping, the gap kept, durations within the limits.
        # Starts with its first word, or up to 3 frames (125 ms) early when reading speed needs the
        # time (Netflix's sync tolerance); later only when the cue before it needed its minimum duration.
        assert first.start - 0.125 - 1e-3 <= cue.start
        prev = cues[k - 1] if k else None
        if cue.start > first.start + 0.125 + 1e-3:
            assert prev is not None and prev.end - prev.start <= profile.min_duration + 2e-3
            assert cue.start - prev.end <= profile.min_gap + 2e-3
        assert cue.end > cue.start
        nxt = cues[k + 1] if k + 1 < len(cues) else None
        if nxt:
            assert nxt.start - cue.end >= profile.min_gap - 1e-3
        blocked = nxt is not None and cue.end >= nxt.start - profile.min_gap - 1e-3
        # Never on screen after the speech except as long as minimum duration or reading speed need.
        chars = len(cue.text.replace("\n", " "))
        assert cue.end <= max(last.end, cue.start + profile.min_duration,
                              cue.start + chars / profile.max_cps) + 2e-3
        duration = cue.end - cue.start
        at_max = duration >= profile.max_duration - 1e-3
        # Ends after its last word unless the next cue's gap or the maximum duration forces it earlier.
        assert cue.end >= last.end - 1e-3 or blocked or at_max
        assert profile.min_duration - 1e-3 <= duration <= profile.max_duration + 1e-3
        # Reading speed: met unless the next cue or the maximum duration leaves no more time.
        assert chars / duration <= profile.max_cps + 0.05 or blocked or at_max


def test_long_sentence_is_split_into_balanced_cues():
    text = ("And Mr. John Dashwood had then leisure to consider how much there might be "
            "prudently in his power to do for them.")
    words = [Word(i * 0.3, i * 0.3 + 0.25, " " + t) for i, t in enumerate(text.split())]
    cues = layout(words, PROFILES["netflix"])
    assert len(cues) == 2
    assert " ".join(c.text.replace("\n", " ") for c in cues) == text
    # Never between a first and last name, nor after an article or preposition.
    for c in cues:
        for line in c.text.split("\n"):
            assert not line.endswith(("John", "Mr.", " the", " a", " to", " in"))


@pytest.mark.parametrize("before,after,ok", [
    ("the", "house", False), ("John", "Dashwood", False), ("said,", "and", True),
])
def test_line_breaks_follow_reading_rules(before, after, ok):
    # About 30 + 35 characters: the line can break before, at or after the pair.
    left = ("word " * 5).strip() + " " + before
    right = after + " " + ("text " * 6).strip()
    words = [Word(i * 0.3, i * 0.3 + 0.25, " " + t) for i, t in enumerate((left + " " + right).split())]
    lines = layout(words, PROFILES["netflix"])[0].text.split("\n")
    assert (lines[0].endswith(before)) == ok


def test_cjk_profile_measures_characters():
    text = "我们今天去公园散步然后回家吃饭好吗。"
    words = [Word(i * 0.25, i * 0.25 + 0.2, ch) for i, ch in enumerate(text)]
    cues = layout(words, PROFILES["cjk"])
    assert all(len(line) <= 16 for c in cues for line in c.text.split("\n"))
    assert "".join(c.text.replace("\n", "") for c in cues) == text


def test_abbreviation_does_not_end_a_sentence():
    words = [Word(0, 0.3, " Hello"), Word(0.3, 0.5, " Mr."), Word(0.5, 0.9, " Smith.")]
    assert [c.text for c in layout(words, PROFILES["netflix"])] == ["Hello Mr. Smith."]
