"""Graceful shutdown: SIGTERM drains the server, then it exits.

On SIGTERM the server stops accepting work (every POST and PUT answers 503
with Retry-After, /ready answers 503 so a load balancer moves on; polls,
listings, cancels and /health still answer), starts no waiting job, and waits
up to --grace seconds for the running ones to finish. All finished: it exits
0. Grace over: it stops anyway with 143, and the jobs it cut off run again at
the next start, as the waiting ones do (the store has them). A second SIGTERM
or Ctrl-C stops at once.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM with `drain` (which says whether it drained cleanly)."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], bool]) -> None:
        super().__init__(config)
        self.drain = drain
        self.draining = False
        self.drained: bool | None = None  # None: not drained (stopped otherwise)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.draining and not self.should_exit:
            self.draining = True
            threading.Thread(target=self._drain, name="serve-drain", daemon=True).start()
            return
        super().handle_exit(sig, frame)  # a second signal, or Ctrl-C: stop now

    def _drain(self) -> None:
        self.drained = self.drain()
        if not self.drained:
            self._captured_signals.append(signal.SIGTERM)  # raised again once stopped: exit 143
        self.should_exit = True


class RefuseWhileDraining:
    """ASGI middleware: while the server drains, new work (POST, PUT) and /ready get 503."""

    def __init__(self, app: Any, is_draining: Callable[[], bool], retry_after: int = 30) -> None:
        self.app, self.is_draining, self.retry_after = app, is_draining, retry_after

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and self.is_draining()
                and (scope["method"] in ("POST", "PUT") or scope["path"] == "/ready")):
            message = "the server is shutting down: try again later"
            body = json.dumps({"code": 503, "message": message}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"retry-after", str(self.retry_after).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
