"""Many inputs, unattended: the one job path (job.py), scheduled so the work overlaps.

What each input needs (up to date, render, transcribe) and doing it is the
job's; a batch only schedules it. Work flows one way through a small bounded
pipeline: audio for the next inputs is decoded in the background while the
engine works on the current one, and at most `window` decoded inputs wait at
any time, so memory stays bounded whatever the number of files. Local engines
run one input at a time (the model is loaded once); backends that work on
several files at once (remote services) get `jobs` inputs in flight.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .cache import Cache
from .errors import OutputError, SubtitlerError
from .events import Event, Events, Finished, Sink, Started, Status
from .inputs import Input
from .job import Job, Outcome, Plan, is_transcript_file
from .pipeline import Subtitler

# 0.2's names for the statuses (they compare equal to the enum's values).
UP_TO_DATE, RENDER, TRANSCRIBE = Status.UP_TO_DATE, Status.RENDER, Status.TRANSCRIBE
DONE, RENDERED, FAILED, SKIPPED = Status.DONE, Status.RENDERED, Status.FAILED, Status.SKIPPED

__all__ = ["Batch", "Outcome", "Plan"]


class Batch:
    """Runs many inputs through one job. `source`: a Subtitler (its settings and engine) or a Job.

    `cache`: the transcript cache (None: none); `force`: transcribe again what is up to date or
    cached; `fail_fast`: stop at the first failure; `jobs`: inputs in flight (remote engines) or
    decoded at once (local ones); `events`: sinks for what happens (events.py).
    """

    def __init__(self, source: Subtitler | Job, *, cache: Cache | None = None, force: bool = False,
                 fail_fast: bool = False, jobs: int = 1, events: Events | Sink | None = None) -> None:
        base = source.job if isinstance(source, Subtitler) else source
        # The source's own sinks (a Subtitler's warnings...) hear the batch too.
        given = events.sinks if isinstance(events, Events) else [events] if events else []
        self.events = Events([*base.events.sinks, *given, self._seen])
        self.job = base.derive(cache=cache, force=force, events=self.events)
        self.fail_fast, self.jobs = fail_fast, jobs
        self.stopped = threading.Event()  # --fail-fast tripped, or interrupted
        self.finished: list[Outcome] = []  # as they end, for a report after Ctrl-C
        self.report_extra: dict[str, Any] = {}  # more sections for --report: name -> () -> data

    @property
    def summary(self) -> dict[str, Any]:
        return self.job.summary

    def _seen(self, event: Event) -> None:
        if isinstance(event, Finished):
            self.finished.append(event.outcome)
            if event.outcome.status == Status.FAILED and self.fail_fast:
                self.stopped.set()

    def run(self, items: list[Input], dry_run: bool = False) -> list[Outcome]:
        """Plan every input, then do the work; outcomes come back in input order."""
        job = self.job
        job.refresh()  # the manifests as they are now, before this run writes any
        if not all(is_transcript_file(item.path) for item in items):
            job.summary  # noqa: B018  # an unknown backend or a bad setting: one error, before any work
        plans = _without_collisions([job.plan(item) for item in items])
        if dry_run:
            return [job.finish(p) if isinstance(p, Outcome) else Outcome(p.input, p.action, p.targets)
                    for p in plans]
        outcomes: list[Outcome | None] = [None] * len(plans)
        needs_engine = any(isinstance(p, Plan) and p.action == TRANSCRIBE for p in plans)
        if needs_engine:
            job.check_engine()  # an engine that cannot run, or options it would ignore: before any work
        parallel = needs_engine and job.backend_class.parallel_files
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
                    outcomes[n] = job.finish(plan)
                    continue
                if plan.action != TRANSCRIBE:
                    outcomes[n] = job.render(plan)
                    continue
                while not window.acquire(timeout=0.1):  # stays responsive to Ctrl-C
                    pass
                if self.stopped.is_set():
                    window.release()
                    break
                outcome = Outcome(plan.input, TRANSCRIBE)
                audio = decoders.submit(self._decode, plan, outcome)
                if not futures:
                    # The model loads here, once, while the first file decodes (on a cluster: its
                    # first actor's); a model that cannot load stops the run with its own error,
                    # not once per input.
                    job.engine.ready()
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

    def _decode(self, plan: Plan, outcome: Outcome) -> tuple[Any, Any] | None:
        if self.stopped.is_set():
            return None
        return self.job.decode(plan, outcome)

    def _transcribe(self, plan: Plan, outcome: Outcome, decoding: Future[tuple[Any, Any] | None],
                    window: threading.Semaphore) -> Outcome:
        try:
            if self.stopped.is_set():
                outcome.status = SKIPPED
                return outcome
            self.events(Started(plan.input, TRANSCRIBE))
            with self.job.timed(outcome, "total"):
                try:
                    decoded = decoding.result()
                    if decoded is None:
                        outcome.status = SKIPPED
                        return outcome
                    audio, prepared = decoded
                    del decoded
                    self.job.transcribe(plan, outcome, audio, prepared)
                    del audio
                except SubtitlerError as e:
                    self.job.failed(plan, outcome, e)
            return self.job.finish(outcome)
        finally:
            window.release()


def _without_collisions(plans: list[Plan | Outcome]) -> list[Plan | Outcome]:
    """An input whose outputs an earlier input already writes (clip.mp4 and clip.mkv side by
    side both make clip.srt) fails instead of overwriting them."""
    writers: dict[Path, Input] = {}
    checked: list[Plan | Outcome] = []
    for plan in plans:
        if isinstance(plan, Plan):
            # Names that depend on a language not heard yet count as they are ({lang} in them).
            claims = plan.claims or plan.targets
            taken = [(t, writers[t.resolve()]) for t in claims if t.resolve() in writers]
            if taken:
                target, other = taken[0]
                plan = Outcome(plan.input, FAILED, exit_code=OutputError.exit_code,
                               error=f"{plan.input.path}: {target} is already the output of {other.path} "
                                     "(rename one, or use -o)")
            else:
                writers.update((t.resolve(), plan.input) for t in claims)
        checked.append(plan)
    return checked


def _lower_priority() -> None:
    """Nice this thread (on Linux a thread's own attribute), and so the ffmpeg it starts."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
