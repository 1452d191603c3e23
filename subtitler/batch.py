"""Many inputs, unattended: skip what is up to date, reuse cached transcripts, overlap the work.

For each input the batch decides, cheapest first:

1. up to date: every output exists and its manifest entry (manifest.py) says
   it was made from this very file with these settings: nothing to do;
2. render: a transcript of this audio with these transcription settings is
   in the cache (cache.py): lay it out and write the files, no decoding;
3. transcribe: decode, run the engine, cache the transcript, write.

Work flows one way through a small bounded pipeline: audio for the next
inputs is decoded in the background while the engine works on the current
one, and at most `window` decoded inputs wait at any time, so memory stays
bounded whatever the number of files. Local engines run one input at a time
(the model is loaded once); backends that work on several files at once
(remote services) get `jobs` inputs in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import manifest
from .backends import Backend, get_backend_class, status_reporter
from .cache import Cache, audio_hash
from .errors import EmptyAudio, InputNotFound, NoAudioStream, NotMedia, OutputError, SubtitlerError
from .files import atomic_write, sha256
from .inputs import Input
from .media import Audio
from .pipeline import OnProgress, Subtitler, input_facts, is_transcript_file, place, settings_digest
from .transcript import Transcript

# Failures that depend only on the file's bytes: remembered, so a re-run does not decode it again.
UNDECODABLE = (NotMedia, NoAudioStream, EmptyAudio)

# What a batch decides for an input, and how it ends.
UP_TO_DATE, RENDER, TRANSCRIBE = "up-to-date", "render", "transcribe"
DONE, RENDERED, FAILED, SKIPPED = "done", "rendered", "failed", "skipped"


@dataclass
class Outcome:
    input: Input
    # up-to-date | render | transcribe (planned, or for --dry-run), then done | rendered | failed | skipped.
    status: str
    outputs: list[Path] = field(default_factory=list)
    language: str | None = None
    duration: float | None = None
    # Seconds spent per stage: decode, transcribe, write, total...
    timings: dict[str, float] = field(default_factory=dict)
    # ...and when each ran: (start, end) in seconds from the start of the run.
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str | None = None
    exit_code: int | None = None

    @property
    def decoded(self) -> bool:
        return "decode" in self.timings

    def to_dict(self) -> dict[str, Any]:
        return {"input": str(self.input), "status": self.status,
                "outputs": [str(p) for p in self.outputs], "language": self.language,
                "duration": self.duration, "decoded": self.decoded,
                "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "spans": {k: list(v) for k, v in self.spans.items()},
                "error": self.error, "exit_code": self.exit_code}


@dataclass
class Plan:
    input: Input
    targets: list[Path]
    action: str
    file_hash: str | None = None
    settings: str = ""  # digest of all the settings, as recorded in the manifest
    # The transcripts, when the cache (or a transcript .json input) already has them.
    transcripts: list[Transcript] | None = None


# Called as events happen, from any thread: ("start", outcome) before an input's work,
# ("end", outcome) after; while it runs ("progress", outcome, stage, done, total) and
# ("status", outcome, message) for a remote job's states; ("model", outcome, True) while the
# model loads (with the first input to transcribe), ("model", outcome, False) once loaded.
OnEvent = Callable[..., None]


class Batch:
    def __init__(self, pipeline: Subtitler, *, cache: Cache | None = None, force: bool = False,
                 fail_fast: bool = False, jobs: int = 1,
                 on_event: OnEvent | None = None) -> None:
        self.pipeline = pipeline
        self.cache = cache
        self.force, self.fail_fast, self.jobs = force, fail_fast, jobs
        self.on_event = on_event or (lambda *args: None)
        self.stopped = threading.Event()  # --fail-fast tripped, or interrupted
        self.finished: list[Outcome] = []  # as they end, for a report after Ctrl-C
        self._t0 = time.perf_counter()
        self._prepares = False
        self._manifests = manifest.Reader()  # for planning: nothing is written yet
        self.summary = pipeline.settings_summary()
        # Recorded in the manifest for each output; check --require-subs compares with it.
        self.settings_digest = settings_digest(self.summary)

    # -- planning -------------------------------------------------------------------

    def folder_for(self, item: Input) -> Path | None:
        """Outputs of `item` go here: its mirror under the pipeline's output_dir (-o), or None
        (beside the input)."""
        if self.pipeline.output_dir is None:
            return item.folder
        return self.pipeline.output_dir / item.relative.parent

    def plan(self, item: Input) -> Plan | Outcome:
        """What `item` needs; an Outcome if it cannot be planned (a missing file...)."""
        try:
            targets = self.pipeline.targets(item.path, self.folder_for(item))
            if not item.path.is_file():
                raise InputNotFound(f"{item.path}: no such file" + (
                    " (a symlink to nothing, or a loop)" if item.path.is_symlink() else ""))
            # Hashed even without the cache (--no-cache, transcripts, render): every output is
            # recorded in the manifest, so running the same command again is never an error.
            file_hash = self.cache.file_hash(item.path) if self.cache else sha256(item.path)
            plan = Plan(item, targets, TRANSCRIBE, file_hash, self.settings_digest)
            if is_transcript_file(item.path):
                plan.action = RENDER
            if self.cache and not self.force and plan.action == TRANSCRIBE:
                failed = self.cache.failure(file_hash, self.pipeline.audio_stream)
                if failed:  # the same bytes cannot decode now either
                    return Outcome(item, FAILED, error=f"{item.path}: {failed['detail']} (as in an earlier "
                                   "run; --force tries again)", exit_code=failed["exit_code"])
            if not self.force and self._up_to_date(plan):
                plan.action = UP_TO_DATE
            elif plan.action == RENDER:
                plan.transcripts = [Transcript.load(item.path)]
            elif self.cache and not self.force:
                known = self.cache.input_of(file_hash, self.pipeline.audio_stream)
                if known:
                    audio, facts = known
                    heard = self.cache.transcripts(self._transcript_key(audio))
                    if heard is not None:  # the audio's transcripts, made this file's
                        plan.transcripts = [place(t, facts) for t in heard]
                        plan.action = RENDER
            if plan.action != UP_TO_DATE and self.pipeline.video:
                self.pipeline.check_video(item.path, targets[-1])  # before any work on it
            return plan
        except SubtitlerError as e:
            return Outcome(item, FAILED, error=str(e), exit_code=e.exit_code)
        except OSError as e:
            return Outcome(item, FAILED, error=f"{item.path}: cannot read ({e.strerror or e})", exit_code=3)

    def _up_to_date(self, plan: Plan) -> bool:
        for target in plan.targets:
            entry = self._manifests.entry(target)
            if (entry is None or entry.pending or entry.settings != plan.settings
                    or entry.source_sha256 != plan.file_hash or not target.is_file()):
                return False
        return True

    def _transcript_key(self, audio: str) -> str:
        return Cache.transcript_key(audio, self.summary["transcription"])

    # -- running --------------------------------------------------------------------

    def run(self, items: list[Input], dry_run: bool = False) -> list[Outcome]:
        """Plan every input, then do the work; outcomes come back in input order."""
        self._t0 = time.perf_counter()
        self._manifests = manifest.Reader()  # as they are now, before this run writes any
        plans = _without_collisions([self.plan(item) for item in items])
        if dry_run:
            return [_told(p) if isinstance(p, Outcome) else Outcome(p.input, p.action, p.targets)
                    for p in plans]
        outcomes: list[Outcome | None] = [None] * len(plans)
        needs_engine = [p for p in plans if isinstance(p, Plan) and p.action == TRANSCRIBE]
        if needs_engine:
            # Refuse options the engine would ignore before any work, once.
            self.pipeline.check_options(self.pipeline.tasks())
        engine_class = get_backend_class(self.pipeline.backend) if needs_engine else None
        parallel = bool(engine_class and engine_class.parallel_files)
        # Only backends with their own prepare: the others' model must not load in a decode thread.
        self._prepares = bool(engine_class and engine_class.prepare is not Backend.prepare)
        engine_workers = self.jobs if parallel else 1
        # Decoded ahead: for local engines the next file or two; for remote ones a whole round
        # of --jobs files, so the slots freed together start uploading at once.
        ahead = engine_workers if parallel else max(1, min(self.jobs, 4))
        # Decoding is ffmpeg's work: as many at once as --jobs asks, each a core's worth. Next to
        # a local engine it runs at a lower priority: the engine is the critical path.
        decoders = ThreadPoolExecutor(max(1, min(self.jobs, 4)), thread_name_prefix="decode",
                                      initializer=None if parallel else _lower_priority)
        engines = ThreadPoolExecutor(engine_workers, thread_name_prefix="engine")
        # Inputs decoded or being decoded, not yet finished: bounds memory.
        window = threading.BoundedSemaphore(engine_workers + ahead)
        futures: list[tuple[int, Future[Outcome]]] = []
        try:
            for n, plan in enumerate(plans):
                if self.stopped.is_set():
                    break
                if isinstance(plan, Outcome):
                    self._finish(plan)
                    outcomes[n] = plan
                    continue
                if plan.action != TRANSCRIBE:
                    outcomes[n] = self._quick(plan)
                    continue
                while not window.acquire(timeout=0.1):  # stays responsive to Ctrl-C
                    pass
                if self.stopped.is_set():
                    window.release()
                    break
                outcome = Outcome(plan.input, TRANSCRIBE)
                audio = decoders.submit(self._decode, plan, outcome)
                if not futures:
                    # The model loads here, once, while the first file decodes; a model that
                    # cannot load stops the run with its own error, not once per input.
                    self.on_event("model", outcome, True)  # the display shows it as a stage
                    self.pipeline.engine  # noqa: B018
                    self.on_event("model", outcome, False)
                futures.append((n, engines.submit(self._transcribe, plan, outcome, audio, window)))
            for n, future in futures:
                outcomes[n] = future.result()
        except BaseException:
            self.stopped.set()
            decoders.shutdown(wait=False, cancel_futures=True)
            engines.shutdown(wait=False, cancel_futures=True)
            raise
        decoders.shutdown()
        engines.shutdown()
        return [o if o is not None else Outcome(p.input, SKIPPED)
                for o, p in zip(outcomes, plans, strict=True)]

    def _finish(self, outcome: Outcome) -> Outcome:
        _told(outcome)
        if outcome.status == FAILED and self.fail_fast:
            self.stopped.set()
        self.finished.append(outcome)
        self.on_event("end", outcome)
        return outcome

    @contextlib.contextmanager
    def _timed(self, outcome: Outcome, stage: str) -> Iterator[None]:
        """Time a stage: its seconds, and when it ran (from the start of the run), for the report."""
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            outcome.timings[stage] = end - start
            outcome.spans[stage] = (round(start - self._t0, 4), round(end - self._t0, 4))

    def _quick(self, plan: Plan) -> Outcome:
        """Up to date, or only rendering: no decoding, no engine."""
        outcome = Outcome(plan.input, plan.action)
        if plan.action == UP_TO_DATE:
            outcome.outputs = plan.targets
            return self._finish(outcome)
        self.on_event("start", outcome)
        with self._timed(outcome, "total"):
            try:
                assert plan.transcripts is not None
                self._write(plan, plan.transcripts, outcome, None)
                outcome.status = RENDERED
            except SubtitlerError as e:
                outcome.status, outcome.error, outcome.exit_code = FAILED, str(e), e.exit_code
        return self._finish(outcome)

    def _progress(self, outcome: Outcome) -> OnProgress:
        return lambda stage, done, total: self.on_event("progress", outcome, stage, done, total)

    def _decode(self, plan: Plan, outcome: Outcome) -> Audio | None:
        if self.stopped.is_set():
            return None
        with self._timed(outcome, "decode"):
            audio = self.pipeline.decode(plan.input.path, self._progress(outcome))
        if self._prepares and len(audio.samples):  # no samples: no audio stream, nothing to send
            with self._timed(outcome, "prepare"):
                self.pipeline.engine.prepare(audio.samples)
        return audio

    def _transcribe(self, plan: Plan, outcome: Outcome, decoding: Future[Audio | None],
                    window: threading.Semaphore) -> Outcome:
        try:
            if self.stopped.is_set():
                outcome.status = SKIPPED
                return outcome
            self.on_event("start", outcome)
            progress = self._progress(outcome)
            with self._timed(outcome, "total"):
                try:
                    audio = decoding.result()
                    if audio is None:
                        outcome.status = SKIPPED
                        return outcome
                    outcome.duration = audio.duration
                    with self._timed(outcome, "transcribe"), \
                            status_reporter(lambda message: self.on_event("status", outcome, message)):
                        heard = self.pipeline.hear(plan.input.path, audio, self.pipeline.tasks(), progress)
                    facts = input_facts(plan.input.path, audio, self.pipeline.audio_stream)
                    if self.cache and plan.file_hash:
                        # Saved before the outputs: a run killed while writing only renders next time.
                        # On the audio's clock; this file's offset, picture... are kept with its hash.
                        key = audio_hash(audio.samples)
                        self.cache.store(self._transcript_key(key), heard)
                        self.cache.remember_input(plan.file_hash, self.pipeline.audio_stream, key, facts)
                    transcripts = [place(t, facts) for t in heard]
                    del audio  # the samples can go before writing (long inputs are big)
                    self._write(plan, transcripts, outcome, progress)
                    outcome.status = DONE
                except SubtitlerError as e:
                    outcome.status, outcome.error, outcome.exit_code = FAILED, str(e), e.exit_code
                    if isinstance(e, UNDECODABLE) and self.cache and plan.file_hash:
                        self.cache.remember_failure(plan.file_hash, self.pipeline.audio_stream,
                                                    _without_path(str(e), plan.input.path), e.exit_code)
            return self._finish(outcome)
        finally:
            window.release()

    def _write(self, plan: Plan, transcripts: list[Transcript], outcome: Outcome,
               progress: OnProgress | None) -> None:
        """Write the outputs, with their manifest entries pending first and complete after."""
        with self._timed(outcome, "write"):
            assert plan.file_hash is not None
            result = self.pipeline.write_recorded(plan.input.path, transcripts, plan.targets, plan.file_hash,
                                                  progress, self.summary)
            outcome.outputs = [*result.outputs, *([result.video] if result.video else [])]
            outcome.language = result.transcript.language
            outcome.duration = outcome.duration or result.transcript.duration


def _told(outcome: Outcome) -> Outcome:
    """The outcome, its error naming the input as the user gave it (stdin: not a temporary path)."""
    outcome.error = outcome.input.told(outcome.error) if outcome.error else None
    return outcome


def _without_path(message: str, path: Path) -> str:
    """An error's message without the path it starts with, to be told again under another name."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _without_collisions(plans: list[Plan | Outcome]) -> list[Plan | Outcome]:
    """An input whose outputs an earlier input already writes (clip.mp4 and clip.mkv side by
    side both make clip.srt) fails instead of overwriting them."""
    writers: dict[Path, Input] = {}
    checked: list[Plan | Outcome] = []
    for plan in plans:
        if isinstance(plan, Plan):
            taken = [(t, writers[t.resolve()]) for t in plan.targets if t.resolve() in writers]
            if taken:
                target, other = taken[0]
                plan = Outcome(plan.input, FAILED, exit_code=OutputError.exit_code,
                               error=f"{plan.input.path}: {target} is already the output of {other.path} "
                                     "(rename one, or use -o)")
            else:
                writers.update((t.resolve(), plan.input) for t in plan.targets)
        checked.append(plan)
    return checked


def _lower_priority() -> None:
    """Nice this thread (on Linux a thread's own attribute), and so the ffmpeg it starts."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def write_report(path: Path, outcomes: list[Outcome], batch: Batch, started: float,
                 interrupted: bool = False) -> None:
    """The run as JSON: settings, a summary, and every input's outcome (atomically written)."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    data = {
        "schema": "subtitler.report", "version": 1,
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3), "interrupted": interrupted,
        "settings": batch.summary,
        "summary": {"inputs": len(outcomes), **counts,
                    "decoded": sum(o.decoded for o in outcomes),
                    "media_seconds": round(sum(o.duration or 0.0 for o in outcomes if o.decoded), 3)},
        "inputs": [o.to_dict() for o in outcomes],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    # backslashreplace: a file name that is not UTF-8 is written as JSON's \udcff escape.
    atomic_write(path, text.encode("utf-8", "backslashreplace"))

