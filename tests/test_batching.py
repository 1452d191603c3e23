"""subtitler.batching's parts that need no engine (the engines' batched decoders are tested in
their plugins, on real speech)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import numpy as np
import pytest

from subtitler.batching import decode_pieces, rest_after, unheard
from subtitler.media import SAMPLE_RATE
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


def test_a_long_inputs_pieces_share_batches_and_keep_their_own_clocks() -> None:
    """decode_pieces: windows of consecutive pieces fill batches across the joins; each piece's
    words come back on its own clock; a window Whisper stopped in goes again (in a later batch,
    possibly beside the next piece's windows); a finished piece's samples are let go."""
    rate = SAMPLE_RATE
    # Three 100 s pieces, speech in 20 s regions with 5 s pauses: 4 regions a piece, each region
    # its own window (two would pass 30 s).
    regions = [(5.0 + 25 * k, 25.0 + 25 * k) for k in range(4)]
    alive: list[weakref.ref] = []  # each piece's samples, while anything holds them
    batches: list[list[float]] = []
    held: list[list[bool]] = []
    stopped_once: set[tuple[float, float]] = set()

    def decode(batch: list[np.ndarray]) -> list[tuple[list[Segment], float | None]]:
        batches.append([float(w[0]) for w in batch])  # which piece each window came from
        held.append([ref() is not None for ref in alive])
        out = []
        for window in batch:
            length = len(window) / rate
            key = (float(window[0]), length)
            if length == 20.0 and float(window[0]) == 2.0 and key not in stopped_once:
                stopped_once.add(key)  # Whisper stops halfway in piece 2's first window
                out.append(([Segment(0.0, 10.0, " half", [Word(0.0, 10.0, " half")])], 10.0))
            else:
                out.append(([Segment(0.0, length, " all", [Word(0.0, length, " all")])], None))
        return out

    def pulled() -> Iterator[tuple[np.ndarray, list[tuple[float, float]]]]:
        for n in range(3):
            piece = np.full(100 * rate, n + 1, np.float32)
            alive.append(weakref.ref(piece))
            yield piece, regions

    told: list[float] = []
    heard = decode_pieces(pulled(), 3, decode, told.append)
    # 12 windows and one rest (piece 2's first window, from 0.5 s before where it stopped):
    # batches of 3 across the joins, the rest last.
    assert batches == [[1, 1, 1], [1, 2, 2], [2, 2, 3], [3, 3, 3], [2]]
    # Piece 1 is let go once its last window is in; piece 2 is held for its rest.
    assert held == [[True], [True, True], [False, True, True], [False, True, True], [False, True, False]]
    assert [[(round(w.start, 3), round(w.end, 3)) for s in h for w in s.words] for h in heard] == [
        [(a, b) for a, b in regions],
        [(5.0, 15.0), (14.5, 25.0), *regions[1:]],
        [(a, b) for a, b in regions]]
    assert told == sorted(told) and told[-1] == pytest.approx(300.0)
