"""The faster-whisper plugin against the plugin contract (subtitler.testing), on real speech."""

from __future__ import annotations

import pytest
from subtitler_faster_whisper import FasterWhisperBackend

from subtitler.errors import UnsupportedOption
from subtitler.specs import EngineSpec
from subtitler.testing import check_transcribe


def test_keeps_the_contract_on_real_speech(fw_backend, sample_audio):
    transcript, report = check_transcribe(fw_backend, sample_audio.samples[: 16000 * 8])
    assert "Dashwood" in transcript.text and transcript.language == "en"
    assert report.progress_seconds[-1] == pytest.approx(8.0, abs=0.05)


def test_declares_its_place_for_auto():
    # On a CPU int8 faster-whisper is the fastest engine: `auto` picks it before whisper.
    from subtitler_whisper import WhisperBackend

    assert FasterWhisperBackend.auto_priority > WhisperBackend.auto_priority
    assert FasterWhisperBackend.api_version == 2 and not FasterWhisperBackend.remote


def test_refuses_an_unknown_compute_type():
    with pytest.raises(UnsupportedOption, match="compute type must be auto or one of"):
        FasterWhisperBackend(EngineSpec("faster-whisper", "tiny.en", compute_type="int3"))


def test_a_model_given_as_a_folder_is_fingerprinted(tmp_path):
    """A model replaced at the same path is another model for the transcript cache."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights one")
    spec = EngineSpec("faster-whisper", str(folder))
    first = FasterWhisperBackend.fingerprint(spec, None)
    (folder / "model.bin").write_bytes(b"other weights, longer")
    assert first and FasterWhisperBackend.fingerprint(spec, None) != first
    assert FasterWhisperBackend.fingerprint(EngineSpec("faster-whisper", "tiny.en"), None) is None
