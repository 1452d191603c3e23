"""The plumbing of the fake services: real HTTP servers on 127.0.0.1 with switchable faults.

A fake service subclasses `FakeService`, names its hosts, tells which
endpoint a request is for, and routes it. Faults are queued per endpoint and
served in order, before the service's own answer:

    fake.fail_next(3, 503, "poll", retry_after="0")   # a 5xx burst, or 429 + Retry-After
    fake.malformed_next(1, "poll")                    # 200 with a truncated JSON body
    fake.reset_next(1, "put")                         # TCP reset half-way through the upload

    fake.trickle_next(1, "poll")                      # the answer's body at one byte a second
    fake.huge_next(1, "poll", 300 * 2**20)            # a 300 MiB answer, streamed

and `max_upload` answers 413 to bodies larger than that many bytes; `slow_seconds`
delays every answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, Any, dict[str, str]]  # status, JSON payload (bytes: sent raw; None: empty), headers


@dataclass
class Seen:
    """One request as the fake received it."""

    host: str  # "api" or "storage"
    endpoint: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    endpoint: str | None  # None: whatever comes next
    kind: str  # "status", "malformed", "reset", "trickle" or "huge"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0  # "huge": the body's bytes
    declared: bool = True  # "huge": with a Content-Length (else the body ends when the connection closes)


@dataclass
class FakeService:
    key: str = "test-key"
    # Bodies larger than this get 413 on the endpoints in UPLOADS; None: no limit.
    max_upload: int | None = None
    slow_seconds: float = 0.0  # the time every answer takes
    seen: list[Seen] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    HOSTS: ClassVar[tuple[str, ...]] = ("api",)
    UPLOADS: ClassVar[frozenset[str]] = frozenset()

    # -- control ----------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, endpoint: str | None = None,
                  retry_after: str | None = None) -> None:
        """The next n requests (to `endpoint` only, if given) get `status`."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._faults.extend(Fault(endpoint, "status", status, headers) for _ in range(n))

    def malformed_next(self, n: int, endpoint: str | None = None) -> None:
        """The next n requests (to `endpoint` only, if given) get 200 with a body that is not JSON."""
        with self._lock:
            self._faults.extend(Fault(endpoint, "malformed") for _ in range(n))

    def reset_next(self, n: int, endpoint: str | None = None) -> None:
        """The next n requests have their connection reset after half of their body was read."""
        with self._lock:
            self._faults.extend(Fault(endpoint, "reset") for _ in range(n))

    def trickle_next(self, n: int, endpoint: str | None = None) -> None:
        """The next n answers (to `endpoint` only, if given) come at one byte a second, headers first."""
        with self._lock:
            self._faults.extend(Fault(endpoint, "trickle") for _ in range(n))

    def huge_next(self, n: int, endpoint: str | None = None, size: int = 300 * 2**20,
                  declared: bool = True) -> None:
        """The next n answers are 200 with a `size`-byte body, streamed (the fake never holds it);
        without `declared`, no Content-Length: the body ends when the connection closes."""
        with self._lock:
            self._faults.extend(Fault(endpoint, "huge", size=size, declared=declared) for _ in range(n))

    def requests(self, endpoint: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.endpoint == endpoint]

    def __enter__(self) -> FakeService:
        self.servers = {host: self._serve(host) for host in self.HOSTS}
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()

    def url(self, host: str) -> str:
        addr, port = self.servers[host].server_address[:2]
        return f"http://{addr}:{port}"

    # -- for subclasses ---------------------------------------------------------

    def endpoint(self, host: str, method: str, path: str) -> str:
        raise NotImplementedError

    def route(self, host: str, endpoint: str, method: str, path: str, query: dict[str, list[str]],
              headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Answer:
        return status, {"code": status, "message": message}, {}

    # -- serving ----------------------------------------------------------------

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.endpoint is None or fault.endpoint == endpoint:
                    return self._faults.pop(i)
        return None

    def _serve(self, host: str) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                endpoint = fake.endpoint(host, self.command, parts.path)
                headers = dict(self.headers.items())
                length = int(self.headers.get("Content-Length") or 0)
                fault = fake._take_fault(endpoint)
                if fault and fault.kind == "reset":
                    body = self.rfile.read(length // 2)
                    with fake._lock:
                        fake.seen.append(Seen(host, endpoint, self.command, self.path, headers, body))
                    # SO_LINGER 0: close() sends a TCP RST, as a dying proxy or server does.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.seen.append(Seen(host, endpoint, self.command, self.path, headers, body))
                if fault and fault.kind == "huge":
                    self._send_huge(fault.size, fault.declared)
                    return
                if fault and fault.kind == "malformed":  # a proxy's error page, a truncated answer...
                    answer: Answer = (200, b'{"response": {"status": "succ', {})
                elif fault and fault.kind != "trickle":
                    answer = (fault.status, {"code": fault.status, "message": "injected fault"},
                              fault.headers)
                elif fake.max_upload is not None and endpoint in fake.UPLOADS and length > fake.max_upload:
                    answer = fake.error(413, f"Maximum content size limit ({fake.max_upload}) exceeded")
                else:
                    time.sleep(fake.slow_seconds)
                    answer = fake.route(host, endpoint, self.command, parts.path, parse_qs(parts.query),
                                        headers, body)
                self._send(*answer, trickle=bool(fault and fault.kind == "trickle"))

            def _send_huge(self, size: int, declared: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if declared:
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                block = b"[" + b"0," * (2**19 - 1)  # 1 MiB of a JSON list that never ends
                with contextlib.suppress(OSError):  # the client gave up: fine
                    for start in range(0, size, len(block)):
                        self.wfile.write(block[: size - start])

            def _send(self, status: int, payload: Any, extra: dict[str, str], trickle: bool = False) -> None:
                if isinstance(payload, bytes):
                    data = payload  # deliberately malformed
                else:
                    data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not trickle:
                    self.wfile.write(data)
                    return
                with contextlib.suppress(OSError):  # a byte a second, until the client gives up
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(1.0)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        server = _QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return server


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection reset on purpose is not news
