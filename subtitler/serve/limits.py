"""Limits on what a client can make the server hold: header and body timeouts, body sizes.

- Headers: a connection must finish a request's headers within --header-timeout
  seconds of connecting (or of its last answer), else it is closed: a client
  sending a byte a minute (slowloris) holds no connection. uvicorn itself only
  times out idle kept-alive connections (timeout_keep_alive), so its h11
  protocol is extended here; the headers' size is h11's limit (H11_MAX_HEADERS).
- Bodies: each chunk of a body must come within the body timeout (an upload
  may be slow, not stalled), else 408. A body larger than its route allows is
  refused with 413 as soon as it says so (Content-Length) or its bytes pass the
  limit (chunked): JSON bodies MAX_JSON, multipart bodies the upload limit;
  a signed upload's PUT counts its own (tiyaro.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .tiyaro import MAX_JSON, UPLOAD_PREFIX

H11_MAX_HEADERS = 64 * 1024  # bytes of a request line and headers; beyond: 400 and the connection closed


def timed_h11(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers are late."""

    class TimedH11(H11Protocol):
        _late: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._expect_headers()

        def _expect_headers(self) -> None:
            if self._late is not None:
                self._late.cancel()
            self._late = self.loop.call_later(header_timeout, self._headers_late)

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _headers_late(self) -> None:
            if self._waiting_for_headers() and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._waiting_for_headers() and self._late is not None:
                self._late.cancel()
                self._late = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._expect_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._late is not None:
                self._late.cancel()
            super().connection_lost(exc)

    return TimedH11


class BodyLimits:
    """ASGI middleware: body size limits and the body timeout (see the module's docstring)."""

    def __init__(self, app: Any, upload_limit: int, body_timeout: float) -> None:
        self.app, self.upload_limit, self.body_timeout = app, upload_limit, body_timeout

    def _limit(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> int | None:
        if scope["method"] == "PUT" and scope["path"].startswith(UPLOAD_PREFIX):
            return None  # the upload route counts against --max-upload and says so itself
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            return self.upload_limit
        return MAX_JSON

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self._limit(scope, headers)
        declared = headers.get(b"content-length", b"")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, f"the request body is larger than {limit} bytes")
            return
        started = answered = body_done = False
        received = 0

        async def receiving() -> dict[str, Any]:
            nonlocal answered, body_done, received
            if body_done:
                return await receive()  # waiting for the client to go: no timeout
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except asyncio.TimeoutError:
                message = None
            if message is None:
                why = f"the request body stalled (nothing for {self.body_timeout:g}s)"
                answered = await _refuse_once(send, started, answered, 408, why)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if limit is not None and received > limit:
                    answered = await _refuse_once(send, started, answered, 413,
                                                  f"the request body is larger than {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return  # refused here already: the app's own answer is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception:
            if not answered:
                raise
            # The app saw the client "disconnect" when the body was refused: nothing more to say.


async def _refuse_once(send: Any, started: bool, answered: bool, status: int, message: str) -> bool:
    if not (started or answered):
        await _refuse(send, status, message)
    return True


async def _refuse(send: Any, status: int, message: str) -> None:
    """An error in Tiyaro's shape; the connection closes (the rest of the body is not read)."""
    body = json.dumps({"code": status, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
