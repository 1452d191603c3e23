"""What the remote backends' tests share: 8 s of the real sample, the local engine's words on it,
the engine behind the fakes, and comparisons that allow for the compact upload. Both hear one
window at a time (batch 1): batched, one word's start moves 0.2 s when the audio went through MP3
(" John" in the sample's first 8 s), past what the comparisons allow.

Imported by the tiyaro and openai plugins' tests (plugins/*/tests) and test_remote_limits.py
(`from tests.remote_fixtures import *`).
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest

from subtitler.events import Report
from subtitler.options import DecodeOptions
from subtitler.transcript import Transcript

from .upload_engine import UploadEngine

SECONDS = 8

__all__ = ["SECONDS", "audio", "local", "engine", "same_words", "error_text"]


@pytest.fixture(scope="module")
def audio(sample_audio) -> np.ndarray:
    return sample_audio.samples[: 16000 * SECONDS]


@pytest.fixture(scope="module")
def local(fw_backend, audio) -> Transcript:
    return fw_backend.transcribe(audio, DecodeOptions(batch_size=1), Report())


@pytest.fixture(scope="module")
def engine(fw_backend) -> UploadEngine:
    return UploadEngine(fw_backend)


def same_words(got: Transcript, want: Transcript, tolerance: float = 0.05) -> bool:
    """Same words, each starting and ending within `tolerance` s (the upload went through MP3)."""
    return [w.text for w in got.words] == [w.text for w in want.words] and all(
        abs(a.start - b.start) <= tolerance and abs(a.end - b.end) <= tolerance
        for a, b in zip(got.words, want.words, strict=True))


def error_text(e: BaseException) -> str:
    """Everything a user could see of an error: message, repr and traceback."""
    return "".join(traceback.format_exception(e)) + repr(e)
