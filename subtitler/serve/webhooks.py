"""Webhooks: a signed POST to the job's `callback_url` (and the server-wide --webhook-url) when it ends.

The store queues a delivery in the transaction that ends a job (success,
failed or cancelled), so a server killed afterwards still posts it at its next
start. This module's thread posts what is due: a 2xx answer delivers it;
anything else (or no answer in 10 s) is tried again after 2, 4, 8... times
--webhook backoff seconds, at most MAX_ATTEMPTS times, then given up (logged).

The body is JSON: {"event": "job.ended", "id", "status", "model", "acceptedAt",
"finishedAt", "message", "result" (success only: openai-whisper's dict)}. It
is signed with HMAC-SHA256 and the webhook secret ($SUBTITLER_WEBHOOK_SECRET
or the config's webhook-secret):

    X-Subtitler-Signature: t=UNIX_TIME,v1=hex(HMAC_SHA256(secret, f"{t}." + body))

A receiver recomputes v1 over the raw body and refuses an old t (`verify`).
X-Subtitler-Delivery names the delivery (the same on a retry: deduplicate on it).

SSRF: the server posts only to hosts the config allows (--webhook-allow), and
follows no redirect; the server-wide URL is the operator's own and needs no entry.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from .store import SUCCESS, Store

log = logging.getLogger("subtitler.serve")

SECRET_ENV = "SUBTITLER_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Subtitler-Signature"
DELIVERY_HEADER = "X-Subtitler-Delivery"
MAX_ATTEMPTS = 8
TIMEOUT = 10.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, header: str, body: bytes, tolerance: float = 300.0) -> bool:
    """Whether `header` (X-Subtitler-Signature) signs `body` with `secret`, made within `tolerance` s."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    return (abs(time.time() - timestamp) <= tolerance
            and hmac.compare_digest(fields.get("v1", ""), signature(secret, timestamp, body)))


def callback_problem(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why the server will not post to `url` (None: it will). `allowed`: hosts, or host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "callback_url must be an http(s) URL"
    host = parts.hostname.lower()
    names = {host, f"{host}:{parts.port}"} if parts.port else {host}
    if not names & {a.lower() for a in allowed}:
        return f"callback_url's host {host} is not one this server posts to (its webhook allow-list)"
    return None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


class Webhooks:
    """The thread that posts due deliveries."""

    def __init__(self, store: Store, secret: str | None, allowed: tuple[str, ...], *,
                 server_url: str | None = None, backoff: float = 2.0) -> None:
        self.store, self.secret, self.allowed = store, secret, allowed
        self.server_url, self.backoff = server_url, backoff
        store.webhook_url = server_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serve-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT + 1)

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    for row in self._due():
                        if self._stop.is_set():
                            break
                        self._deliver(client, row)
                except Exception:  # the store's disk, a bug: logged, tried again later
                    log.exception("webhooks: delivery failed")
                self._stop.wait(0.2)

    def _due(self) -> list[dict[str, Any]]:
        with self.store._lock:  # the store's one connection
            rows = self.store._db.execute("SELECT * FROM deliveries WHERE state = 'pending' AND due <= ? "
                                          "ORDER BY due LIMIT 50", (time.time(),)).fetchall()
        return [dict(r) for r in rows]

    def _update(self, delivery: int, **values: Any) -> None:
        names = ", ".join(f"{k} = ?" for k in values)
        with self.store._transaction() as db:
            db.execute(f"UPDATE deliveries SET {names} WHERE id = ?", (*values.values(), delivery))

    def payload(self, job: dict[str, Any]) -> bytes:
        body = {"event": "job.ended", "id": job["id"], "status": job["state"],
                "model": f"whisper-{job['model']}", "acceptedAt": _iso(job["accepted"]),
                "finishedAt": _iso(job["finished"]), "message": job["message"]}
        if job["state"] == SUCCESS:
            body["result"] = self.store.result(job["id"])
        return json.dumps(body, ensure_ascii=False).encode()

    def _deliver(self, client: httpx.Client, row: dict[str, Any]) -> None:
        job = self.store.job(row["job"])
        host = urlsplit(row["url"]).hostname  # logs name the host only: a URL's query may hold a token
        problem = ("the job is gone" if job is None else "no webhook secret is configured" if not self.secret
                   else None if row["url"] == self.server_url else callback_problem(row["url"], self.allowed))
        if problem:
            self._update(row["id"], state="failed", error=problem)
            log.warning("webhook %d for job %s to %s: not sent (%s)", row["id"], row["job"], host, problem)
            return
        assert job is not None and self.secret is not None
        body, now = self.payload(job), int(time.time())
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(row["id"]),
                   SIGNATURE_HEADER: f"t={now},v1={signature(self.secret, now, body)}"}
        try:
            status = client.post(row["url"], content=body, headers=headers).status_code
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except httpx.HTTPError as e:
            error = type(e).__name__
        attempts = row["attempts"] + 1
        if error is None:
            self._update(row["id"], state="delivered", attempts=attempts, error=None)
            log.info("webhook %d for job %s to %s: delivered", row["id"], row["job"], host)
        elif attempts >= MAX_ATTEMPTS:
            self._update(row["id"], state="failed", attempts=attempts, error=error)
            log.warning("webhook %d for job %s to %s: given up after %d attempts (%s)", row["id"], row["job"],
                        host, attempts, error)
        else:
            delay = self.backoff * 2 ** (attempts - 1)
            self._update(row["id"], attempts=attempts, error=error, due=time.time() + delay)
            log.info("webhook %d for job %s to %s: %s, next attempt in %.1fs", row["id"], row["job"], host,
                     error, delay)
