"""A client for Tiyaro's async Whisper protocol: upload URL, PUT, submit, poll.

Retries (exponential backoff with jitter, Retry-After honoured) cover
connection errors, 408, 429 and 5xx on the idempotent steps only: the upload
URL request, the PUT and the polls. The job submission is never retried: a
submission whose answer was lost may still have created a job, and a second
one would be billed twice. The bearer key is sent only to the API's own origin
(never to the presigned storage URL) and never appears in an error message.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from subtitler.errors import SubtitlerError

MODEL_PATH = "/v1/async/ent/tiyarofs/1/openai/whisper-{model}"
UPLOAD_PATH = "/v1/input/upload-url"
PENDING = frozenset({"accepted", "pending", "processing", "queued", "running", "started"})
RETRY_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER = 120.0


class TiyaroError(SubtitlerError):
    """The Tiyaro service failed or answered something unexpected."""

    exit_code = 20


class TiyaroAuthError(TiyaroError):
    """The API key was refused (401/403)."""

    exit_code = 21


class TiyaroNotFound(TiyaroError):
    """404 from the API: a wrong base URL or model."""

    exit_code = 22


class TiyaroJobFailed(TiyaroError):
    """The job ended as failed or cancelled."""

    exit_code = 23


class TiyaroNoTimings(TiyaroError):
    """The result has text but no segment timings: it cannot become subtitles."""

    exit_code = 24


class TiyaroTimeout(TiyaroError):
    """--timeout ran out before the job finished (it may still be running: rerun to re-attach)."""

    exit_code = 25


def _unwrap(body: Any) -> Any:
    """The spec wraps bodies as {"response": {...}}; the sample reads them bare. Accept both."""
    if isinstance(body, dict) and isinstance(body.get("response"), dict):
        return body["response"]
    return body


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(body, dict):
        inner = body.get("response") if isinstance(body.get("response"), dict) else body
        for key in ("message", "body", "error", "detail"):
            if inner.get(key):
                return str(inner[key])[:200]
    return str(body)[:200]


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, when - time.time()))


class TiyaroClient:
    def __init__(self, base_url: str, api_key: str, *, service_tier: str = "cpuflex",
                 poll_interval: float = 0.5, max_poll_interval: float = 15.0,
                 retries: int = 5, retry_backoff: float = 0.5, max_backoff: float = 30.0,
                 timeout: float = 60.0, max_wait: float = 6 * 3600.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.service_tier = service_tier
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.retries, self.retry_backoff, self.max_backoff = retries, retry_backoff, max_backoff
        self.max_wait = max_wait
        # Per thread (--jobs runs files side by side): the time.monotonic() by which the
        # current file must be done (--timeout); None: no deadline.
        self._local = threading.local()
        self.sleep = sleep
        # No default headers and no redirects: the key is added per request, to the API origin only.
        self.http = httpx.Client(timeout=timeout, follow_redirects=False)

    # -- plumbing -------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _error(self, cls: type[TiyaroError], message: str) -> TiyaroError:
        return cls(self._scrub(message))

    def _is_api(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    @property
    def deadline(self) -> float | None:
        return getattr(self._local, "deadline", None)

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._local.deadline = value

    def _pause(self, seconds: float, what: str) -> None:
        """Sleep before a retry or poll, unless that would pass the deadline."""
        if self.deadline is not None and time.monotonic() + seconds > self.deadline:
            raise self._error(TiyaroTimeout, f"Tiyaro {what}: --timeout ran out; a submitted job keeps "
                                             "running: run the same command again to re-attach to it")
        self.sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff, self.retry_backoff * 2 ** attempt)
        return delay * (0.5 + random.random() / 2)  # jitter: spread clients that failed together

    def _request(self, method: str, url: str, what: str, *, retry: bool, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self._is_api(url):
            headers["Authorization"] = f"Bearer {self._key}"
        attempt = 0
        while True:
            try:
                resp = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as e:
                if retry and attempt < self.retries:
                    self._pause(self._backoff(attempt), what)
                    attempt += 1
                    continue
                hint = "" if retry else " (not retried: the job may or may not have been created)"
                raise self._error(TiyaroError, f"Tiyaro {what}: cannot reach {urlsplit(url).netloc}: "
                                               f"{type(e).__name__}: {e}{hint}") from None
            transient = resp.status_code in RETRY_STATUSES or resp.status_code >= 500
            if transient and retry and attempt < self.retries:
                wait = _retry_after(resp)
                self._pause(self._backoff(attempt) if wait is None else wait, what)
                attempt += 1
                continue
            if resp.is_success:
                return resp
            raise self._failure(resp, what, retried=attempt, retry=retry)

    def _failure(self, resp: httpx.Response, what: str, *, retried: int, retry: bool) -> TiyaroError:
        code, msg = resp.status_code, _server_message(resp)
        detail = f"HTTP {code}" + (f": {msg}" if msg else "")
        if code in (401, 403) and what != "upload":
            return self._error(TiyaroAuthError,
                               f"Tiyaro refused the API key ({detail}): check TIYARO_API_KEY")
        if code in (401, 403):
            return self._error(TiyaroError, f"storage refused the upload ({detail}): "
                                            "the presigned URL may have expired")
        if code == 404 and what != "upload":
            return self._error(TiyaroNotFound, f"Tiyaro {what}: not found ({detail}): "
                                               f"wrong base URL ({self.base_url}) or model?")
        if not retry:
            detail += "; not retried, to avoid submitting a duplicate job"
        elif retried:
            detail += f" (after {retried} retries)"
        return self._error(TiyaroError, f"Tiyaro {what} failed ({detail})")

    def _json(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise self._error(TiyaroError, f"Tiyaro {what}: the answer is not JSON "
                                           f"({resp.text.strip()[:100]!r})") from None

    # -- protocol -------------------------------------------------------------

    def upload_url(self, extension: str) -> str:
        resp = self._request("POST", f"{self.base_url}{UPLOAD_PATH}", "upload-url request",
                             retry=True, params={"extension": extension}, json={})
        body = self._json(resp, "upload-url request")
        for shape in (body, _unwrap(body)):  # the sample's shape, and the spec's (with its typo)
            for key in ("uploadUrl", "uplaodUrl"):
                put = shape.get(key, {}).get("PUT") if isinstance(shape, dict) else None
                if isinstance(put, str) and put:
                    return put
        raise self._error(TiyaroError, "Tiyaro upload-url request: no uploadUrl.PUT in the answer")

    def upload(self, url: str, data: bytes) -> None:
        self._request("PUT", url, "upload", retry=True, content=data)

    def submit(self, model: str, inputs: dict[str, Any], url: str) -> tuple[str, str]:
        """Start a job; returns (job id, poll URL). Never retried."""
        what = "job submission"
        resp = self._request("POST", self.base_url + MODEL_PATH.format(model=model), what,
                             retry=False, params={"serviceTier": self.service_tier},
                             json={"input": inputs, "URL": url})
        body = _unwrap(self._json(resp, what))
        try:
            job_id, poll = str(body["id"]), body["urls"]["GET"]
        except (KeyError, TypeError):
            raise self._error(TiyaroError, f"Tiyaro {what}: no id / urls.GET in the answer") from None
        return job_id, urljoin(self.base_url + "/", poll)

    def wait(self, poll_url: str) -> dict[str, Any]:
        """Poll until the job ends; returns its result, or raises with the server's message.

        The wait between polls grows with the time already waited (5% of it,
        between `poll_interval` and `max_poll_interval`): a result is noticed
        at most 5% late, while a long job costs few requests (the sample's
        fixed 15 s would make a 2 s job 7x slower).
        """
        started = time.monotonic()
        while True:
            body = _unwrap(self._json(self._request("GET", poll_url, "poll", retry=True), "poll"))
            status = str(body.get("status", "")).lower() if isinstance(body, dict) else ""
            if status == "success":
                result = body.get("result")
                if not isinstance(result, dict):
                    raise self._error(TiyaroError, "Tiyaro job succeeded without a result object")
                return result
            if status in ("failed", "cancelled", "canceled"):
                msg = next((str(v) for v in (body.get("message"), body.get("error"),
                                             (body.get("result") or {}).get("error")
                                             if isinstance(body.get("result"), dict) else None) if v),
                           "no reason given")
                raise self._error(TiyaroJobFailed, f"Tiyaro job {status}: {msg}")
            if status not in PENDING:
                raise self._error(TiyaroError, f"Tiyaro poll: unexpected job status {status!r}")
            waited = time.monotonic() - started
            if waited >= self.max_wait:
                raise self._error(TiyaroError, f"Tiyaro job still {status} after {waited:.0f} s")
            interval = min(self.max_poll_interval, max(self.poll_interval, 0.05 * waited))
            self._pause(interval, f"job still {status}")

    def close(self) -> None:
        self.http.close()
