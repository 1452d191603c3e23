"""The ASGI application: the protocols' routes, /health and /ready, errors, the access log.

`create_app` wires the parts together (settings, store, keys, signer,
workers); the workers start with the application and stop with it. Around the
routes: the JSON access log and request latencies (logs.py, metrics.py),
refusing new work while the server drains (shutdown.py), body sizes and
timeouts (limits.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import __version__
from . import asr_api, openai_api
from .auth import Keys, Signer
from .limits import BodyLimits
from .logs import AccessLog
from .metrics import Metrics
from .metrics import router as metrics_router
from .shutdown import RefuseWhileDraining
from .store import Store
from .tiyaro import ApiError, error_response, router
from .workers import Workers


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
    retention: float = 86400.0  # seconds a finished job, its result and upload are kept
    grace: float = 30.0  # seconds SIGTERM waits for running jobs
    webhook_url: str | None = None  # told of every job's end
    webhook_allow: tuple[str, ...] = ()  # hosts a job's callback_url may name
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_backoff: float = 2.0  # seconds before a failed delivery's first retry; doubled each time
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 30.0  # seconds between two chunks of a request's body


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
    app.state.metrics = Metrics(store, workers)
    app.include_router(router)
    app.include_router(openai_api.router)
    app.include_router(asr_api.router)
    app.include_router(metrics_router)

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

    # The last added is the outermost: the access log sees every answer.
    app.add_middleware(BodyLimits, upload_limit=settings.max_upload, body_timeout=settings.body_timeout)
    app.add_middleware(RefuseWhileDraining, is_draining=lambda: workers.draining,
                       retry_after=max(1, round(settings.grace)))
    app.add_middleware(AccessLog)
    return app
