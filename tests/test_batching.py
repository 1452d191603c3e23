"""subtitler.batching's parts that need no engine (the engines' batched decoders are tested in
their plugins, on real speech)."""

from __future__ import annotations

from subtitler.batching import unheard
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
