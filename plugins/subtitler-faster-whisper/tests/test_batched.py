"""Batched decoding (batched.py) against the sequential decoder, on real speech.

One computation per clip and mode, shared by the tests (session scope): tiny.en on the sample
(29 s) and on three minutes of the sample's sentences (tests/speech.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import jiwer
import numpy as np
import pytest
from subtitler_faster_whisper import CPU_BATCH_SIZE

from subtitler.media import SAMPLE_RATE
from subtitler.options import DecodeOptions, batch_size_for
from subtitler.testing import RecordingReport, check_transcribe
from subtitler.transcript import Segment, Word
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


def errors(text: str, transcript) -> jiwer.WordOutput:  # type: ignore[no-untyped-def]
    return jiwer.process_words(normalize(text), normalize(transcript.text))


def test_batched_is_as_accurate_as_sequential(heard, reference, long_clip) -> None:
    """The sample: the same WER (1.4%, one word). Three minutes: no word lost or said twice more
    than sequentially (rests, overlaps and joins are where batching could lose or double words).
    Measured, tiny.en int8: 3 min 1.4% sequential, 3.8% batched, all of it substitutions:
    unprompted, tiny.en hears "ill-disposed" as "old-sposed" in some windows (prompted with the
    text before, the sequential decoder spells it as it did before). At 10 minutes batched is the
    better, 3.2% against 7.5% (bench_long.py): prompts with sentences said again make Whisper skip."""
    sample = {size: errors(reference["text"], heard["sample", size][0]) for size in (1, 8)}
    assert sample[8].wer <= sample[1].wer + 0.005 + 1e-9
    long = {size: errors(long_clip[1], heard["long", size][0]) for size in (1, 8)}
    assert long[8].deletions + long[8].insertions <= long[1].deletions + long[1].insertions
    assert long[8].wer <= 0.05
    for clip in ("sample", "long"):
        assert heard[clip, 8][0].meta["batch_size"] == 8 and heard[clip, 1][0].meta["batch_size"] == 1


def test_a_window_whisper_stops_early_in_is_heard_to_its_end(fw_backend, sample_audio, reference) -> None:
    """Decodes cut short (at most 64 tokens, as if Whisper had ended each window early): the
    speech left after a window's last word is decoded in the next rounds, and nothing is lost or
    said twice."""
    model = fw_backend.model
    full = model.max_length
    model.max_length = 64
    try:
        short = fw_backend.transcribe(sample_audio.samples, DecodeOptions(batch_size=2), RecordingReport())
    finally:
        model.max_length = full
    found = errors(reference["text"], short)
    # Words cut in two where a rest begins are substitutions (measured: 3 of 71 words).
    assert found.deletions + found.insertions <= 2 and found.wer <= 0.08, short.text
    starts = [w.start for w in short.words]
    # In order; where a rest begins, a word cut in two may start a moment before its other half.
    assert all(b > a - 0.1 for a, b in zip(starts, starts[1:], strict=False))


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


def test_auto_batches_on_a_cpu_at_any_length(fw_backend, sample_audio) -> None:
    assert batch_size_for(DecodeOptions(), 29.4, "cpu") == 1  # the rule most engines follow
    assert batch_size_for(DecodeOptions(), 600, "cpu") > 1
    assert batch_size_for(DecodeOptions(), 29.4, "cuda") > 1
    assert batch_size_for(DecodeOptions(batch_size=3), 600, "cuda") == 3
    transcript = fw_backend.transcribe(sample_audio.samples[: 8 * SAMPLE_RATE], DecodeOptions(),
                                       RecordingReport())
    assert transcript.meta["batch_size"] == CPU_BATCH_SIZE  # faster-whisper's: batched from the first second


def test_a_word_split_at_a_hyphen_is_one_word_again() -> None:
    """faster-whisper gives "cold" "-hearted" (its prepended punctuation); subtitler's contract
    is words that start with a space, and a line must not break inside one."""
    from subtitler.plugin import join_split_words

    first = Segment(0.0, 1.0, " rather cold", [Word(0.0, 0.4, " rather"), Word(0.5, 1.0, " cold")])
    second = Segment(1.0, 2.0, "-hearted and", [Word(1.0, 1.5, "-hearted"), Word(1.6, 2.0, " and")])
    within = Segment(3.0, 4.0, " ill-disposed", [Word(3.0, 3.4, " ill"), Word(3.4, 4.0, "-disposed")])
    a, b, c = join_split_words([first, second, within])
    assert [w.text for w in a.words] == [" rather", " cold-hearted"] and a.words[-1].end == 1.5
    assert a.text == " rather cold-hearted" and b.text == " and" and [w.text for w in b.words] == [" and"]
    assert b.start == 1.6 and [(w.text, w.start, w.end) for w in c.words] == [(" ill-disposed", 3.0, 4.0)]


def test_a_long_inputs_pieces_fill_batches_across_their_joins(fw_backend, heard, long_clip,
                                                                monkeypatch) -> None:
    """Three minutes heard in 40 s pieces (media.Audio.pieces, as a long input is): the pieces'
    windows share batches, so the batches are as few as for the whole audio's windows, not a
    part batch per piece; as accurate as heard whole, and progress told on the whole clock."""
    from subtitler_faster_whisper import batched

    from subtitler import media
    from subtitler.job import hear_pieces
    from tests.speech import write_audio

    steps: list[int] = []
    step = batched.BatchedDecoder.step
    monkeypatch.setattr(batched.BatchedDecoder, "step",
                        lambda self, batch, *a: steps.append(len(batch)) or step(self, batch, *a))
    monkeypatch.setattr(media, "PIECE_SECONDS", 40.0)
    audio = media.decode_audio(write_audio(Path(tempfile.mkdtemp()) / "long.wav", long_clip[0]))
    assert len(audio.pieces) >= 4
    report = RecordingReport()
    pieced = hear_pieces(fw_backend, audio, DecodeOptions(batch_size=8), report)
    # A piece at a time would take a batch a piece at least; shared, the windows (one or more
    # a piece, and any rests) go 8 at a time.
    windows = sum(steps)
    assert windows >= len(audio.pieces) and len(steps) <= -(-windows // 8) + 1 < len(audio.pieces)
    whole = heard["long", 8][0]
    assert errors(long_clip[1], pieced).wer <= errors(long_clip[1], whole).wer + 0.03
    assert len(pieced.words) == pytest.approx(len(whole.words), abs=4)
    assert report.progress_seconds == sorted(report.progress_seconds)
    assert report.progress_seconds[-1] == pytest.approx(audio.duration, abs=0.01)
