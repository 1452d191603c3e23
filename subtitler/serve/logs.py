"""The access log: one JSON line per request, on the `subtitler.serve.access` logger.

    {"time": "2026-12-01T02:30:00.123+00:00", "method": "GET", "path": "/v1/async/results/ID",
     "route": "/v1/async/results/{job_id}", "status": 200, "ms": 1.2, "client": "10.0.0.7"}

Never the query string (an upload URL's signature is in it), never a header
(the API key is in one), never a body. The same measure feeds /metrics'
latency histogram. uvicorn's own access log, which prints queries, is off
(server.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from typing import Any

log = logging.getLogger("subtitler.serve.access")

Scope = dict[str, Any]


class AccessLog:
    """ASGI middleware: the outermost of the app's own, so it sees every answer (413, 503...)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless an answer starts

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
            if metrics is not None:
                metrics.observe(scope["method"], route, status, seconds)
            if log.isEnabledFor(logging.INFO):
                log.info(json.dumps({
                    "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                    "method": scope["method"], "path": scope["path"], "route": route, "status": status,
                    "ms": round(seconds * 1000, 1), "client": (scope.get("client") or ("",))[0]}))
