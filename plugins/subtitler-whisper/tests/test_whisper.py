"""The openai-whisper plugin against the plugin contract (subtitler.testing), on real speech."""

from __future__ import annotations

import pytest
from subtitler_whisper import CONVERTER_VERSION, WhisperBackend

from subtitler.errors import UnsupportedOption
from subtitler.specs import EngineSpec
from subtitler.testing import check_transcribe


def test_keeps_the_contract_on_real_speech(whisper_backend, sample_audio):
    transcript, report = check_transcribe(whisper_backend, sample_audio.samples[: 16000 * 8])
    assert "Dashwood" in transcript.text and transcript.language == "en"
    assert report.progress_seconds and report.progress_seconds[-1] == pytest.approx(8.0, abs=0.05)


def test_declares_it_wants_the_gpu():
    # On a machine with a GPU, whisper (fp16 on CUDA) is the `auto` choice.
    from subtitler_faster_whisper import FasterWhisperBackend

    other = FasterWhisperBackend.gpu_priority or FasterWhisperBackend.auto_priority
    assert WhisperBackend.gpu_priority > other


def test_refuses_fp16_on_a_cpu():
    with pytest.raises(UnsupportedOption, match="cannot compute float16 on a CPU"):
        WhisperBackend(EngineSpec("whisper", "tiny.en", device="cpu", compute_type="float16"))


def test_the_converters_version_is_in_the_cache_key():
    """Bundled models are converted for openai-whisper: a new converter makes new transcripts."""
    assert WhisperBackend.fingerprint(EngineSpec("whisper", "tiny.en"), None) == [CONVERTER_VERSION, None]
