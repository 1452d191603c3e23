"""The ASGI application: the protocols' routes, /health and /ready, errors, the access log.

`create_app` wires the parts together (settings, store, keys, signer,
workers); the workers start with the application and stop with it. The access
log is one line per request with the method, the path without its query (an
upload URL's signature is in the query), the status and the time taken;
uvicorn's own access log, which would print queries, is off (server.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from . import asr_api, openai_api
from .auth import Keys, Signer
from .store import Store
from .tiyaro import ApiError, error_response, router
from .workers import Workers

access_log = logging.getLogger("subtitler.serve.access")


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 9000
    workers: int = 1
    data_dir: Path = Path("subtitler-serve")
    max_queue: int = 100  # jobs waiting, all keys together; beyond: 429
    max_upload: int = 2 * 2**30  # bytes per upload; beyond: 413
    upload_ttl: float = 3600.0  # seconds an upload URL can be used
    insecure_no_auth: bool = False


def create_app(settings: ServeSettings, store: Store, keys: Keys, signer: Signer, workers: Workers,
               on_engine_error: Callable[[Exception], None] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers.start(on_engine_error)
        yield
        workers.stop()

    app = FastAPI(title="subtitler serve", version=__version__, lifespan=lifespan,
                  description="Whisper transcription jobs: Tiyaro's asynchronous protocol.")
    app.state.settings, app.state.store, app.state.keys = settings, store, keys
    app.state.signer, app.state.workers = signer, workers
    app.include_router(router)
    app.include_router(openai_api.router)
    app.include_router(asr_api.router)

    @app.get("/health", summary="Liveness: the server answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the engines are loaded")
    async def ready() -> JSONResponse:
        if workers.error is not None:
            return JSONResponse({"ready": False, "error": str(workers.error)}, 503)
        loaded = workers.ready.is_set()
        return JSONResponse({"ready": loaded, "workers": settings.workers}, 200 if loaded else 503)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        return error_response(400, f"bad request: {where}")

    @app.middleware("http")
    async def log_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            access_log.info("%s %s %d %.1fms", request.method, request.url.path, status,
                            (time.perf_counter() - start) * 1000)

    return app
