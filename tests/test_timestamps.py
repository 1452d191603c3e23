"""Whisper's timestamp tokens split into segments, and where a batched decoder goes on (no engine)."""

from __future__ import annotations

from subtitler.timestamps import split_at_timestamps

BEGIN, EOT = 100, 50  # timestamps from 100 (0.02 s each), end of text 50; text tokens below


def t(seconds: float) -> int:
    return BEGIN + round(seconds / 0.02)


def split(tokens: list[int], duration: float = 30.0, all_speech: bool = True):  # type: ignore[no-untyped-def]
    got = split_at_timestamps(tokens, BEGIN, EOT, duration, all_speech=all_speech)
    return [(p.start, p.end, p.tokens) for p in got.parts], got.resume


def test_segments_at_timestamp_pairs_and_a_window_said_to_its_end() -> None:
    # <|0|> a b <|2|><|2|> c <|29.5|> (single timestamp ending, at the end): two segments, done.
    assert split([t(0), 1, 2, t(2), t(2), 3, t(29.5), EOT]) == ([(0.0, 2.0, [1, 2]), (2.0, 29.5, [3])], None)
    # Text running to the window's end, with no closing timestamp: the window's last sentence
    # (windows end in pauses), kept whole.
    assert split([t(0), 1, t(2), t(2), 2, 3]) == ([(0.0, 2.0, [1]), (2.0, 30.0, [2, 3])], None)
    # No timestamps at all: one segment; nothing: nothing.
    assert split([1, 2, 3, EOT], 12.5) == ([(0.0, 12.5, [1, 2, 3])], None)
    assert split([EOT]) == ([], None)


def test_a_decode_that_stops_early_goes_on_where_it_stopped() -> None:
    # A segment begun and not said (a pair at the end) with 8 s left: goes on at 22 s.
    assert split([t(0), 1, t(22), t(22), EOT]) == ([(0.0, 22.0, [1])], 22.0)
    # A single timestamp 8 s before the end of VAD speech: Whisper skipped speech; goes on too.
    assert split([t(0), 1, t(22), EOT]) == ([(0.0, 22.0, [1])], 22.0)
    # ... but without VAD, a single timestamp means nothing more is said.
    assert split([t(0), 1, t(22), EOT], all_speech=False) == ([(0.0, 22.0, [1])], None)
    # Less than a second left: done.
    assert split([t(0), 1, t(29.2), t(29.2)])[1] is None
