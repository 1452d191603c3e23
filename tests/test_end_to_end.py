"""The whole job on real speech with real weights, for both backends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from subtitler import DecodeOptions, Subtitler, Transcript
from subtitler.events import Report

from .accuracy import timing_hits, wer
from .conftest import SAMPLE


@pytest.fixture(scope="session")
def sample_transcripts(backends, tmp_path_factory):
    """The sample subtitled by each backend through the pipeline (model loaded once)."""
    out = {}
    for name, engine in backends.items():
        folder = tmp_path_factory.mktemp(name)
        # engine=: reuse the session's loaded model
        pipeline = Subtitler(backend=name, formats=["srt", "vtt", "json"], output_dir=folder, engine=engine)
        result = pipeline.subtitle(SAMPLE)
        out[name] = (result, Transcript.load(folder / "sample.json"))
    return out


@pytest.mark.parametrize("name", ["faster-whisper", "whisper"])
def test_accuracy_on_real_speech(sample_transcripts, reference, name):
    result, saved = sample_transcripts[name]
    assert [p.name for p in result.outputs] == ["sample.srt", "sample.vtt", "sample.json"]
    assert all(p.stat().st_size > 0 for p in result.outputs)
    assert saved == result.transcript
    assert saved.language == "en"
    assert saved.meta["options"]["vad"] is True  # the default: speech survives VAD
    assert wer(reference, saved) <= 0.10
    assert timing_hits(reference, saved) >= 0.90


def test_engines_agree_word_for_word(backends, sample_audio):
    """openai-whisper on the converted tiny.en and faster-whisper on the original, fp32 greedy,
    both decoding one window after another (Whisper's own way; auto batches faster-whisper)."""
    from subtitler.backends import load_backend

    fw32 = load_backend("faster-whisper", "tiny.en", compute_type="float32")
    greedy = DecodeOptions(beam_size=1, best_of=None, temperature_increment_on_fallback=None, batch_size=1)
    a = fw32.transcribe(sample_audio.samples, greedy, Report())
    b = backends["whisper"].transcribe(sample_audio.samples, greedy, Report())
    assert [w.text for w in a.words] == [w.text for w in b.words]
    assert len(a.words) > 60
    assert max(abs(x.start - y.start) for x, y in zip(a.words, b.words, strict=True)) <= 0.1


@pytest.mark.engine
def test_cli_subprocess_end_to_end(tmp_path, reference):
    """The real command, as a user runs it: `python -m subtitler`, no terminal, so no progress bar."""
    proc = subprocess.run(
        [sys.executable, "-m", "subtitler", str(SAMPLE), "-f", "srt,json", "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "sample.srt"), str(tmp_path / "sample.json")]
    # No terminal, so no bars: one line as the input starts and one as it ends (README).
    assert [line.split(": ")[2] for line in proc.stderr.splitlines()] == ["started", "done"]
    transcript = Transcript.from_json((tmp_path / "sample.json").read_text())
    assert transcript.meta["backend"] == "faster-whisper"  # auto on a CPU
    assert wer(reference, transcript) <= 0.10
    assert json.loads((tmp_path / "sample.json").read_text())["schema"] == "subtitler.transcript"
