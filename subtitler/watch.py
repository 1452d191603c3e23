"""`subtitler watch DIR... -o OUT`: keep a folder tree subtitled.

At start, everything in the folders is a candidate (a folder run's catch-up:
what is up to date is skipped by the manifest, what was transcribed before
is rendered from the cache), and from then on every file a change touches:
created, written, moved in or renamed. A candidate is worked on once it has
stopped growing: its size and modification time unchanged for `settle`
seconds (or, seen twice unchanged, last modified `settle` seconds ago: a file
moved in whole). The settled candidates of a moment go through one `Batch`
(batch.py) of one `Job` whose engine loads once for the life of the process:
the same manifest, cache, collisions and report as `subtitler DIR`. A rename
or a copy is rendered from the transcript cache (by content), never heard
again; a deletion does nothing.

Changes come from watchdog's native observer (inotify on Linux) or, with
`poll` or when the native one cannot start (inotify's limits, a platform
without it), from its polling observer, which also sees changes made by other
machines on network file systems. A folder that inotify's watch limit leaves
unwatched, at start or created later, watchdog skips in silence: the kernel's
list of this process's watches (/proc/self/fdinfo) tells, and polling takes over.

Ctrl-C or SIGTERM while waiting stops at once (exit 0); during work, as a
run does (finished files kept, nothing half-written, 130 or 143), and the
next start catches up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from watchdog.events import FileSystemEventHandler

from . import files, manifest, signals
from .batch import Batch
from .cache import Cache
from .errors import SubtitlerError
from .events import Event, Finished, Stage, StageEnded
from .inputs import NOT_MEDIA, Input, _matches, find_inputs, looks_like_media
from .job import Job
from .progress import BatchDisplay, echo, summary
from .report import JsonReport

Log = Callable[[str], None]


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time this size and time were first seen
    looks: int = 1  # times seen with them


@dataclass
class Candidates:
    """Files touched and not worked on yet, each until it has stopped growing (thread-safe: the
    observer's thread adds, the main thread takes)."""

    settle: float
    _seen: dict[Path, _Seen] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def touch(self, path: Path) -> None:
        with self._lock:
            self._seen.setdefault(path, _Seen(-1, -1, time.monotonic(), 0))

    def forget(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)

    def __len__(self) -> int:
        return len(self._seen)

    def settled(self) -> list[tuple[Path, tuple[int, int]]]:
        """The candidates that stopped growing, with the (size, mtime) they settled at; taken out.
        A candidate that is gone, or no longer a file, is dropped."""
        now, wall = time.monotonic(), time.time_ns()
        ready = []
        with self._lock:
            for path, seen in list(self._seen.items()):
                try:
                    st = path.stat()
                except OSError:
                    del self._seen[path]
                    continue
                if not path.is_file():
                    del self._seen[path]
                    continue
                if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
                    self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
                    continue
                seen.looks += 1
                quiet = now - seen.since >= self.settle
                old = seen.looks >= 2 and (wall - st.st_mtime_ns) / 1e9 >= self.settle
                if quiet or old:
                    ready.append((path, (st.st_size, st.st_mtime_ns)))
                    del self._seen[path]
        return ready


def unwatched(folder: Path) -> Path | None:
    """The first folder of `folder`'s tree (hidden ones aside: they hold no inputs) that no
    inotify watch of this process covers. None when all are covered, or when the
    process has no inotify (another platform's observer)."""
    watched = _inotify_inodes()
    if not watched:
        return None
    for root, dirs, _ in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        with contextlib.suppress(OSError):  # gone meanwhile: nothing to watch
            if os.stat(root).st_ino not in watched:
                return Path(root)
    return None


def first_unwatched(folders: Iterable[Path]) -> Path | None:
    """The first folder no inotify watch covers in any of `folders`' trees (unwatched)."""
    return next(filter(None, map(unwatched, folders)), None)


def _inotify_inodes() -> set[int]:
    """The inodes this process's inotify instances watch, as the kernel lists them in
    /proc/self/fdinfo (Linux); empty where there is none."""
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    for line in info:  # inotify wd:3 ino:534014 sdev:fe00000 mask:7fe ...
                        if line.startswith("inotify "):
                            inodes.update(int(p[4:], 16) for p in line.split() if p.startswith("ino:"))
    return inodes


class _Handler(FileSystemEventHandler):
    """watchdog's events as candidates: what was created, written or moved in (a folder: all in it)."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__()
        self.watcher = watcher

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        src = Path(os.fsdecode(event.src_path))
        if kind == "deleted":
            self.watcher.candidates.forget(src)
            return
        if kind == "moved":
            self.watcher.candidates.forget(src)
            src = Path(os.fsdecode(event.dest_path))
        if event.is_directory:
            if kind in ("created", "moved"):
                self.watcher.touch_tree(src)
                self.watcher.new_folders.append(src)
        else:
            self.watcher.touch(src)


class Watcher:
    """Watches `folders` and subtitles what settles in them with `job` (see the module's docstring).

    `include`/`exclude`: as a folder run's; `settle`: seconds a file must stay unchanged; `poll`:
    the polling observer; `report`: a report file rewritten after each batch of work; `log`:
    where its own lines go (stderr).
    """

    def __init__(self, folders: Sequence[Path], job: Job, *, include: Sequence[str] = (),
                 exclude: Sequence[str] = (), settle: float = 5.0, poll: bool = False,
                 cache: Cache | None = None, jobs: int = 1, report: Path | None = None,
                 show: bool = False, log: Log | None = None) -> None:
        self.folders = [Path(f) for f in folders]
        # Deepest first: a file is under the innermost watched folder that holds it.
        self.roots = sorted(((Path(os.path.abspath(f)), f) for f in self.folders),
                            key=lambda root: -len(root[0].parts))
        self.job, self.include, self.exclude = job, include, exclude
        self.candidates = Candidates(settle)
        self.poll, self.cache, self.jobs, self.show = poll, cache, jobs, show
        self.log = log or (lambda line: echo(line, err=True))
        self.started = time.time()
        self.report = JsonReport(report, self.started) if report is not None else None
        self.items: dict[Path, Input] = {}  # every input worked on, its latest Input: for the report
        self.done: dict[Path, tuple[int, int]] = {}  # (size, mtime) each was last worked on at
        self.observer: Any = None
        self.tick = max(0.05, min(0.5, settle / 4))
        self.batch: Batch | None = None
        self.working = False  # a batch is running: a stop now interrupts work
        self.new_folders: list[Path] = []  # folders created or moved in: is each watched?

    # -- what is a candidate ----------------------------------------------------------

    def touch(self, path: Path) -> None:
        """A file changed: a candidate, unless its name says it can be no input (hidden, subtitles)."""
        if path.name.startswith(".") or path.suffix.lower() in NOT_MEDIA:
            return
        self.candidates.touch(path)

    def touch_tree(self, folder: Path) -> None:
        """A folder appeared (created, moved in): every file in it is a candidate."""
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                self.touch(Path(root) / name)

    def input_for(self, path: Path) -> Input | None:
        """`path` as a folder run would take it (None: not one it would subtitle): under which
        watched folder, as its relative path (mirrored under -o), passing the same filters."""
        absolute = Path(os.path.abspath(path))
        found = next(((root, folder) for root, folder in self.roots if absolute.is_relative_to(root)), None)
        if found is None:
            return None
        root, folder = found
        relative = PurePosixPath(absolute.relative_to(root).as_posix())
        if any(part.startswith(".") for part in relative.parts):
            return None
        if (self.include and not _matches(relative, self.include)) or _matches(relative, self.exclude):
            return None
        if path.name in manifest.read(path.parent):  # made by a run (a --mux video)
            return None
        if not looks_like_media(path):
            return None
        return Input(folder / Path(*relative.parts), relative)

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        """Start observing, then take everything there now as a candidate (changes meanwhile are
        not lost: the observer runs first). Settings an engine cannot honour fail now, not when the
        first file arrives (no model is loaded for it)."""
        self.job.summary  # noqa: B018  # an unknown backend or a bad setting
        self.job.check_engine()
        self.observer = self._observer()
        for item in find_inputs([str(f) for f in self.folders], self.include, self.exclude):
            self.candidates.touch(item.path)

    def _observer(self) -> Any:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if not self.poll:
            observer: Any = None
            try:
                observer = Observer()  # inotify's instance limit fails here, its watch limit in start()
                for folder in self.folders:
                    observer.schedule(_Handler(self), str(folder), recursive=True)
                observer.start()
                # A subfolder past the watch limit fails in silence (watchdog skips it): look.
                missed = first_unwatched(self.folders)
                if missed is None:
                    return observer
                why = f"no inotify watch for {missed}: its watch limit reached"
            except OSError as e:  # inotify's watch or instance limit, or none on this platform
                why = e.strerror or str(e)
            self._polling_instead(why)
            if observer is not None:
                with contextlib.suppress(Exception):
                    observer.stop()
        observer = PollingObserver(timeout=self.poll_interval)
        for folder in self.folders:
            observer.schedule(_Handler(self), str(folder), recursive=True)
        observer.start()
        return observer

    @property
    def poll_interval(self) -> float:
        return max(0.2, min(2.0, self.candidates.settle / 2))

    def _polling_instead(self, why: str) -> None:
        self.log(f"subtitler: warning: cannot watch for changes ({why}); polling every "
                 f"{self.poll_interval:g} s instead")

    def check_new_folders(self) -> None:
        """A folder that appeared with no watch (the watch limit reached since the start): whatever
        is written in it would go unseen, so poll from now on, and take everything as a candidate
        again (what was missed meanwhile; the rest is skipped as done or up to date)."""
        new, self.new_folders = self.new_folders, []
        if self.poll or not new:
            return
        missed = first_unwatched(new)
        if missed is not None:  # or a subfolder just made, its watch on its way: look again
            time.sleep(0.2)
            missed = first_unwatched(new)
        if missed is None:
            return
        self.stop()
        self.poll = True
        self._polling_instead(f"no inotify watch for {missed}: its watch limit reached")
        self.observer = self._observer()
        for item in find_inputs([str(f) for f in self.folders], self.include, self.exclude):
            self.candidates.touch(item.path)

    def step(self) -> list[Any]:
        """Work on what has settled; the outcomes ([] when nothing had)."""
        self.check_new_folders()
        items = []
        for path, state in self.candidates.settled():
            if self.done.get(path) == state:
                continue  # touched, not changed (read, or its times set again)
            item = self.input_for(path)
            if item is not None:
                self.done[path] = state
                items.append(item)
        return self.run(items) if items else []

    def run(self, items: list[Input]) -> list[Any]:
        """One batch over `items`, shown and reported as a folder run's."""
        batch = Batch(self.job, cache=self.cache, jobs=self.jobs)
        display = BatchDisplay(len(items), self.show, {id(item): n for n, item in enumerate(items, 1)},
                               detected=self.job.spec.transcription.options.language is None)
        batch.events.add(display)
        batch.events.add(self._told)
        if self.report is not None:
            batch.events.add(self.report)
        for item in items:
            self.items[item.path] = item
        self.batch = batch
        started = time.time()
        self.working = True
        try:
            outcomes = batch.run(items)
            self.working = False
        finally:
            display.close()
        if len(items) > 1:
            echo(summary(outcomes, time.time() - started), err=True)
        self.write_report(outcomes=outcomes)
        return outcomes

    def _told(self, event: Event) -> None:
        """The engine's load, said once: it happens once per process (the proof that it does)."""
        if isinstance(event, StageEnded) and event.stage == Stage.LOAD_MODEL:
            self.log(f"subtitler: watch: engine loaded in {event.seconds:.1f} s")
        elif isinstance(event, Finished):
            event.outcome.transcripts = []  # kept for the report, for as long as the process lives

    def write_report(self, interrupted: bool = False, outcomes: Sequence[Any] = ()) -> None:
        if self.report is not None:
            try:
                items = list(self.items.values())
                self.report.write(items, self.job.summary, interrupted, outcomes)
                live = {id(item) for item in items}  # a file worked on again: only its last outcome
                self.report._outcomes = {k: o for k, o in self.report._outcomes.items() if k in live}
            except OSError as e:
                self.log(f"subtitler: error: {self.report.path}: cannot write the report ({e.strerror or e})")

    def stop(self) -> None:
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer.stop()
                self.observer.join(timeout=2)


def watch(watcher: Watcher) -> None:
    """Run `watcher` until Ctrl-C or SIGTERM; exits the process (see the module's docstring)."""
    try:
        watcher.start()
        names = ", ".join(str(f) for f in watcher.folders)
        how = "polling" if type(watcher.observer).__name__ == "PollingObserver" else "watching"
        watcher.log(f"subtitler: watch: {how} {names} (files settle for {watcher.candidates.settle:g} s)")
        while True:
            watcher.step()
            time.sleep(watcher.tick)
    except SubtitlerError as e:  # before any input's work: the backend or its options
        watcher.stop()
        watcher.log(f"subtitler: error: {e}")
        code = e.exit_code
    except KeyboardInterrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second one must not break the cleanup
            signal.signal(sig, signal.SIG_IGN)
        if watcher.working:
            batch = watcher.batch
            watcher.write_report(True, batch.finished if batch is not None else ())
            files.abandon()  # what threads are writing now: never left half-written
            watcher.log("subtitler: interrupted (finished files are kept; the next start does the rest)")
            code = signals.exit_code()
        else:
            watcher.write_report()
            watcher.log("subtitler: watch: stopped")
            code = 0
        watcher.stop()
    # At once: engine threads may be inside native code, which the interpreter's teardown crashes.
    with contextlib.suppress(Exception):
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
