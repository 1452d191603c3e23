"""Retention: a finished job's result and upload, and uploads no job used, deleted after --retention.

A thread checks every tenth of the retention period (at most every minute).
A job that ended (success, failed, cancelled) longer ago than the retention is
deleted with its files and webhook deliveries: its poll URL then answers 404.
An upload no job took is deleted once that old; an upload a waiting or
running job needs is kept. The rows go in one transaction, the files after
it; files no row names any more (a server killed in between) go too. A
cancelled job's files go at once (store.cancel), not here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from ..errors import SubtitlerError
from .store import UNFINISHED, Store

log = logging.getLogger("subtitler.serve")

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


class BadDuration(SubtitlerError):
    exit_code = 2


def parse_duration(text: str) -> float:
    """Seconds in "90s", "30m", "24h", "7d" or a bare number of seconds."""
    m = DURATION_RE.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise BadDuration(f"{text!r} is not a duration (e.g. 90s, 30m, 24h, 7d)")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


def expire(store: Store, before: float) -> int:
    """Jobs that ended before `before`, and unused uploads made before it, deleted with their
    files; the number of files deleted."""
    unfinished = ", ".join("?" * len(UNFINISHED))
    now = time.time()
    with store._transaction() as db:  # one transaction with the store's own lock
        jobs = [r["id"] for r in db.execute(
            f"SELECT id FROM jobs WHERE state NOT IN ({unfinished}) AND finished < ?", (*UNFINISHED, before))]
        db.executemany("DELETE FROM deliveries WHERE job = ?", [(j,) for j in jobs])
        db.executemany("DELETE FROM jobs WHERE id = ?", [(j,) for j in jobs])
        # Uploads no remaining job names, made before the cut (a job's upload goes with its job).
        db.execute("DELETE FROM uploads WHERE created < ? AND id NOT IN (SELECT upload FROM jobs)", (before,))
        uploads = {r["id"] for r in db.execute("SELECT id FROM uploads")}
        kept_jobs = {r["id"] for r in db.execute("SELECT id FROM jobs")}
    removed = 0
    for folder, known in ((store.uploads, uploads), (store.results, kept_jobs)):
        for path in folder.iterdir():
            try:  # a file written since the rows were read is not an orphan
                if _stem(path) not in known and path.stat().st_mtime < now:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def _stem(path: Path) -> str:
    return path.name.split(".", 1)[0]


class Retention:
    """The thread that calls `expire` periodically."""

    def __init__(self, store: Store, seconds: float) -> None:
        self.store, self.seconds = store, seconds
        self.period = min(60.0, max(0.1, seconds / 10))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serve-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                removed = expire(self.store, time.time() - self.seconds)
                if removed:
                    log.info("retention: %d files deleted", removed)
            except Exception:  # a full disk or a locked file must not end the thread
                log.exception("retention: check failed")
            self._stop.wait(self.period)
