"""Batched decoding (batched.py) against the sequential decoder, on real speech.

One computation per clip and mode, shared by the tests (session scope): tiny.en on the sample
(29 s) and on three minutes of the sample's sentences (tests/speech.py).
"""

from __future__ import annotations

import jiwer
import numpy as np
import pytest
from subtitler_faster_whisper.batched import MIN_STREAM, split_at_timestamps, streams

from subtitler.media import SAMPLE_RATE
from subtitler.options import DecodeOptions, batch_size_for
from subtitler.testing import RecordingReport, check_transcribe
from tests.accuracy import normalize, timing_hits
from tests.speech import long_speech


@pytest.fixture(scope="session")
def long_clip() -> tuple[np.ndarray, str]:
    return long_speech(180)


@pytest.fixture(scope="session")
def heard(fw_backend, sample_audio, long_clip) -> dict:
    """Transcripts of the sample and the long clip, sequential (batch 1) and batched (8)."""
    out = {}
    for clip, samples in (("sample", sample_audio.samples), ("long", long_clip[0])):
        for size in (1, 8):
            report = RecordingReport()
            out[clip, size] = fw_backend.transcribe(samples, DecodeOptions(batch_size=size), report), report
    return out


def wer(text: str, transcript) -> float:  # type: ignore[no-untyped-def]
    return jiwer.wer(normalize(text), normalize(transcript.text))


def test_batched_is_as_accurate_as_sequential(heard, reference, long_clip) -> None:
    # Measured: the sample 1.4% both; 3 minutes 1.4% sequential, 1.9% batched (tiny.en, int8).
    for clip, text in (("sample", reference["text"]), ("long", long_clip[1])):
        sequential, batched = heard[clip, 1][0], heard[clip, 8][0]
        assert wer(text, batched) <= wer(text, sequential) + 0.005 + 1e-9, clip
        assert batched.meta["batch_size"] == 8 and sequential.meta["batch_size"] == 1


def test_batched_words_are_timed_on_the_audios_clock(heard, reference) -> None:
    assert timing_hits(reference, heard["sample", 8][0]) >= 0.90
    report = heard["long", 8][1]
    steps = report.progress_seconds
    assert steps == sorted(steps) and steps[-1] == pytest.approx(heard["long", 8][0].duration, abs=0.05)


def test_batched_keeps_the_plugin_contract(fw_backend, long_clip) -> None:
    check_transcribe(fw_backend, long_clip[0][: 90 * SAMPLE_RATE], DecodeOptions(batch_size=4))


def test_failed_decodes_fall_back_to_higher_temperatures(fw_backend, sample_audio) -> None:
    """Every decode 'fails' a compression check no text passes: each window is tried at every
    temperature, as the sequential decoder tries it, and the best attempt is kept."""
    options = DecodeOptions(batch_size=4, compression_ratio_threshold=0.1,
                            temperature_increment_on_fallback=0.5)
    transcript = fw_backend.transcribe(sample_audio.samples, options, RecordingReport())
    assert transcript.segments and "Dashwood" in transcript.text
    assert DecodeOptions(batch_size=4).temperatures() != options.temperatures() == (0.0, 0.5, 1.0)
    # All failed: the likeliest attempt is kept, whichever temperature made it.
    assert {s.temperature for s in transcript.segments} <= {0.0, 0.5, 1.0}


def test_without_vad_silence_is_checked_as_the_sequential_decoder_checks_it(fw_backend, sample_audio) -> None:
    """--no-vad: the audio in plain 30 s windows. A window of silence gets what the sequential
    decoder's no-speech check lets through (tiny.en: one "You", both ways), no more."""
    audio = np.concatenate([np.zeros(40 * SAMPLE_RATE, np.float32), sample_audio.samples])
    heard = {size: fw_backend.transcribe(audio, DecodeOptions(batch_size=size, vad=False), RecordingReport())
             for size in (1, 4)}
    assert "Dashwood" in heard[4].text and heard[4].meta["batch_size"] == 4
    in_silence = {size: [w.text for w in t.words if w.start < 39.0] for size, t in heard.items()}
    assert len(in_silence[4]) <= len(in_silence[1]) <= 1


def test_auto_batches_long_audio_on_a_cpu(fw_backend, sample_audio) -> None:
    assert batch_size_for(DecodeOptions(), 29.4, "cpu") == 1
    assert batch_size_for(DecodeOptions(), 600, "cpu") > 1
    assert batch_size_for(DecodeOptions(), 29.4, "cuda") > 1
    assert batch_size_for(DecodeOptions(batch_size=3), 600, "cuda") == 3
    transcript = fw_backend.transcribe(sample_audio.samples[: 8 * SAMPLE_RATE], DecodeOptions(),
                                       RecordingReport())
    assert transcript.meta["batch_size"] == 1


class Tokens:
    """What split_at_timestamps needs of a tokenizer: timestamps from 100, end of text 50."""

    timestamp_begin, eot = 100, 50


def t(seconds: float) -> int:
    return 100 + round(seconds / 0.02)


def test_a_window_is_split_at_timestamp_pairs() -> None:
    # <|0|> a b <|2|><|2|> c <|4|> (single timestamp ending): two segments, the window is done.
    pieces, resume = split_at_timestamps([t(0), 1, 2, t(2), t(2), 3, t(4), 50], Tokens(), 30.0)
    assert [(p["start"], p["end"], p["tokens"]) for p in pieces] == [(0.0, 2.0, [1, 2]), (2.0, 4.0, [3])]
    assert resume is None


def test_unfinished_text_is_decoded_again_from_the_last_timestamp() -> None:
    # <|0|> a <|2|><|2|> b c  (no closing timestamp): b c is unfinished; decoding resumes at 2 s.
    pieces, resume = split_at_timestamps([t(0), 1, t(2), t(2), 2, 3], Tokens(), 30.0)
    assert [p["tokens"] for p in pieces] == [[1]] and resume == 2.0
    # Stopped on a pair: what follows the window's last words is decoded from there too.
    pieces, resume = split_at_timestamps([t(0), 1, t(2), t(2), 50], Tokens(), 30.0)
    assert [p["tokens"] for p in pieces] == [[1]] and resume == 2.0


def test_text_without_timestamp_pairs_is_one_segment() -> None:
    pieces, resume = split_at_timestamps([1, 2, 3, 50], Tokens(), 12.5)
    assert [(p["start"], p["end"], p["tokens"]) for p in pieces] == [(0.0, 12.5, [1, 2, 3])]
    assert resume is None


def test_speech_is_dealt_into_streams_of_consecutive_regions(long_clip) -> None:
    samples = long_clip[0]
    found = streams(samples, True, 8)
    speech = sum(len(s.samples) for s in found) / SAMPLE_RATE
    assert 1 < len(found) <= max(1, speech // MIN_STREAM)
    regions = [r for s in found for r in s.regions]
    assert regions == sorted(regions)
    assert all(a[1] <= b[0] for a, b in zip(regions, regions[1:], strict=False))
    assert len(streams(samples, True, 1)) == 1


def test_a_word_split_at_a_hyphen_is_one_word_again() -> None:
    """faster-whisper gives "cold" "-hearted" (its prepended punctuation); subtitler's contract
    is words that start with a space, and a line must not break inside one."""
    from subtitler.plugin import join_split_words
    from subtitler.transcript import Segment, Word

    first = Segment(0.0, 1.0, " rather cold", [Word(0.0, 0.4, " rather"), Word(0.5, 1.0, " cold")])
    second = Segment(1.0, 2.0, "-hearted and", [Word(1.0, 1.5, "-hearted"), Word(1.6, 2.0, " and")])
    within = Segment(3.0, 4.0, " ill-disposed", [Word(3.0, 3.4, " ill"), Word(3.4, 4.0, "-disposed")])
    a, b, c = join_split_words([first, second, within])
    assert [w.text for w in a.words] == [" rather", " cold-hearted"] and a.words[-1].end == 1.5
    assert a.text == " rather cold-hearted" and b.text == " and" and [w.text for w in b.words] == [" and"]
    assert b.start == 1.6 and [(w.text, w.start, w.end) for w in c.words] == [(" ill-disposed", 3.0, 4.0)]
