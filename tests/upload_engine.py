"""What the fake services run on the audio they receive: the real local engine.

The uploaded bytes (MP3, Opus, FLAC or WAV) are decoded by real ffmpeg and
transcribed by faster-whisper, so a remote backend's subtitles can be
compared with the local engine's on the same speech.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading

import numpy as np

from subtitler.backends import Backend
from subtitler.media import SAMPLE_RATE, find_tools
from subtitler.options import DecodeOptions
from subtitler.transcript import Transcript


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded audio file's samples, 16 kHz mono float32, as a server would decode it."""
    command = [find_tools().ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "f32le",
               "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    proc = subprocess.run(command, input=data, capture_output=True, check=True)
    return np.frombuffer(proc.stdout, "<f4")


def whisper_dict(t: Transcript) -> dict:
    """A Transcript in openai-whisper's transcribe() result shape (with word_timestamps)."""
    return {
        "text": t.text, "language": t.language,
        "segments": [
            {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
             "temperature": s.temperature, "avg_logprob": s.avg_logprob,
             "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob,
             "words": [{"word": w.text, "start": w.start, "end": w.end, "probability": w.probability}
                       for w in s.words]}
            for i, s in enumerate(t.segments)
        ],
    }


class UploadEngine:
    """Transcribes uploads with a loaded backend; one run per distinct upload (cached)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.runs = 0
        self._cache: dict[str, Transcript] = {}
        self._lock = threading.Lock()  # the fake serves requests from several threads

    def transcript(self, data: bytes, language: str | None = None) -> Transcript:
        key = hashlib.sha256(data + str(language).encode()).hexdigest()
        with self._lock:
            if key not in self._cache:
                self.runs += 1
                samples = decode_upload(data)
                self._cache[key] = self.backend.transcribe(samples, DecodeOptions(language=language))
            return self._cache[key]

    def tiyaro(self, data: bytes, inputs: dict, model: str) -> dict:
        return whisper_dict(self.transcript(data, inputs.get("language")))
