"""What happens during a run, as typed events on one channel.

Jobs, batches and engines tell what they do by emitting events; whoever
shows or records them is a sink (any callable taking an event): the
terminal's bars, the log lines, the JSON report, a server's job record.

    Started     an input's work begins (its planned action)
    StageStarted, StageEnded
                a stage (decode, transcribe, mux...) begins, ends (with its seconds)
    Progress    seconds of media done in the current stage
    JobStatus   a remote job's state ("job 3f2a: processing")
    Warned      something the user should know (no speech found, glyphs missing...)
    Finished    an input's outcome

Engines get a `Report` bound to their input: `report.progress(seconds)`,
`report.status(text)`, `report.warning(text)`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Stage(str, Enum):
    LOAD_MODEL = "loading model"
    DECODE = "decode"
    PREPARE = "prepare"
    VAD = "vad"
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"
    WRITE = "write"
    MUX = "mux"
    BURN = "burn"

    def __str__(self) -> str:
        return self.value


class Status(str, Enum):
    """What a job plans for an input (the first three), then how it ends."""

    UP_TO_DATE = "up-to-date"
    RENDER = "render"
    TRANSCRIBE = "transcribe"
    DONE = "done"
    RENDERED = "rendered"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


# The input an event is about: an inputs.Input, or None for the run's own (the model loading).
Subject = Any


@dataclass(frozen=True)
class Started:
    input: Subject
    action: Status


@dataclass(frozen=True)
class StageStarted:
    input: Subject
    stage: Stage
    # Seconds of media the stage goes through; 0 when it has none to count (a model loading).
    total: float = 0.0


@dataclass(frozen=True)
class StageEnded:
    input: Subject
    stage: Stage
    seconds: float


@dataclass(frozen=True)
class Progress:
    input: Subject
    stage: Stage
    done: float
    total: float


@dataclass(frozen=True)
class JobStatus:
    input: Subject
    message: str


@dataclass(frozen=True)
class Warned:
    input: Subject
    message: str


@dataclass(frozen=True)
class Finished:
    outcome: Any  # job.Outcome


Event = Started | StageStarted | StageEnded | Progress | JobStatus | Warned | Finished
Sink = Callable[[Event], None]


class Events:
    """The channel: every event goes to every sink, in order, from whichever thread emits it."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks = list(sinks)
        self._lock = threading.RLock()  # a sink may emit in turn

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def __call__(self, event: Event) -> None:
        with self._lock:  # sinks see one event at a time: a display's lines never interleave
            for sink in self.sinks:
                sink(event)

    def report(self, input: Subject, stage: Stage, total: float = 0.0) -> Report:
        return Report(self, input, stage, total)


class Report:
    """What an engine tells while it transcribes one input: progress in seconds of audio, a
    remote job's states, warnings. Every method is safe to call from any thread, and does
    nothing when nobody listens."""

    def __init__(self, emit: Sink | None = None, input: Subject = None,
                 stage: Stage = Stage.TRANSCRIBE, total: float = 0.0) -> None:
        self._emit = emit
        self.input, self.stage, self.total = input, stage, total

    def progress(self, seconds: float) -> None:
        """`seconds` of the audio are done."""
        if self._emit:
            self._emit(Progress(self.input, self.stage, seconds, self.total))

    def progress_of(self, done: float, total: float) -> None:
        """`done` of `total` seconds: for a stage whose length is known only as it runs (decode,
        mux, burn)."""
        self.total = total
        self.progress(done)

    def status(self, message: str) -> None:
        """The work changed state ("uploading 1.2 MB", "job 3f2a: processing")."""
        if self._emit:
            self._emit(JobStatus(self.input, message))

    def warning(self, message: str) -> None:
        """Something the user should know; the run goes on."""
        if self._emit:
            self._emit(Warned(self.input, message))

    def stage_started(self, stage: Stage) -> None:
        """A step inside the engine begins (voice activity detection before decoding)."""
        if self._emit:
            self._emit(StageStarted(self.input, stage, self.total))

    def shifted(self, seconds: float) -> Report:
        """This report for a piece of the audio starting `seconds` in: its progress, told in the
        piece's seconds, is told in the whole audio's."""
        return _Shifted(self, seconds)


class _Shifted(Report):
    """A report's view for a piece of the audio: progress moved by the piece's start."""

    def __init__(self, report: Report, offset: float) -> None:
        super().__init__(None, report.input, report.stage, report.total)
        self.report, self.offset = report, offset

    def progress(self, seconds: float) -> None:
        self.report.progress(self.offset + seconds)

    def status(self, message: str) -> None:
        self.report.status(message)

    def warning(self, message: str) -> None:
        self.report.warning(message)

    def stage_started(self, stage: Stage) -> None:
        self.report.stage_started(stage)


class SubtitlerWarning(UserWarning):
    """A warning of subtitler's, as Python code using it without a sink gets it."""


def python_warnings(event: Event) -> None:
    """A sink for Python code: Warned events as Python warnings (`warnings.warn`)."""
    if isinstance(event, Warned):
        warnings.warn(event.message, SubtitlerWarning, stacklevel=2)


def progress_callback(on_progress: Callable[[str, float, float], None]) -> Sink:
    """A sink calling `on_progress(stage, done, total)`, as subtitle(on_progress=...) did in 0.2."""

    def sink(event: Event) -> None:
        if isinstance(event, Progress):
            on_progress(str(event.stage), event.done, event.total)

    return sink
