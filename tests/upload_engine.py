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
from subtitler.events import Report
from subtitler.media import SAMPLE_RATE, find_tools
from subtitler.options import DecodeOptions
from subtitler.transcript import Transcript
from subtitler.whisper_compat import to_whisper_result


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded audio file's samples, 16 kHz mono float32, as a server would decode it."""
    command = [find_tools().ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "f32le",
               "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    proc = subprocess.run(command, input=data, capture_output=True, check=True)
    return np.frombuffer(proc.stdout, "<f4")


def whisper_dict(t: Transcript) -> dict:
    """A Transcript in openai-whisper's transcribe() result shape (with word_timestamps)."""
    return to_whisper_result(t)


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
                # No temperature fallback: its sampling is random, and a fake must answer the same each time.
                # One window at a time, as remote_fixtures' `local` hears the original.
                options = DecodeOptions(language=language, temperature_increment_on_fallback=None,
                                        batch_size=1)
                self._cache[key] = self.backend.transcribe(samples, options, Report())
            return self._cache[key]

    def tiyaro(self, data: bytes, inputs: dict, model: str) -> dict:
        return whisper_dict(self.transcript(data, inputs.get("language")))

    def openai(self, data: bytes, fields: dict[str, list[str]]) -> Transcript:
        return self.transcript(data, (fields.get("language") or [None])[0])


class ReferenceOracle:
    """A perfect recogniser for pieces of the sample: the reference words, where the piece lies.

    It decodes the upload with real ffmpeg and finds where it sits in the
    sample by cross-correlation, so it checks that the right audio was sent;
    then it answers the reference's words for that span. With ASR variance out
    of the way, a test can demand every word exactly once after stitching.
    """

    def __init__(self, samples: np.ndarray, reference: dict) -> None:
        self.samples, self.reference = samples, reference
        self.offsets: list[float] = []
        self._lock = threading.Lock()

    def locate(self, piece: np.ndarray) -> float:
        n = 1 << (len(self.samples) + len(piece)).bit_length()
        corr = np.fft.irfft(np.fft.rfft(self.samples, n) * np.conj(np.fft.rfft(piece, n)), n)
        return int(np.argmax(corr[: len(self.samples)])) / SAMPLE_RATE

    def openai(self, data: bytes, fields: dict[str, list[str]]) -> Transcript:
        from subtitler.transcript import Segment, Word

        piece = decode_upload(data)
        offset = self.locate(piece)
        end = offset + len(piece) / SAMPLE_RATE
        with self._lock:
            self.offsets.append(offset)
        words = [Word(w["start"] - offset, w["end"] - offset, " " + w["text"])
                 for w in self.reference["words"] if offset <= (w["start"] + w["end"]) / 2 < end]
        text = "".join(w.text for w in words)
        segments = [Segment(words[0].start, words[-1].end, text, words)] if words else []
        return Transcript("en", len(piece) / SAMPLE_RATE, segments)
