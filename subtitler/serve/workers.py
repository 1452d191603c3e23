"""The workers: engines loaded once, threads that take jobs from the queue and run them.

Each job runs through subtitler's own job path (job.Job), as a file given to
the command line would: the upload is decoded by ffmpeg, VAD and the
hallucination guards apply, the transcript cache answers audio already heard
with the same settings. Inference happens in these threads only, never on
the server's event loop, so /health answers while every worker is busy.

`--workers N` jobs run at once. A local engine is not shared between threads
(its backend says so: `parallel_files`), so each worker gets its own, loaded
once at start-up; a remote backend's one client serves them all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..backends import Backend
from ..cache import Cache
from ..config import Config
from ..errors import SubtitlerError
from ..job import Job, single_input
from ..options import DecodeOptions
from ..specs import JobSpec, OutputSpec, TranscriptionSpec
from ..whisper_compat import to_whisper_result
from .store import Store

log = logging.getLogger("subtitler.serve")
T = TypeVar("T")


class Workers:
    def __init__(self, store: Store, spec: JobSpec, count: int, *, cache: Cache | None,
                 config: Config | None = None, engines: list[Backend] | None = None) -> None:
        """`spec`: the server's engine and default options; `engines`: already loaded ones to use."""
        self.store, self.count, self.cache = store, count, cache
        # Transcripts only: no files are rendered, no manifest is written (the profile and style
        # stay: the APIs that answer subtitles render them).
        self.spec = dataclasses.replace(spec, render=dataclasses.replace(spec.render, formats=(), video=None),
                                        output=OutputSpec(None, overwrite=True, record=False))
        self.base = Job(self.spec, cache=cache, config=config)
        self.engines: list[Backend] = list(engines or [])  # given ones: used instead of loading
        self._load_lock = threading.Lock()
        self.loaded: list[Backend] = []  # each worker's engine, as it got it
        self._to_load = count
        self.ready = threading.Event()  # every engine is loaded
        self.error: SubtitlerError | None = None  # an engine that could not load
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.running: dict[str, int] = {}  # job id -> worker
        self.audio_seconds = [0.0] * count  # per worker, for /metrics
        self.busy_seconds = [0.0] * count
        self.draining = False  # stopping: no job is started any more
        self.threads: list[threading.Thread] = []

    def check(self) -> None:
        """Refuse a backend that is not installed, or options it cannot honour, before serving."""
        self.base.check_engine()

    def start(self, on_error: Any = None) -> None:
        """Start the workers: each loads its engine, then takes jobs (the server answers /health
        meanwhile). `on_error(e)` is called if an engine cannot load."""
        for job_id in self.store.recover():
            self.queue.put(job_id)
        for n in range(self.count):
            thread = threading.Thread(target=self._work, args=(n, on_error), name=f"serve-worker-{n}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _engine(self, n: int) -> Backend:
        """Worker n's engine, loaded in the worker's own thread: faster-whisper run from another
        thread than the one that loaded it (once that one has ended) was 20 times slower here."""
        with self._load_lock:  # one load at a time
            if self.engines:
                engine = self.engines[n % len(self.engines)]
            elif n == 0 or self.base.backend_class.parallel_files:
                engine = self.base.engine  # loaded once, in the first worker to get here
            else:
                engine = self.base.backend_class(self.spec.transcription.engine, self.base.backend_settings)
            engine.ready()  # a cluster's engine (--cluster): its first actor has loaded
            self.loaded.append(engine)
            self._to_load -= 1
            if not self._to_load:
                self.ready.set()
            return engine

    def stop(self) -> None:
        for _ in range(self.count):
            self.queue.put(None)

    def drain(self, grace: float) -> bool:
        """Start no more jobs; wait up to `grace` seconds for the running ones to end. Whether they
        all did (the jobs not started stay pending in the store, for the next start)."""
        self.draining = True
        self.stop()  # wakes the idle workers
        deadline = time.monotonic() + grace
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def submit(self, job_id: str) -> None:
        self.queue.put(job_id)

    def _work(self, n: int, on_error: Any) -> None:
        _lower_priority()
        try:
            engine = self._engine(n)
        except SubtitlerError as e:  # the server stops with it (/ready says it meanwhile)
            self.error = e
            if on_error:
                on_error(e)
            return
        while True:
            job_id = self.queue.get()
            if job_id is None or self.draining:
                return
            row = self.store.claim(job_id)
            if row is None:
                continue  # cancelled while it waited
            self.running[job_id] = n
            started = time.monotonic()
            try:
                self.audio_seconds[n] += self._run(row, engine)
            except Exception as e:  # a bug must fail the job, not the worker
                log.exception("job %s: unexpected error", job_id)
                self.store.fail(job_id, f"internal error: {type(e).__name__}")
            finally:
                self.busy_seconds[n] += time.monotonic() - started
                self.running.pop(job_id, None)

    def _run(self, row: dict[str, Any], engine: Backend) -> float:
        """Run the job; the seconds of audio it transcribed."""
        upload = self.store.upload(row["upload"])
        path = self.store.upload_path(upload) if upload else None
        if path is None or not path.is_file():
            self.store.fail(row["id"], "the upload is gone")
            return 0.0
        options = DecodeOptions(**json.loads(row["options"]))
        spec = dataclasses.replace(self.spec, transcription=TranscriptionSpec(
            self.spec.transcription.engine, 0, options))
        job = Job(spec, engine=engine, cache=self.cache, config=self.base.config, want_transcripts=True)
        try:
            outcome = job.run(single_input(path))
        except SubtitlerError as e:  # options the engine refuses
            outcome = None
            message = str(e)
        if outcome is not None and outcome.exception is None and outcome.transcripts:
            cached = str(outcome.status) == "rendered"  # the transcript cache had it: no engine ran
            self.store.succeed(row["id"], to_whisper_result(outcome.transcripts[-1]),
                               "answered from the transcript cache" if cached else None)
            log.info("job %s: %s", row["id"], outcome.status)
            return outcome.transcripts[-1].duration
        if outcome is not None:
            message = outcome.error or "the job failed"
        # The server's file names are none of the client's business: "the upload: not media...".
        self.store.fail(row["id"], message.replace(str(path), "the upload"))
        log.info("job %s: failed", row["id"])
        return 0.0


WORKER_NICENESS = 10


async def in_background(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a thread of low priority, as the workers' (for a request's heavy lifting: ffprobe
    on an upload), so that it does not slow the event loop's answers."""
    global _background
    if _background is None:
        _background = ThreadPoolExecutor(4, "serve-background", initializer=_lower_priority)
    return await asyncio.get_running_loop().run_in_executor(_background, functools.partial(fn, *args))


_background: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    """This thread, and the engine's threads and ffmpeg processes it starts, yield the CPU to the event
    loop: with every core busy transcribing, /health and polls still answer in milliseconds (Linux
    keeps a niceness per thread; elsewhere this does nothing)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
    except (AttributeError, OSError):
        pass
