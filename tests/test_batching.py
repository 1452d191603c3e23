"""subtitler.batching's parts that need no engine (the engines' batched decoders are tested in
their plugins, on real speech)."""

from __future__ import annotations

import pytest

from subtitler.batching import rest_after, unheard
from subtitler.transcript import Segment, Word


def test_a_word_heard_again_by_a_rest_is_kept_once() -> None:
    """A rest starts half a second before where its window stopped: the word it heard again is
    dropped (mostly inside one heard before), the next one kept."""
    before = [(10.0, 10.4), (10.5, 11.0)]
    rest = Segment(10.6, 12.0, " be ill-disposed",
                   [Word(10.6, 11.0, " be"), Word(11.1, 12.0, " ill-disposed")])
    fresh = Segment(20.0, 21.0, " he was", [Word(20.0, 20.4, " he"), Word(20.5, 21.0, " was")])
    kept = unheard([rest, fresh], before)
    assert [s.text for s in kept] == [" ill-disposed", " he was"]
    assert kept[0].start == 11.1 and kept[0].words == [rest.words[1]] and kept[1] is fresh
    assert unheard([rest], []) == [rest]


def words_from(start: float, *texts: str, step: float = 0.3) -> list[Word]:
    return [Word(start + i * step, start + (i + 1) * step, " " + t) for i, t in enumerate(texts)]


def test_speech_left_after_the_last_word_is_decoded_again() -> None:
    words = words_from(0.0, "He", "was", "not", "an", "ill-disposed", "young", "man.")  # to 2.1 s
    segments = [Segment(0.0, 2.1, "".join(w.text for w in words), words)]
    assert rest_after(segments, 2.5) == (segments, None)  # a moment left: the window is done
    kept, stop = rest_after(segments, 9.0)
    assert kept == segments and stop == 2.1


def test_a_word_stretched_over_unsaid_speech_is_cut_and_what_follows_is_decoded_again() -> None:
    """As seen with tiny.en: "he" aligned over 8 s of speech Whisper did not say."""
    first = words_from(0.0, "Had", "he")
    first[-1].end = 8.3
    after = Segment(8.3, 8.9, " married", [Word(8.3, 8.9, " married")])
    segments = [Segment(0.0, 8.3, " Had he", first), after]
    kept, stop = rest_after(segments, 14.0)
    # Cut to twice the median word (0.6 s: "married"), from its start at 0.3 s.
    assert stop == pytest.approx(1.5) and [s.text for s in kept] == [" Had he"]
    assert kept[0].end == kept[0].words[-1].end == stop
