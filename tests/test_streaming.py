"""Long inputs in flat memory: decoded audio waits on disk (media.Pcm) and reaches the engine a
piece at a time, cut in pauses (Audio.pieces, job.hear_pieces).

The piece length is lowered here (PIECE_SECONDS is 10 minutes) so that seconds of real media
show what hours would; `make bench` (bench_memory.py) measures the memory itself.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest

from subtitler import media
from subtitler.job import hear_pieces
from subtitler.media import SAMPLE_RATE, Pcm, decode_audio
from subtitler.options import DecodeOptions
from subtitler.specs import EngineSpec
from subtitler.testing import FakeBackend, RecordingReport, sound_regions
from tests.accuracy import normalize
from tests.speech import long_speech, write_audio


def wer_of(reference: str, transcript) -> float:  # type: ignore[no-untyped-def]
    return jiwer.wer(normalize(reference), normalize(transcript.text))


def bursts(seconds: float, seed: int = 3) -> np.ndarray:
    """Tone bursts of 0.3-2.5 s with pauses of 0.4-1.2 s: sound whose pauses are known."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    while total < seconds * SAMPLE_RATE:
        on = int(rng.uniform(0.3, 2.5) * SAMPLE_RATE)
        t = np.arange(on) / SAMPLE_RATE
        parts.append((0.3 * np.sin(2 * np.pi * rng.uniform(200, 900) * t)).astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(0.4, 1.2) * SAMPLE_RATE), np.float32))
        total += len(parts[-2]) + len(parts[-1])
    return np.concatenate(parts)


def test_pcm_waits_on_disk_and_reads_back_any_span(monkeypatch) -> None:
    monkeypatch.setattr(media, "_SPOOL_BYTES", 1000)
    pcm16 = (bursts(3) * 32768).astype("<i2")
    samples, data = pcm16.astype(np.float32) / 32768, pcm16.tobytes()
    pcm = Pcm()
    for start in range(0, len(data), 777):  # odd sizes: a pipe read can end inside a sample
        pcm.write(data[start:start + 777])
    assert pcm._file._rolled  # past the limit: a temporary file, not memory
    assert pcm.count == len(samples)
    assert np.array_equal(pcm.read(1234, 5678), samples[1234:5678])
    assert np.array_equal(pcm.read(), samples)
    assert len(pcm.read(len(samples) - 5, len(samples) + 100)) == 5
    # The transcript cache's key is the float32 samples' hash, as before audio streamed.
    assert pcm.hash == hashlib.sha256(samples.astype("<f4").tobytes()).hexdigest()


@pytest.fixture
def ten_second_pieces(monkeypatch) -> float:
    monkeypatch.setattr(media, "PIECE_SECONDS", 10.0)
    return 10.0


def test_long_audio_is_cut_into_pieces_in_its_pauses(tmp_path: Path, ten_second_pieces) -> None:
    samples = bursts(65)
    audio = decode_audio(write_audio(tmp_path / "bursts.wav", samples))
    pieces = audio.pieces
    assert len(pieces) >= 7
    assert pieces[0][0] == 0 and pieces[-1][1] == audio.count
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))  # contiguous: nothing lost
    assert all(end - start <= ten_second_pieces * SAMPLE_RATE for start, end in pieces)
    for _, cut in pieces[:-1]:  # every cut falls in a pause, not in a burst
        around = samples[cut - 80:cut + 80]
        assert np.abs(around).max() < 0.01, f"cut at {cut / SAMPLE_RATE:.2f} s is inside a sound"


class Recording(FakeBackend):
    """The fake engine, keeping what each call was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, DecodeOptions, Any]] = []

    def transcribe(self, audio, options, report, prepared=None):  # type: ignore[no-untyped-def]
        self.calls.append((len(audio), options, prepared))
        transcript = super().transcribe(audio, options, report, prepared)
        transcript.language = options.language or "fr"  # "detected" on the first piece
        return transcript


def test_a_long_input_reaches_the_engine_a_piece_at_a_time(tmp_path: Path, ten_second_pieces) -> None:
    samples = bursts(65)
    audio = decode_audio(write_audio(tmp_path / "bursts.wav", samples))
    engine = Recording(EngineSpec("fake"))
    report = RecordingReport()
    transcript = hear_pieces(engine, audio, DecodeOptions(), report, prepared="first piece's")
    assert len(engine.calls) == len(audio.pieces)
    assert all(n <= ten_second_pieces * SAMPLE_RATE for n, _, _ in engine.calls)
    # Prepared work is the first piece's; the language heard first holds for the rest.
    assert [p for _, _, p in engine.calls] == ["first piece's"] + [None] * (len(engine.calls) - 1)
    assert [o.language for _, o, _ in engine.calls] == [None] + ["fr"] * (len(engine.calls) - 1)
    assert transcript.language == "fr"
    # Every sound is heard once, at its time on the whole audio's clock.
    heard = [t for w in transcript.words for t in (w.start, w.end)]
    assert heard == pytest.approx([t for region in sound_regions(samples) for t in region], abs=0.03)
    steps = report.progress_seconds
    assert steps == sorted(steps) and steps[-1] == pytest.approx(audio.duration, abs=0.01)


def test_a_short_input_is_one_piece(sample_audio) -> None:
    assert sample_audio.pieces == [(0, sample_audio.count)]


def test_a_real_engine_hears_pieces_as_it_hears_the_whole(fw_backend, tmp_path: Path, monkeypatch) -> None:
    """Real speech cut into 20 s pieces: the same words as heard whole, at the same times."""
    samples, text = long_speech(75)
    audio = decode_audio(write_audio(tmp_path / "speech.wav", samples))
    options = DecodeOptions(batch_size=1)
    whole = fw_backend.transcribe(audio.samples, options, RecordingReport())
    monkeypatch.setattr(media, "PIECE_SECONDS", 20.0)
    audio = decode_audio(tmp_path / "speech.wav")
    assert len(audio.pieces) >= 4
    pieced = hear_pieces(fw_backend, audio, options, RecordingReport())
    # Context differs after each cut (a piece starts unprompted): nearly the same words. Unprompted,
    # tiny.en may hear one word otherwise ("ill-disposed" as "old-sposed", 2 substitutions each
    # time: 1.4% WER whole, 5.2% pieced on one machine, less on another); what a cut must not do
    # is lose words or hear them twice.
    assert jiwer.wer(normalize(whole.text), normalize(pieced.text)) < 0.10
    assert wer_of(text, pieced) <= wer_of(text, whole) + 0.05
    lost_or_doubled = [(m.deletions, m.insertions) for m in (
        jiwer.process_words(normalize(text), normalize(t.text)) for t in (pieced, whole))]
    assert sum(lost_or_doubled[0]) <= sum(lost_or_doubled[1]) + 2, lost_or_doubled
    # The words both heard are at the same times: the pieces' clocks are put back right.
    a, b = [normalize(w.text).strip() for w in pieced.words], [normalize(w.text).strip() for w in whole.words]
    matched = [(pieced.words[m.a + k], whole.words[m.b + k])
               for m in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks()
               for k in range(m.size)]
    assert len(matched) > 0.9 * len(whole.words)
    # (a first word's start wobbles by up to 0.3 s with its context; a wrong clock is seconds off)
    gaps = [max(abs(p.start - w.start), abs(p.end - w.end)) for p, w in matched]
    assert max(gaps) < 0.5 and sorted(gaps)[len(gaps) // 2] < 0.05
    assert pieced.meta["pieces"][-1][1] == pytest.approx(audio.duration, abs=0.01)
