"""A faithful fake of Tiyaro's async Whisper API, as real HTTP servers on 127.0.0.1.

Two servers, like the real service: the API host (bearer auth, upload-url,
submit, poll) and a separate "storage host" that takes the presigned PUT and
records the headers it got, so tests can check the key never went there.

    with FakeTiyaro(result=lambda audio, inputs, model: {...}) as fake:
        os.environ["TIYARO_BASE_URL"] = fake.base_url

The job's result comes from the `result` callable (the uploaded bytes, the
job's `input` and the model name in, an openai-whisper-style dict out).
Faults: `fail_next(n, status, endpoint=None)`, `final_status`/`final_message`,
`polls_before_success`, `text_only`, `wrapped`.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODEL_RE = re.compile(r"^/v1/async/ent/tiyarofs/1/openai/whisper-(tiny|base|small|medium|large)(\.en)?$")
POLL_RE = re.compile(r"^/v1/async/results/([0-9a-f]+)$")
OBJECT_RE = re.compile(r"^/objects/([0-9a-f]+)\.(\w+)$")
TIERS = ("cpuflex", "gpuflex")


@dataclass
class Seen:
    """One request as the fake received it."""

    host: str  # "api" or "storage"
    endpoint: str  # "upload-url", "put", "submit", "poll" or "other"
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Job:
    id: str
    model: str
    tier: str
    inputs: dict[str, Any]
    url: str
    polls: int = 0
    done: bool = False
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class FakeTiyaro:
    result: Callable[[bytes, dict[str, Any], str], dict[str, Any]]
    key: str = "test-key"
    wrapped: bool = True  # poll answers as {"response": {...}} (the spec) or bare (the sample)
    polls_before_success: int = 0  # polls answered "pending"/"processing" first
    job_seconds: float = 0.0  # and the server's own processing time before a job can succeed
    final_status: str = "success"  # or "failed" / "cancelled"
    final_message: str = "model crashed"
    text_only: bool = False  # the result keeps only "text"
    seen: list[Seen] = field(default_factory=list)
    max_in_flight: int = 0  # most jobs submitted and not yet finished at one time
    objects: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    _faults: list[tuple[str | None, int, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ----------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, endpoint: str | None = None,
                  retry_after: str | None = None) -> None:
        """The next n requests (to `endpoint` only, if given) get `status`."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._faults.extend([(endpoint, status, headers)] * n)

    def malformed_next(self, n: int, endpoint: str | None = None) -> None:
        """The next n requests (to `endpoint` only, if given) get 200 with a body that is not JSON."""
        with self._lock:
            self._faults.extend([(endpoint, 200, {})] * n)

    def requests(self, endpoint: str) -> list[Seen]:
        return [s for s in self.seen if s.endpoint == endpoint]

    def __enter__(self) -> FakeTiyaro:
        self.api = self._serve("api")
        self.storage = self._serve("storage")
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.api, self.storage):
            server.shutdown()
            server.server_close()

    @property
    def base_url(self) -> str:
        return _url(self.api)

    @property
    def storage_url(self) -> str:
        return _url(self.storage)

    # -- serving ----------------------------------------------------------------

    def _serve(self, host: str) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, headers = fake._route(host, self.command, self.path,
                                                       dict(self.headers.items()), body)
                if isinstance(payload, bytes):
                    data = payload  # deliberately malformed
                else:
                    data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return server

    def _endpoint(self, host: str, method: str, path: str) -> str:
        if host == "storage":
            return "put" if method == "PUT" else "other"
        if method == "POST" and path == "/v1/input/upload-url":
            return "upload-url"
        if method == "POST" and MODEL_RE.match(path):
            return "submit"
        if method == "GET" and POLL_RE.match(path):
            return "poll"
        return "other"

    def _route(self, host: str, method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        endpoint = self._endpoint(host, method, path)
        with self._lock:
            self.seen.append(Seen(host, endpoint, method, target, headers, body))
            for i, (only, status, extra) in enumerate(self._faults):
                if only is None or only == endpoint:
                    del self._faults[i]
                    if status == 200:  # a proxy's error page, a truncated answer...
                        return status, b'{"response": {"status": "succ', extra
                    return status, {"code": status, "message": "injected fault"}, extra
        if host == "storage":
            return self._storage(method, path, body)
        if headers.get("Authorization") != f"Bearer {self.key}":
            return 401, {"code": 401, "message": "Unauthorized: invalid API key"}, {}
        if endpoint == "upload-url":
            ext = query.get("extension", [""])[0]
            if not ext:
                return 400, {"code": 400, "message": "extension is required"}, {}
            put = f"{self.storage_url}/objects/{uuid.uuid4().hex}.{ext}?X-Amz-Signature={uuid.uuid4().hex}"
            return 201, {"uploadUrl": {"PUT": put}}, {}
        if endpoint == "submit":
            return self._submit(path, query, body)
        if endpoint == "poll":
            return self._poll(POLL_RE.match(path).group(1))  # type: ignore[union-attr]
        return 404, {"code": 404, "message": f"no route for {method} {path}"}, {}

    def _storage(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        m = OBJECT_RE.match(path)
        if method != "PUT" or not m:
            return 404, {"code": 404, "message": "NoSuchKey"}, {}
        with self._lock:
            self.objects[m.group(1)] = body
        return 200, None, {}

    def _submit(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, dict[str, str]]:
        m = MODEL_RE.match(path)
        assert m
        tier = query.get("serviceTier", [""])[0]
        if tier not in TIERS:
            return 400, {"code": 400, "message": f"bad serviceTier {tier!r}"}, {}
        try:
            data = json.loads(body)
            inputs, url = data["input"], data["URL"]
        except (ValueError, KeyError, TypeError):
            return 400, {"code": 400, "message": "body must be {\"input\": {...}, \"URL\": ...}"}, {}
        obj = OBJECT_RE.match(urlsplit(url).path)
        if not isinstance(inputs, dict) or not obj or obj.group(1) not in self.objects:
            return 400, {"code": 400, "message": "URL is not an uploaded object"}, {}
        job = Job(uuid.uuid4().hex, m.group(1) + (m.group(2) or ""), tier, inputs, url)
        with self._lock:
            self.jobs[job.id] = job
            in_flight = sum(not j.done for j in self.jobs.values())
            self.max_in_flight = max(self.max_in_flight, in_flight)
        accepted = datetime.datetime.now(datetime.timezone.utc).isoformat()
        return 202, {"response": {"id": job.id, "urls": {"GET": f"{self.base_url}/v1/async/results/{job.id}"},
                                  "status": "accepted", "acceptedAt": accepted}}, {}

    def _poll(self, job_id: str) -> tuple[int, Any, dict[str, str]]:
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {"code": 404, "message": "no such job"}, {}
        job.polls += 1
        if job.polls <= self.polls_before_success or time.monotonic() - job.submitted < self.job_seconds:
            body: dict[str, Any] = {"id": job.id, "status": "pending" if job.polls == 1 else "processing"}
        elif self.final_status != "success":
            body = {"id": job.id, "status": self.final_status, "message": self.final_message}
        else:
            obj = OBJECT_RE.match(urlsplit(job.url).path)
            assert obj
            result = self.result(self.objects[obj.group(1)], job.inputs, job.model)
            if self.text_only:
                result = {"text": result["text"]}
            body = {"id": job.id, "status": "success", "result": result}
            job.done = True
        return 200, ({"response": body} if self.wrapped else body), {}


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
