"""For plugin authors' tests (and hosts'): a small fake backend, a report that records, a
contract check, and a way to install a plugin for a `subtitler` subprocess.

    from subtitler.testing import FakeBackend, check_transcribe, install_plugin

    def test_my_backend_keeps_the_contract(audio):
        transcript, report = check_transcribe(MyBackend(EngineSpec("mine")), audio)
        assert report.progress  # it told how far it got

`FakeBackend` hears one word per stretch of sound ("word0", "word1"...), timed
where the sound is: deterministic, instant, no model. Use it where a test is
about what happens around an engine (a host, a formatter, a batch), not about
speech recognition.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from .backends import API_VERSION, Backend, Setting
from .events import Report
from .media import SAMPLE_RATE
from .options import DecodeOptions
from .transcript import Segment, Transcript, Word

__all__ = ["FakeBackend", "RecordingReport", "check_transcribe", "install_plugin"]

# 20 ms frames; a frame louder than this (RMS, full scale 1.0) is sound.
_FRAME = SAMPLE_RATE // 50
_LOUD = 0.01


class FakeBackend(Backend):
    """One word per stretch of sound, named `word` setting + its number: no model, no weights."""

    api_version = API_VERSION
    name = "fake"
    description = "subtitler.testing's fake: one word per stretch of sound"
    supported_options = frozenset({"language", "task", "vad"})
    default_model = "fake"
    auto_priority = None  # only when named
    declared_settings = (Setting("word", "SUBTITLER_FAKE_WORD", "word", help="What the words are called"),)

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        words = []
        for n, (start, end) in enumerate(sound_regions(audio)):
            words.append(Word(start, end, f" {self.settings['word']}{n}"))
            report.progress(end)
        report.progress(duration)
        text = "".join(w.text for w in words)
        segments = [Segment(words[0].start, words[-1].end, text, words)] if words else []
        return Transcript(options.language or "en", duration, segments,
                          {"backend": self.name, "model": self.model_name, "options": options.to_dict()})


def sound_regions(audio: np.ndarray, min_gap: float = 0.2) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of sound, stretches closer than `min_gap` joined."""
    frames = len(audio) // _FRAME
    if not frames:
        return []
    rms = np.sqrt(np.mean(np.square(audio[: frames * _FRAME].reshape(frames, _FRAME)), axis=1))
    loud = np.flatnonzero(rms > _LOUD)
    regions: list[list[float]] = []
    for f in loud:
        start, end = f * _FRAME / SAMPLE_RATE, (f + 1) * _FRAME / SAMPLE_RATE
        if regions and start - regions[-1][1] < min_gap:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    return [(a, b) for a, b in regions]


class RecordingReport(Report):
    """A Report that keeps what the engine told: progress seconds, status lines, warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_seconds: list[float] = []
        self.statuses: list[str] = []
        self.warnings: list[str] = []

    def progress(self, seconds: float) -> None:
        self.progress_seconds.append(seconds)

    def status(self, message: str) -> None:
        self.statuses.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def check_transcribe(backend: Backend, audio: np.ndarray, options: DecodeOptions | None = None,
                     prepared: Any = None) -> tuple[Transcript, RecordingReport]:
    """Run `backend.transcribe` as the core does and check what the contract asks of the answer:
    a Transcript, the audio's duration, segments and words in order inside it, finite times,
    progress that never goes back nor past the end. Returns the transcript and what it told."""
    options = options or DecodeOptions()
    type(backend).check_options(options)
    report = RecordingReport()
    transcript = backend.transcribe(audio, options, report, prepared)
    duration = len(audio) / SAMPLE_RATE
    assert isinstance(transcript, Transcript), f"transcribe returned {type(transcript).__name__}"
    assert math.isclose(transcript.duration, duration, abs_tol=0.05), \
        f"duration {transcript.duration} is not the audio's {duration}"
    last = 0.0
    for s in transcript.segments:
        assert math.isfinite(s.start) and math.isfinite(s.end) and 0 <= s.start <= s.end <= duration + 0.05, \
            f"segment {s.start}-{s.end} outside 0-{duration}"
        assert s.start >= last - 0.05, f"segments out of order at {s.start}"
        last = s.start
        for w in s.words:
            assert w.text[:1].isspace() or not w.text, f"word {w.text!r} has no leading space"
            assert s.start - 0.05 <= w.start <= w.end <= s.end + 0.05, f"word {w.text!r} outside its segment"
    steps = report.progress_seconds
    assert all(b >= a - 1e-6 for a, b in zip(steps, steps[1:], strict=False)), f"progress went back: {steps}"
    assert all(0 <= p <= duration + 0.05 for p in steps), f"progress past the end: {steps}"
    return transcript, report


def install_plugin(site: Path, module: str, source: str, entry: str, dist: str | None = None) -> None:
    """Install a plugin module the way pip would, under `site` (a folder for PYTHONPATH): the
    module, and a .dist-info whose entry_points.txt registers `entry` ("name = module:Class") in
    the `subtitler.backends` group. A `subtitler` subprocess with `site` on PYTHONPATH finds it."""
    dist = dist or module
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[subtitler.backends]\n{entry}\n")
