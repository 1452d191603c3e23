"""Batched decoding on openai-whisper (batched.py): windows of speech decoded several at once must
hear what the sequential path hears, keep word timings, and keep whisper's hallucination guards."""

from __future__ import annotations

import numpy as np
import pytest
from subtitler_whisper.batched import decode_with_fallback, is_silent, make_window, transcribe_batched

from subtitler.options import DecodeOptions
from subtitler.testing import RecordingReport, check_transcribe
from subtitler.transcript import Transcript
from subtitler.vad import pack_windows, speech_regions
from tests.accuracy import normalize, timing_hits, wer
from tests.speech import long_speech, sentences

RATE = 16000
GREEDY = DecodeOptions(beam_size=1, best_of=None)


def text_wer(reference: str, transcript: Transcript) -> float:
    import jiwer

    return jiwer.wer(normalize(reference), normalize(transcript.text))


@pytest.fixture(scope="module")
def sample_runs(whisper_backend, sample_audio):
    """The sample (29 s) with the default options: the engine's own pick (sequential on a CPU for
    a file this short), then batched."""
    audio = sample_audio.samples
    return {size: whisper_backend.transcribe(audio, DecodeOptions(batch_size=size), RecordingReport())
            for size in (None, 4)}


@pytest.fixture(scope="module")
def long_runs(whisper_backend):
    """Three minutes of real speech, sequential and batched, greedy (openai-whisper's beam search
    on a CPU would take minutes; the beams are tested on less below)."""
    audio, text = long_speech(180)
    runs = {}
    for size in (1, 4):
        report = RecordingReport()
        options = DecodeOptions(beam_size=1, best_of=None, batch_size=size)
        runs[size] = (whisper_backend.transcribe(audio, options, report), report)
    return text, len(audio) / RATE, runs


def test_batched_hears_the_sample_as_the_sequential_path_does(sample_runs, reference):
    sequential, batched = sample_runs[None], sample_runs[4]
    assert sequential.meta["batch_size"] == 1  # 29 s on a CPU: batching does not pay
    assert batched.meta["batch_size"] == 4
    assert wer(reference, batched) <= wer(reference, sequential) + 0.005
    assert wer(reference, batched) <= 0.10
    # Every sentence is there, the last included (whisper stops early in a window and goes on).
    assert "amiable himself" in batched.text


def test_batched_word_timings_match_the_reference(sample_runs, reference):
    assert timing_hits(reference, sample_runs[4]) >= 0.90


def test_batched_hears_long_speech_as_the_sequential_path_does(long_runs):
    """No word lost or said twice more than sequentially (rests, overlaps and joins are where
    batching could lose or double words); what differs is substitutions: unprompted, tiny.en
    hears some "ill-disposed" as "old-sposed" (the sequential prompt, holding the earlier
    sentences, mends a few)."""
    import jiwer

    text, _, runs = long_runs
    sequential, batched = runs[1][0], runs[4][0]
    assert batched.meta["batch_size"] == 4 and sequential.meta["batch_size"] == 1
    got = {size: jiwer.process_words(normalize(text), normalize(t.text)) for size, (t, _) in runs.items()}
    assert got[4].deletions + got[4].insertions <= got[1].deletions + got[1].insertions
    assert got[4].wer <= 0.05


def test_batched_words_are_timed_and_in_order_on_long_speech(long_runs):
    _, duration, runs = long_runs
    words = runs[4][0].words
    assert len(words) > 300
    assert all(0 <= w.start <= w.end <= duration for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))


def test_batched_progress_moves_on_to_the_end(long_runs):
    _, duration, runs = long_runs
    steps = runs[4][1].progress_seconds
    assert steps == sorted(steps) and steps[-1] == pytest.approx(duration)
    # Reported as windows finish, not only at the start and end: 3 minutes are 7 windows or more,
    # two batches of 4 at least.
    assert len({round(s, 1) for s in steps if 0 < s < duration}) >= 2


def test_batch_of_one_and_of_four_hear_each_window_alike(whisper_backend):
    """Windows are independent: decoding them together changes nothing but the speed. With beam
    search, which openai-whisper's own decoder cannot run on several windows."""
    audio, _ = long_speech(45)
    regions = speech_regions(audio)
    assert len(pack_windows(regions)) >= 2
    options = DecodeOptions(beam_size=2)
    one = transcribe_batched(whisper_backend.model, audio, regions, options, 1, fp16=False)[1]
    four = transcribe_batched(whisper_backend.model, audio, regions, options, 4, fp16=False)[1]
    one_words, four_words = [w for s in one for w in s.words], [w for s in four for w in s.words]
    assert [w.text for w in one_words] == [w.text for w in four_words]
    assert len(four_words) > 100
    assert max(abs(a.start - b.start) for a, b in zip(one_words, four_words, strict=True)) <= 0.05


def test_only_the_windows_that_fail_fall_back_to_a_higher_temperature(whisper_backend):
    """whisper.transcribe's fallback, per window: a threshold between two windows' compression
    ratios sends the more repetitive one (only) to the next temperatures."""
    model = whisper_backend.model
    (a, _), (b, _) = sentences()[0], sentences()[2]
    windows = [make_window(model, clip) for clip in (a, b)]
    import torch

    mels = torch.stack([w.mel for w in windows])
    first = decode_with_fallback(model, mels, GREEDY, "en", fp16=False)
    assert [r.temperature for r in first] == [0.0, 0.0]
    low, high = sorted(r.compression_ratio for r in first)
    assert low < high
    options = DecodeOptions(beam_size=1, best_of=None, compression_ratio_threshold=(low + high) / 2,
                            temperature_increment_on_fallback=0.5)
    results = decode_with_fallback(model, mels, options, "en", fp16=False)
    fell_back = [r.temperature > 0 for r in results]
    assert fell_back == [r.compression_ratio == high for r in first]


def test_forced_fallback_shows_in_the_segments(whisper_backend):
    """A compression threshold of 0.5 fails every decode of a sentence: windows end at the last
    temperature, sampled best-of-2 for several windows at once. (Only a decode of a word or two
    compresses that badly, as a window's rest can: it passes at temperature 0, and says so.)"""
    audio, _ = long_speech(45)
    assert len(pack_windows(speech_regions(audio))) >= 2
    options = DecodeOptions(beam_size=1, best_of=2, compression_ratio_threshold=0.5,
                            temperature_increment_on_fallback=1.0, batch_size=4)
    got = whisper_backend.transcribe(audio, options, RecordingReport())
    hot = [s for s in got.segments if s.temperature == 1.0]
    assert len(hot) >= len(got.segments) / 2
    assert all(s.compression_ratio <= 0.5 or options.likely_silence(s.no_speech_prob, s.avg_logprob)
               for s in got.segments if s.temperature < 1.0)


def test_batched_without_vad_cuts_plain_windows_and_skips_the_silent_one(whisper_backend):
    """--no-vad: plain 30 s windows; the second holds only digital silence. tiny.en hears a faint
    " you" in it (no-speech probability 0.94, but average log probability -0.88): whisper's guard
    keeps text that confident, and skips the window once the log probability threshold is above it."""
    speech, text = sentences()[0]
    audio = np.concatenate([speech, np.zeros(40 * RATE, np.float32)])
    runs = {}
    for threshold in (-1.0, -0.5):
        options = DecodeOptions(beam_size=1, best_of=None, vad=False, batch_size=4,
                                logprob_threshold=threshold)
        runs[threshold] = check_transcribe(whisper_backend, audio, options)
    kept, report = runs[-1.0]
    skipped, _ = runs[-0.5]
    assert kept.meta["batch_size"] == 4 and kept.meta["options"]["vad"] is False
    assert report.progress_seconds[-1] == pytest.approx(len(audio) / RATE)
    assert any(w.start >= 30.0 for w in kept.words)
    assert text_wer(text, skipped) <= 0.15
    assert skipped.words and skipped.words[-1].end <= len(speech) / RATE + 0.5
    # The same window alone: the guard's figures, as whisper.transcribe reads them.
    silent = make_window(whisper_backend.model, audio[30 * RATE:])
    options = DecodeOptions(beam_size=1, best_of=None, logprob_threshold=-0.5)
    result = decode_with_fallback(whisper_backend.model, silent.mel[None], options, "en", fp16=False)[0]
    assert result.temperature == 0.0 and is_silent(result, options)
    assert not is_silent(result, DecodeOptions())


@pytest.mark.engine
def test_batch_size_from_the_command_line_reaches_the_engine(tmp_path, short_clip):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "subtitler", str(short_clip), "-b", "whisper", "-m", "tiny.en",
         "--batch-size", "4", "-f", "json", "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    saved = Transcript.from_json((tmp_path / "short.json").read_text())
    assert saved.meta["backend"] == "whisper" and saved.meta["batch_size"] == 4
    assert "Dashwood" in saved.text


def test_a_long_inputs_pieces_fill_batches_across_their_joins(whisper_backend, long_runs, monkeypatch,
                                                                tmp_path):
    """The three minutes heard in 40 s pieces, as a long input is: the pieces' windows share
    batches (not a part batch a piece), as accurate as heard whole, progress on the whole clock."""
    from subtitler_whisper import batched

    from subtitler import media
    from subtitler.job import hear_pieces
    from tests.speech import write_audio

    text, _, runs = long_runs
    sizes: list[int] = []
    decode = batched.decode_batch
    monkeypatch.setattr(batched, "decode_batch",
                        lambda model, tokenizer, batch, *a: sizes.append(len(batch)) or decode(
                            model, tokenizer, batch, *a))
    monkeypatch.setattr(media, "PIECE_SECONDS", 40.0)
    audio = media.decode_audio(write_audio(tmp_path / "long.wav", long_speech(180)[0]))
    assert len(audio.pieces) >= 4
    report = RecordingReport()
    pieced = hear_pieces(whisper_backend, audio, DecodeOptions(beam_size=1, best_of=None, batch_size=4),
                         report)
    windows = sum(sizes)
    assert windows >= len(audio.pieces) and len(sizes) <= -(-windows // 4) + 2 < len(audio.pieces)
    assert text_wer(text, pieced) <= text_wer(text, runs[4][0]) + 0.03
    assert report.progress_seconds == sorted(report.progress_seconds)
    assert report.progress_seconds[-1] == pytest.approx(audio.duration, abs=0.01)
