"""Tiyaro's asynchronous Whisper protocol, as the post's own sample client uses it.

    POST /v1/input/upload-url?extension=mp3          (key) -> 201 {"uploadUrl": {"PUT": URL}}
    PUT  URL (signed, expiring; no key)                    -> 200   (413 too large, 415 not media)
    POST /v1/async/ent/tiyarofs/1/openai/whisper-MODEL?serviceTier=cpuflex|gpuflex
         {"input": {options}, "URL": URL}            (key) -> 202 {"response": {"id", "urls": {"GET"},
                                                                   "status", "acceptedAt"}}
    GET  /v1/async/results/ID                        (key) -> 200 {"id", "status", "result" | "message"}

plus what the protocol lacks: DELETE on the poll URL cancels, an
`Idempotency-Key` header on submit returns the job that key made, and
GET /v1/async/results lists the key's jobs. Errors are Tiyaro's
`{"code": N, "message": "..."}`. A job's `URL` must be one of this server's
upload URLs: the server never fetches anything. The MODEL in the path is
recorded; the server's loaded engine does the work.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import SubtitlerError
from ..inputs import NOT_MEDIA
from ..media import probe
from .inputs import job_options
from .store import CANCELLED, SUCCESS, QueueFull
from .webhooks import callback_problem
from .workers import in_background

UPLOAD_PREFIX = "/v1/uploads/"
UPLOAD_RE = re.compile(r"^/v1/uploads/([0-9a-f]{32})\.([a-z0-9]{1,8})$")
EXTENSION_RE = re.compile(r"^[a-z0-9]{1,8}$")
MODEL_RE = re.compile(r"^whisper-[\w.-]{1,64}$")
TIERS = ("cpuflex", "gpuflex")
MAX_JSON = 1 << 20  # a submit body: options and a URL


class ApiError(Exception):
    """An error answer in Tiyaro's shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status, headers=headers)


def owner(request: Request) -> str:
    """The key's owner; 401 without a valid key."""
    found = request.app.state.keys.owner(request.headers.get("authorization"))
    if found is None:
        raise ApiError(401, "Unauthorized: a valid API key is required (Authorization: Bearer KEY)")
    return found


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def _poll_url(request: Request, job_id: str) -> str:
    return str(request.base_url).rstrip("/") + f"/v1/async/results/{job_id}"


def _summary(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    return {"id": job["id"], "status": job["state"], "urls": {"GET": _poll_url(request, job["id"])},
            "acceptedAt": _iso(job["accepted"]), "model": f"whisper-{job['model']}"}


router = APIRouter()


@router.post("/v1/input/upload-url", status_code=201,
             summary="An upload URL: signed, expiring, usable once without a key")
def upload_url(request: Request, extension: str = "", who: str = Depends(owner)) -> dict[str, Any]:
    if not EXTENSION_RE.match(extension.lower()):
        raise ApiError(400, "extension is required: the upload's file extension (mp3, wav, mp4...)")
    if f".{extension.lower()}" in NOT_MEDIA:  # a .json would be read as a saved transcript
        raise ApiError(400, f"extension {extension!r} is not a media file's (mp3, wav, mp4...)")
    state = request.app.state
    upload_id = state.store.new_upload(who, extension.lower())
    path = f"{UPLOAD_PREFIX}{upload_id}.{extension.lower()}"
    query = state.signer.sign("PUT", path, state.settings.upload_ttl)
    return {"uploadUrl": {"PUT": f"{str(request.base_url).rstrip('/')}{path}?{query}"}}


@router.put(UPLOAD_PREFIX + "{name}", summary="Upload the media's bytes to a signed upload URL")
async def upload(request: Request, name: str) -> Response:
    state = request.app.state
    path = UPLOAD_PREFIX + name
    m = UPLOAD_RE.match(path)
    reason = state.signer.check("PUT", path, request.query_params.get("expires"),
                                request.query_params.get("signature")) if m else "not an upload URL"
    if reason:
        raise ApiError(403, f"Forbidden: {reason}")
    row = await run_in_threadpool(state.store.upload, m.group(1))  # type: ignore[union-attr]
    if row is None or row["state"] == "used":
        raise ApiError(409 if row else 404, "this upload URL was used by a job already" if row
                       else "no such upload")
    limit = state.settings.max_upload
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the upload is larger than this server's limit ({limit} bytes)")
    tmp = state.store.temp_path()
    try:
        size = 0
        with open(tmp, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the upload is larger than this server's limit ({limit} bytes)")
                f.write(chunk)
        if not size:
            raise ApiError(400, "the upload is empty")
        try:
            await in_background(probe, tmp)
        except SubtitlerError:
            raise ApiError(415, "the upload is not media ffmpeg can read") from None
        await run_in_threadpool(state.store.keep_upload, row, tmp, size)
    finally:
        tmp.unlink(missing_ok=True)  # refused, or a client that went away: nothing is kept
    return Response(status_code=200)


async def _read_json(request: Request) -> Any:
    """The request's JSON body, read no further than MAX_JSON bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON:
            raise ApiError(413, f"the request body is larger than {MAX_JSON} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON") from None


@router.post("/v1/async/ent/tiyarofs/1/openai/{name}", status_code=202,
             summary="Submit a job: openai-whisper options and an upload URL of this server")
async def submit(request: Request, name: str, serviceTier: str = "cpuflex",  # noqa: N803 (Tiyaro's name)
                 who: str = Depends(owner)) -> JSONResponse:
    if not MODEL_RE.match(name):
        raise ApiError(404, f"no model {name!r} (the path ends in whisper-MODEL)")
    if serviceTier not in TIERS:
        raise ApiError(400, f"serviceTier must be one of {', '.join(TIERS)}, not {serviceTier!r}")
    data = await _read_json(request)
    if not isinstance(data, dict) or "input" not in data or not isinstance(data.get("URL"), str):
        raise ApiError(400, 'the body must be {"input": {options}, "URL": "<an upload URL of this server>"}')
    state = request.app.state
    key = request.headers.get("idempotency-key") or None
    # The store's calls in a thread: one waiting on the store's lock (a worker's commit) must not
    # hold up the event loop, and /health with it.
    known = await run_in_threadpool(state.store.by_idempotency_key, who, key) if key else None
    if known:  # the same submission again (its answer was lost): the same job, not a second one
        return JSONResponse({"response": _summary(request, known)}, 202)
    upload_id = await run_in_threadpool(_own_upload, request, data["URL"], who)
    callback = _callback_url(state.settings, data.get("callback_url"))
    try:
        options = job_options(data["input"], state.workers.spec.transcription.options)
        state.workers.base.backend_class.check_options(options)
    except SubtitlerError as e:  # BadInput, or an option this engine cannot honour
        raise ApiError(400, f"bad input: {e}") from None
    try:
        job, created = await run_in_threadpool(state.store.submit, who, upload_id, name[len("whisper-"):],
                                               serviceTier, options.to_dict(), key, state.settings.max_queue,
                                               callback)
    except QueueFull:
        raise ApiError(429, "the queue is full: try again later",
                       {"Retry-After": str(_retry_after(state))}) from None
    if created:
        state.workers.submit(job["id"])
    body = {"response": {**_summary(request, job), "status": "accepted" if created else job["state"]}}
    return JSONResponse(body, 202)


def _own_upload(request: Request, url: str, who: str) -> str:
    """The upload a job's URL names: one of this server's signed upload URLs, uploaded by this key's
    owner. Anything else is refused; nothing is ever fetched."""
    parts = urlsplit(url)
    m = UPLOAD_RE.match(parts.path)
    query = parse_qs(parts.query)
    state = request.app.state
    if (not m or parts.netloc != request.base_url.netloc
            or state.signer.check("PUT", parts.path, (query.get("expires") or [None])[0],
                                  (query.get("signature") or [None])[0], allow_expired=True)):
        raise ApiError(400, "URL must be an upload URL this server gave (POST /v1/input/upload-url); "
                            "this server fetches nothing else")
    row = state.store.upload(m.group(1))
    if row is None or row["owner"] != who:
        raise ApiError(400, "URL names no upload of this key")
    if row["state"] != "uploaded":
        raise ApiError(409 if row["state"] == "used" else 400,
                       "URL's upload is used by a job already" if row["state"] == "used"
                       else "nothing was uploaded to URL yet")
    return row["id"]


def _callback_url(settings: Any, url: Any) -> str | None:
    """A job's webhook URL (webhooks.py), if it gave one this server may post to."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise ApiError(400, "callback_url must be a URL")
    if not settings.webhook_secret:
        raise ApiError(400, "this server sends no webhooks (no webhook secret is configured)")
    problem = callback_problem(url, settings.webhook_allow)
    if problem:
        raise ApiError(400, problem)
    return url


def _retry_after(state: Any) -> int:
    """Seconds until a place in the queue is likely free: a job's mean time, shared by the workers."""
    mean = state.store.mean_seconds() or 10.0
    return max(1, round(mean * max(1, state.store.waiting()) / state.settings.workers))


@router.get("/v1/async/results/{job_id}", summary="A job's status, and its result once done")
def poll(request: Request, job_id: str, who: str = Depends(owner)) -> dict[str, Any]:
    job = request.app.state.store.job(job_id, who)
    if job is None:
        raise ApiError(404, "no such job")
    body: dict[str, Any] = {**_summary(request, job)}
    if job["state"] == SUCCESS:
        result = request.app.state.store.result(job_id)
        if result is None:
            raise ApiError(500, "the job's result cannot be read")
        body["result"] = result
    if job["message"]:  # why it failed, or that the transcript cache answered it
        body["message"] = job["message"]
    return body


@router.delete("/v1/async/results/{job_id}", summary="Cancel a job that is waiting or running")
def cancel(request: Request, job_id: str, who: str = Depends(owner)) -> dict[str, Any]:
    store = request.app.state.store
    if store.job(job_id, who) is None:
        raise ApiError(404, "no such job")
    job = store.cancel(job_id)
    assert job is not None
    if job["state"] != CANCELLED:
        raise ApiError(409, f"the job has ended already ({job['state']})")
    return {**_summary(request, job), "message": job["message"]}


@router.get("/v1/async/results", summary="This key's jobs, oldest first")
def jobs(request: Request, who: str = Depends(owner)) -> dict[str, Any]:
    return {"jobs": [_summary(request, j) for j in request.app.state.store.jobs(who)]}
