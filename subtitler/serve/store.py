"""The job store: SQLite in the data folder for uploads and jobs, files beside it for their bytes.

    DATA/serve.db          uploads (owner, state) and jobs (owner, options, state, reason...)
    DATA/uploads/ID.EXT    an uploaded file, renamed into place once whole and checked
    DATA/results/ID.json   a job's result (openai-whisper's dict), renamed into place once whole
    DATA/tmp/              files being written; emptied at start-up

A job goes pending -> processing -> success | failed, or to cancelled from
either of the first two. Every change is one SQLite transaction, and a result
file is in place before its job says success: a server killed at any moment
finds each job as it was last recorded, and `recover` puts the unfinished ones
back in the queue (a job whose result was already written is finished, not run
again). Owners are key hashes (auth.py), never keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import ServeError

PENDING, PROCESSING, SUCCESS, FAILED, CANCELLED = "pending", "processing", "success", "failed", "cancelled"
UNFINISHED = (PENDING, PROCESSING)

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, ext TEXT NOT NULL, created REAL NOT NULL,
    size INTEGER, state TEXT NOT NULL);  -- waiting | uploaded | used
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, upload TEXT NOT NULL, model TEXT NOT NULL,
    tier TEXT NOT NULL, options TEXT NOT NULL, state TEXT NOT NULL, message TEXT,
    idempotency_key TEXT, accepted REAL NOT NULL, started REAL, finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0, callback_url TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, accepted);
CREATE TABLE IF NOT EXISTS deliveries (  -- webhooks to post (webhooks.py), made with the job's end
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, url TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL, state TEXT NOT NULL DEFAULT 'pending', error TEXT);  -- pending | delivered | failed
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, due);
"""


class QueueFull(Exception):
    """--max-queue jobs are waiting already."""


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uploads, self.results, self.tmp = folder / "uploads", folder / "results", folder / "tmp"
        try:
            for d in (self.uploads, self.results, self.tmp):
                d.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.tmp)  # half-written files of a killed server
            self.tmp.mkdir()
            self._db = sqlite3.connect(folder / "serve.db", check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() and not any(
                    c[1] == "callback_url" for c in self._db.execute("PRAGMA table_info(jobs)")):
                # A data folder of an older server.
                self._db.execute("ALTER TABLE jobs ADD COLUMN callback_url TEXT")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            why = getattr(e, "strerror", None) or e
            raise ServeError(f"{folder}: cannot use it as the data folder ({why})") from None
        self._lock = threading.Lock()  # one connection, shared by the request and worker threads
        self.webhook_url: str | None = None  # the server-wide webhook, told of every job's end

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return dict(row) if row else None

    # -- uploads ------------------------------------------------------------------

    def new_upload(self, owner: str, ext: str) -> str:
        upload_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, NULL, 'waiting')",
                       (upload_id, owner, ext, time.time()))
        return upload_id

    def upload(self, upload_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM uploads WHERE id = ?", upload_id)

    def upload_path(self, upload: dict[str, Any]) -> Path:
        return self.uploads / f"{upload['id']}.{upload['ext']}"

    def temp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    def keep_upload(self, upload: dict[str, Any], written: Path, size: int) -> None:
        """`written` (a whole, checked file in tmp/) becomes the upload's bytes."""
        os.replace(written, self.upload_path(upload))
        with self._transaction() as db:
            db.execute("UPDATE uploads SET size = ?, state = 'uploaded' WHERE id = ?", (size, upload["id"]))

    # -- jobs -----------------------------------------------------------------------

    def by_idempotency_key(self, owner: str, key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", owner, key)

    def submit(self, owner: str, upload_id: str, model: str, tier: str, options: dict[str, Any],
               idempotency_key: str | None, max_queue: int, callback_url: str | None = None
               ) -> tuple[dict[str, Any], bool]:
        """The new job (True), or the one this Idempotency-Key already made (False); `callback_url`
        is posted to when it ends."""
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?",
                                 (owner, idempotency_key)).fetchone()
                if row:
                    return dict(row), False
            waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (PENDING,)).fetchone()[0]
            if waiting >= max_queue:
                raise QueueFull
            job_id = uuid.uuid4().hex
            db.execute("INSERT INTO jobs (id, owner, upload, model, tier, options, state, idempotency_key, "
                       "accepted, callback_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, owner, upload_id, model, tier, json.dumps(options), PENDING, idempotency_key,
                        time.time(), callback_url))
            db.execute("UPDATE uploads SET state = 'used' WHERE id = ?", (upload_id,))
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row), True

    def job(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The job; None if there is none, or it is not `owner`'s."""
        row = self._one("SELECT * FROM jobs WHERE id = ?", job_id)
        return row if row and (owner is None or row["owner"] == owner) else None

    def jobs(self, owner: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE owner = ? ORDER BY accepted",
                                    (owner,)).fetchall()
        return [dict(r) for r in rows]

    def waiting(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM jobs WHERE state = ?", PENDING)
        return row["n"] if row else 0

    def mean_seconds(self) -> float | None:
        """How long the last finished jobs took, on average."""
        row = self._one("SELECT AVG(finished - started) AS s FROM (SELECT finished, started FROM jobs "
                        "WHERE state = ? ORDER BY finished DESC LIMIT 20)", SUCCESS)
        return row["s"] if row else None

    def claim(self, job_id: str) -> dict[str, Any] | None:
        """pending -> processing; None if the job is no longer pending (cancelled meanwhile)."""
        with self._transaction() as db:
            changed = db.execute("UPDATE jobs SET state = ?, started = ?, attempts = attempts + 1 "
                                 "WHERE id = ? AND state = ?", (PROCESSING, time.time(), job_id, PENDING))
            if not changed.rowcount:
                return None
            return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def result_path(self, job_id: str) -> Path:
        return self.results / f"{job_id}.json"

    def succeed(self, job_id: str, result: dict[str, Any], message: str | None = None) -> None:
        """The result on disk (whole), then the job a success, unless it was cancelled meanwhile."""
        job = self.job(job_id)
        if job is None or job["state"] != PROCESSING:
            return
        tmp = self.temp_path()
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.result_path(job_id))
        self._end(job_id, SUCCESS, message)

    def fail(self, job_id: str, message: str) -> None:
        self._end(job_id, FAILED, message)

    def _end(self, job_id: str, state: str, message: str | None) -> None:
        with self._transaction() as db:
            ended = db.execute("UPDATE jobs SET state = ?, message = ?, finished = ? "
                               "WHERE id = ? AND state = ?",
                               (state, message, time.time(), job_id, PROCESSING))
            if ended.rowcount:
                self._queue_webhooks(db, job_id)
            done = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if done and done["state"] == CANCELLED:
            self._remove_files(job_id)  # cancelled while it ran: nothing of it is kept

    def result(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.result_path(job_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """A pending or processing job cancelled, its files removed at once; the job as it now is."""
        with self._transaction() as db:
            ended = db.execute("UPDATE jobs SET state = ?, finished = ?, message = 'cancelled by its owner' "
                               "WHERE id = ? AND state IN (?, ?)",
                               (CANCELLED, time.time(), job_id, *UNFINISHED))
            if ended.rowcount:
                self._queue_webhooks(db, job_id)
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row and row["state"] == CANCELLED:
            self._remove_files(job_id)
        return dict(row) if row else None

    def _queue_webhooks(self, db: sqlite3.Connection, job_id: str) -> None:
        """The job's webhooks, due now, in the transaction that ended it: a server killed after it
        still posts them (webhooks.py)."""
        row = db.execute("SELECT callback_url FROM jobs WHERE id = ?", (job_id,)).fetchone()
        for url in dict.fromkeys(u for u in (row["callback_url"], self.webhook_url) if u):
            db.execute("INSERT INTO deliveries (job, url, due) VALUES (?, ?, ?)", (job_id, url, time.time()))

    def _remove_files(self, job_id: str) -> None:
        row = self._one("SELECT u.id, u.ext FROM jobs j JOIN uploads u ON u.id = j.upload "
                        "WHERE j.id = ?", job_id)
        if row:
            self.upload_path(row).unlink(missing_ok=True)
        self.result_path(job_id).unlink(missing_ok=True)

    def recover(self) -> list[str]:
        """After a restart: the unfinished jobs, oldest first, back to pending (those whose result
        was written before the server died are finished instead)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state = ?", (PROCESSING,)).fetchall()
        for row in rows:
            if self.result_path(row["id"]).exists():
                self._end(row["id"], SUCCESS, None)
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ? WHERE state = ?", (PENDING, PROCESSING))
            rows = db.execute("SELECT id FROM jobs WHERE state = ? ORDER BY accepted", (PENDING,)).fetchall()
        return [r["id"] for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
