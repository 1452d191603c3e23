"""Repetition loops are collapsed; normal transcripts pass through untouched."""

from __future__ import annotations

import copy

import pytest

from subtitler.cleanup import collapse_repetitions
from subtitler.events import Report
from subtitler.options import DecodeOptions
from subtitler.transcript import Segment, Transcript, Word


def segment(start: float, text: str, step: float = 0.4) -> Segment:
    """A segment whose words are `text`'s words, one every `step` seconds."""
    words = [Word(round(start + i * step, 3), round(start + (i + 1) * step, 3), " " + w)
             for i, w in enumerate(text.split())]
    return Segment(start, words[-1].end, "".join(w.text for w in words), words, -0.3, 0.1, 1.5, 0.0)


def transcript(*segments: Segment) -> Transcript:
    return Transcript("en", 60.0, list(segments), {"backend": "test"})


def test_looping_phrase_keeps_its_first_occurrence_with_its_times() -> None:
    t = transcript(segment(1.0, "Well, thank you. Thank you. Thank you. Thank you. Thank you. Goodbye."))
    out = collapse_repetitions(t)
    (s,) = out.segments
    assert s.text == " Well, thank you. Goodbye."
    assert [(w.start, w.end, w.text) for w in s.words] == [
        (1.0, 1.4, " Well,"), (1.4, 1.8, " thank"), (1.8, 2.2, " you."), (5.4, 5.8, " Goodbye."),
    ]
    assert (s.start, s.end) == (1.0, 5.8)
    assert out.meta["repetitions_removed"] == {"segments": 0, "words": 8}


def test_real_loop_keeps_one_occurrence_and_drops_the_unfinished_repeat() -> None:
    """What tiny.en wrote on 60 s of synthetic music with VAD and the confidence filters off."""
    loop = ("Thank you so much for watching this video and I'll see you in the next video,"
            + " see you in the next video," * 30 + " see you in the")
    out = collapse_repetitions(transcript(segment(29.58, loop, step=0.3)))
    (s,) = out.segments
    assert s.text == " Thank you so much for watching this video and I'll see you in the next video,"
    assert s.end == s.words[-1].end == round(29.58 + 16 * 0.3, 3)


def test_sentence_long_loop_collapses() -> None:
    """Eight words a turn, as tiny.en looped on pink noise."""
    loop = " ".join(["I'm going to take a look at how"] * 5) + " I'm going to take"
    out = collapse_repetitions(transcript(segment(0.0, loop)))
    assert out.segments[0].text == " I'm going to take a look at how"


def test_loop_at_the_end_no_longer_stretches_the_segment() -> None:
    out = collapse_repetitions(transcript(segment(0.0, " ".join(["Thank you."] * 10))))
    (s,) = out.segments
    assert s.text == " Thank you."
    assert (s.start, s.end) == (0.0, 0.8)


def test_single_word_loop_collapses() -> None:
    out = collapse_repetitions(transcript(segment(0.0, "I said the the the the the the the end")))
    assert out.segments[0].text == " I said the end"


def test_phrase_loop_collapses() -> None:
    phrase = "I'm going to the store now,"  # six words
    out = collapse_repetitions(transcript(segment(0.0, " ".join([phrase] * 4) + " and back.")))
    assert out.segments[0].text == " " + phrase + " and back."


def test_short_spoken_repeats_are_speech_not_loops() -> None:
    t = transcript(segment(0.0, "No, no, no! It was very, very, very good."),
                   segment(5.0, "Thank you. Thank you."))
    assert collapse_repetitions(t) == t


def test_repeated_segments_keep_the_first() -> None:
    t = transcript(segment(0.0, "Hello there."),
                   *[segment(2.0 + 2 * i, "Thanks for watching!") for i in range(4)],
                   segment(10.0, "thanks for watching"),  # case and punctuation ignored
                   segment(12.0, "Goodbye."))
    out = collapse_repetitions(t)
    assert [(s.start, s.text) for s in out.segments] == [
        (0.0, " Hello there."), (2.0, " Thanks for watching!"), (12.0, " Goodbye."),
    ]
    assert out.segments[1].end == t.segments[1].end  # kept as it was: nothing extended
    assert out.meta["repetitions_removed"] == {"segments": 4, "words": 0}


def test_a_sentence_said_twice_is_speech() -> None:
    """Two segments alike are a speaker repeating a line (the long benchmark's shuffled passes
    of the sample do: three such lines were lost); a loop repeats three times or more."""
    t = transcript(segment(0.0, "He was not an ill-disposed young man."),
                   segment(4.0, "He was not an ill-disposed young man."), segment(8.0, "Goodbye."))
    out = collapse_repetitions(t)
    assert [s.start for s in out.segments] == [0.0, 4.0, 8.0]
    assert "repetitions_removed" not in out.meta
    # Said again out of a long silence (as Whisper does in each window of noise): a loop.
    t = transcript(segment(26.0, "I'm going to go ahead."), segment(56.0, "I'm going to go ahead."))
    assert [s.start for s in collapse_repetitions(t).segments] == [26.0]


def test_loop_inside_segment_then_same_text_in_the_next() -> None:
    t = transcript(segment(0.0, " ".join(["Thank you."] * 5)), segment(4.0, "Thank you."))
    out = collapse_repetitions(t)
    assert [s.text for s in out.segments] == [" Thank you."]


def test_segments_without_word_times_collapse_by_text() -> None:
    t = transcript(Segment(0.0, 9.0, " Oh " + "la di " * 4 + "end."))
    assert collapse_repetitions(t).segments[0].text == " Oh la di end."


def test_text_squeezed_into_a_sliver_of_silence_is_dropped() -> None:
    """As tiny.en wrote at the end of a piece of the sample cut for upload: 150 characters in 0.24 s."""
    loop = " He was not an old-sposed young man, but he was not an old-sposed young man, " * 2
    squeezed = Segment(17.59, 17.83, loop, [], -0.5, 0.2, 2.0, 0.0)
    short = Segment(18.0, 18.05, " Yes.", [Word(18.0, 18.05, " Yes.")])  # squeezed times, one word: kept
    fast = segment(19.0, "one two three four five six seven eight", step=0.2)  # 27 characters/s: kept
    out = collapse_repetitions(transcript(segment(8.68, "He was not an ill-disposed young man."),
                                          squeezed, short, fast))
    assert [s.text for s in out.segments] == [" He was not an ill-disposed young man.", " Yes.", fast.text]
    assert out.meta["repetitions_removed"]["segments"] == 1
    # Collapsed first: a loop whose first occurrence fits its time is kept.
    said = Segment(30.0, 34.0, " Thank you for watching." * 4)
    assert collapse_repetitions(transcript(said)).segments[0].text == " Thank you for watching."


def test_input_is_not_modified() -> None:
    t = transcript(segment(0.0, " ".join(["Thank you."] * 5)), segment(4.0, "Thank you."))
    before = copy.deepcopy(t)
    out = collapse_repetitions(t)
    assert t == before
    out.segments[0].words[0].start = 99.0
    assert t.segments[0].words[0].start == 0.0  # no shared words


@pytest.mark.slow
def test_real_transcript_is_unchanged(fw_backend, sample_audio) -> None:
    """Real speech (the whole sample) has no loop to remove and nothing said impossibly fast."""
    t = fw_backend.transcribe(sample_audio.samples, DecodeOptions(), Report())
    assert len(t.words) > 60
    assert collapse_repetitions(t) == t
