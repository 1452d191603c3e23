"""What remote backends share: an HTTP client that retries safely and keeps the key secret,
and the compact audio they upload.

`ServiceClient.request` retries connection errors, 408, 429 and 5xx with
exponential backoff and jitter, honouring Retry-After, but only where the
caller says a retry is safe: a job submission whose answer was lost may still
have created the job, and submitting again would run (and bill) it twice.
The bearer key goes only to the service's own origin (never to a presigned
storage URL, never through a redirect) and is scrubbed from every message.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import random
import socket
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from . import process
from .errors import (
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteTimeout,
    RemoteTooLarge,
)
from .media import SAMPLE_RATE, find_tools

log = logging.getLogger("subtitler.remote")  # `subtitler --verbose` shows it

RETRY_STATUSES = frozenset({408, 429})
# The largest answer read (bytes): a transcription's JSON is a few MB even for hours of speech.
DEFAULT_MAX_ANSWER = 64 * 2**20
MAX_RETRY_AFTER = 120.0

# Upload formats: ffmpeg arguments and MIME type. MP3 is the default: every
# Whisper server reads it, and at 48 kbit/s it is 19% of WAV's size on the
# sample with the same words and word times from tiny.en (FLAC: 46%, Opus at
# 32 kbit/s: 11%). WAV suits servers without ffmpeg (whisper.cpp's server
# without --convert).
UPLOAD_FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3"], "audio/mpeg"),
    "ogg": (["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"], "audio/ogg"),
    "flac": (["-c:a", "flac", "-f", "flac"], "audio/flac"),
    "wav": ([], "audio/wav"),  # written in-process (wav_bytes): no ffmpeg needed
}
DEFAULT_UPLOAD_FORMAT = "mp3"


def encode_audio(samples: np.ndarray, fmt: str = DEFAULT_UPLOAD_FORMAT) -> bytes:
    """16 kHz mono float32 samples as a compact audio file (ffmpeg: samples piped in, a file out)."""
    if fmt == "wav":
        return wav_bytes(samples)
    args, _ = UPLOAD_FORMATS[fmt]
    # To a file, not a pipe: on a pipe ffmpeg cannot go back to write the MP3's LAME tag, and
    # without it decoders keep the encoder's 69 ms delay, shifting every timestamp.
    with tempfile.TemporaryDirectory(prefix="subtitler-upload-") as folder:
        out = Path(folder) / f"audio.{fmt}"
        command = [find_tools().ffmpeg, "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(SAMPLE_RATE),
                   "-ac", "1", "-i", "pipe:0", *args, str(out)]
        proc = process.run(command, input=np.asarray(samples, "<f4").tobytes())
        if proc.returncode != 0:
            reason = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RemoteError(f"ffmpeg could not encode the upload as {fmt}: "
                              f"{reason[-1] if reason else '?'}")
        return out.read_bytes()


def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono float32 samples as a 16-bit PCM WAV."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), capped; None if absent."""
    value = headers.get("retry-after")
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


def server_message(resp: Any) -> str:
    """The error text in a service's answer, whatever shape it comes in."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(body, dict):
        inner = body.get("response") if isinstance(body.get("response"), dict) else body
        if isinstance(inner.get("error"), dict):  # OpenAI: {"error": {"message": ...}}
            inner = inner["error"]
        for key in ("message", "body", "error", "detail"):
            if inner.get(key):
                return str(inner[key])[:200]
    return str(body)[:200]


class ServiceClient:
    """HTTP to one service: retries, deadline, key only to its origin, key never in messages.

    `service` names it in messages ("Tiyaro"); `key_setting` tells the user
    where the key comes from ("TIYARO_API_KEY").
    """

    def __init__(self, base_url: str, api_key: str | None, *, service: str, key_setting: str,
                 retries: int = 5, retry_backoff: float = 0.5, max_backoff: float = 30.0,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 max_answer: int = DEFAULT_MAX_ANSWER, max_answer_setting: str = "",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx  # imported here: the core works without it, only remote backends need it

        self.base_url = base_url.rstrip("/")
        self._key = api_key or None
        self.service, self.key_setting = service, key_setting
        self.retries, self.retry_backoff, self.max_backoff = retries, retry_backoff, max_backoff
        # One request, answer included, must be done within `read_timeout` seconds: httpx's own
        # timeouts are per read, and a server trickling a byte a second never trips them.
        self.request_timeout = read_timeout
        self.max_answer, self.max_answer_setting = max_answer, max_answer_setting
        # Per thread (--jobs runs files side by side): the time.monotonic() by which the
        # current file must be done (--timeout); None: no deadline.
        self._local = threading.local()
        self.sleep = sleep
        # No default headers and no redirects: the key is added per request, to the API origin only.
        self.http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                 follow_redirects=False)

    # -- secrets ----------------------------------------------------------------

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def error(self, cls: type[RemoteError], message: str) -> RemoteError:
        return cls(self.scrub(message))

    def is_api(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    # -- time -------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        return getattr(self._local, "deadline", None)

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._local.deadline = value

    def start_deadline(self, seconds: float | None) -> None:
        """The current file (in this thread) must be done within `seconds` (None: no limit)."""
        self.deadline = time.monotonic() + seconds if seconds else None

    def timeout_hint(self) -> str:
        return "--timeout ran out"

    def pause(self, seconds: float, what: str) -> None:
        """Sleep before a retry or poll, unless that would pass the deadline."""
        if self.deadline is not None and time.monotonic() + seconds > self.deadline:
            raise self.error(RemoteTimeout, f"{self.service} {what}: {self.timeout_hint()}")
        self.sleep(seconds)

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff, self.retry_backoff * 2 ** attempt)
        return delay * (0.5 + random.random() / 2)  # jitter: spread clients that failed together

    def _timeout(self, until: float) -> Any:
        """httpx's timeouts (per read, per write...), shortened so that none outlives `until`."""
        import httpx

        left = max(0.01, until - time.monotonic())
        t = self.http.timeout
        return httpx.Timeout(min(t.read or left, left), connect=min(t.connect or left, left),
                             write=min(t.write or left, left), pool=min(t.pool or left, left))

    # -- requests ---------------------------------------------------------------

    def request(self, method: str, url: str, what: str, *, retry: bool, **kwargs: Any) -> Any:
        """Send one request (retried if `retry` and it failed transiently); a 2xx response or an error."""
        import httpx

        headers = dict(kwargs.pop("headers", {}))
        if self._key and self.is_api(url):
            headers["Authorization"] = f"Bearer {self._key}"
        attempt = 0
        # Logged without the query: a presigned URL's signature is a secret too.
        parts = urlsplit(url)
        shown = f"{method} {parts.scheme}://{parts.netloc}{parts.path}"
        while True:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise self.error(RemoteTimeout, f"{self.service} {what}: {self.timeout_hint()}")
            started = time.monotonic()
            until = started + self.request_timeout
            if self.deadline is not None:
                until = min(until, self.deadline)
            try:
                resp = self._send(method, url, headers, until, what, **kwargs)
            except httpx.TransportError as e:
                log.debug("%s: %s (%s)", shown, type(e).__name__, "retrying" if retry else "not retried")
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    raise self.error(RemoteTimeout, f"{self.service} {what}: {self.timeout_hint()}") from None
                if retry and attempt < self.retries:
                    self.pause(self.backoff(attempt), what)
                    attempt += 1
                    continue
                hint = "" if retry else " (not retried: the job may or may not have been created)"
                raise self.error(RemoteError, f"{self.service} {what}: cannot reach {urlsplit(url).netloc}: "
                                              f"{type(e).__name__}: {e}{hint}") from None
            log.debug("%s -> %d in %.2f s", shown, resp.status_code, time.monotonic() - started)
            transient = resp.status_code in RETRY_STATUSES or resp.status_code >= 500
            if transient and retry and attempt < self.retries:
                wait = retry_after(resp.headers)
                self.pause(self.backoff(attempt) if wait is None else wait, what)
                attempt += 1
                continue
            if resp.is_success:
                return resp
            raise self.failure(resp, what, retried=attempt, retry=retry)

    def _send(self, method: str, url: str, headers: dict[str, str], until: float, what: str,
              **kwargs: Any) -> Any:
        """One request, its whole answer read by `until` (else httpx.ReadTimeout) and no larger than
        max_answer (else RemoteError), without holding more than that in memory."""
        request = self.http.build_request(method, url, headers=headers, timeout=self._timeout(until),
                                          **kwargs)
        resp = self.http.send(request, stream=True)
        try:
            resp._content = self._read(resp, until, what)  # what httpx's own read() sets
        finally:
            resp.close()
        return resp

    def _read(self, resp: Any, until: float, what: str) -> bytes:
        import httpx

        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_answer:
            raise self._too_large(what, int(length))
        # A watchdog for a server that stalls mid-answer: httpx's read timeout was set from the
        # time left when the request went out, so it could wait past `until`. Shutting the socket
        # down wakes the blocked read at once. (Headers trickled a byte a second are not caught:
        # httpx reads them before the socket can be had; only its per-read timeout bounds them.)
        stream = resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        state = {"done": False, "fired": False}
        lock = threading.Lock()

        def expire() -> None:
            with lock:
                if not state["done"] and sock is not None:
                    state["fired"] = True
                    with contextlib.suppress(OSError):  # the plain socket's: an SSLSocket's own
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # would unwrap it under the reader

        watchdog = threading.Timer(max(0.0, until - time.monotonic()), expire)
        watchdog.daemon = True
        watchdog.start()
        chunks, size, late = [], 0, False
        try:
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > self.max_answer:
                    raise self._too_large(what, None)
                chunks.append(chunk)
                if time.monotonic() > until:  # a trickle: every read is quick, the whole is not
                    late = True
                    break
        except httpx.TransportError:
            if not state["fired"] and time.monotonic() <= until:
                raise
            late = True
        finally:
            with lock:
                state["done"] = True
            watchdog.cancel()
        if late or state["fired"]:  # fired: an end of answer may only be the shut-down socket
            raise httpx.ReadTimeout(f"no whole answer within {self.request_timeout:g} s "
                                    f"({size} bytes came)", request=resp.request)
        return b"".join(chunks)

    def _too_large(self, what: str, size: int | None) -> RemoteError:
        got = f"{size / 2**20:.0f} MiB, " if size is not None else ""
        setting = f" of {self.max_answer_setting}" if self.max_answer_setting else ""
        return self.error(RemoteError, f"{self.service} {what}: the answer is {got}over the "
                                       f"{self.max_answer / 2**20:g} MiB limit{setting}; not read")

    def failure(self, resp: Any, what: str, *, retried: int, retry: bool) -> RemoteError:
        """The error for a non-2xx answer, with the server's own message."""
        code, msg = resp.status_code, server_message(resp)
        detail = f"HTTP {code}" + (f": {msg}" if msg else "")
        api = self.is_api(str(resp.request.url))
        if code in (401, 403) and api:
            return self.error(RemoteAuthError, f"{self.service} refused the API key ({detail}): "
                                               f"check {self.key_setting}")
        if code in (401, 403):
            return self.error(RemoteError, f"storage refused the {what} ({detail}): "
                                           "the presigned URL may have expired")
        if code == 404 and api:
            return self.error(RemoteNotFound, f"{self.service} {what}: not found ({detail}): "
                                              f"wrong base URL ({self.base_url}) or model?")
        if code == 413:
            return self.error(RemoteTooLarge, f"{self.service} {what}: the upload is too large ({detail})")
        if not retry:
            detail += "; not retried, to avoid submitting a duplicate job"
        elif retried:
            detail += f" (after {retried} retries)"
        return self.error(RemoteError, f"{self.service} {what} failed ({detail})")

    def json(self, resp: Any, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise self.error(RemoteError, f"{self.service} {what}: the answer is not JSON "
                                          f"({resp.text.strip()[:100]!r})") from None

    def close(self) -> None:
        self.http.close()
