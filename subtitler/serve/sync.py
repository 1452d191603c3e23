"""Answering in the request itself: an upload run as a job of the queue, waited for, rendered.

OpenAI's API and whisper-asr-webservice's answer with the transcription in the
request that sent the audio. Here such a request still becomes a job of the
store, run by the same workers in the same queue as Tiyaro's jobs: the same
429 (with Retry-After) when the queue is full, the same transcript cache, VAD
and hallucination guards, the job listed for its key. The request waits for
its job (the event loop is free meanwhile); a client that goes away cancels
it. Subtitles are laid out by subtitler's own cues and the server's profile,
as the command line writes them.

Each API turns a `Refused` into its own error shape (`api_route`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from ..cues import build_cues
from ..errors import SubtitlerError
from ..formats import get_format
from ..media import SAMPLE_RATE, MediaInfo, ffmpeg_path, find_tools, probe
from ..options import DecodeOptions
from ..process import run
from ..transcript import Source, Transcript
from ..whisper_compat import from_whisper_result
from .store import CANCELLED, SUCCESS, UNFINISHED, QueueFull
from .tiyaro import EXTENSION_RE, _retry_after
from .workers import in_background

FORM_OVERHEAD = 1 << 16  # a form's fields and boundaries, beside the file's bytes
DETECT_SECONDS = 30  # language detection hears the start, as Whisper's own does


class Refused(Exception):
    """A request this API answers with an error: the status, why, and the parameter at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def api_route(answer: Callable[[Refused], Response], invalid_status: int = 400) -> type[APIRoute]:
    """A route class whose errors (Refused, and parameters FastAPI finds invalid) are answered in
    an API's own shape by `answer`, not in Tiyaro's as the rest of the server's."""

    class Route(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def answered(request: Request) -> Response:
                try:
                    return await handler(request)
                except Refused as e:
                    return answer(e)
                except RequestValidationError as e:
                    first = e.errors()[0]
                    param = str(first["loc"][-1]) if first.get("loc") else None
                    return answer(Refused(invalid_status, f"{param}: {first['msg']}", param))

            return answered

    return Route


def multipart(file_field: str, required: tuple[str, ...] = (), **fields: str) -> dict[str, Any]:
    """The OpenAPI description (/docs) of a multipart body these routes read themselves: the file,
    then text `fields` (name: description)."""
    properties = {file_field: {"type": "string", "format": "binary", "description": "The audio"},
                  **{name.replace("__", "[]"): {"type": "string", "description": text}
                     for name, text in fields.items()}}
    schema = {"type": "object", "required": [file_field, *required], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def key_owner(request: Request, authorization: str | None = None) -> str | None:
    """The owner of the request's key (Authorization: Bearer KEY), or None."""
    return request.app.state.keys.owner(authorization or request.headers.get("authorization"))


async def read_form(request: Request) -> FormData:
    """The request's multipart form, read no further than the server's upload limit (413): the
    file spooled to a temporary file. Close it when done."""
    limit = request.app.state.settings.max_upload + FORM_OVERHEAD
    too_large = Refused(413, f"the upload is larger than this server's limit "
                             f"({request.app.state.settings.max_upload} bytes)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refused(400, "the request must be multipart/form-data, the audio a file of its form")
    received = 0

    async def counted() -> Any:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:  # a chunked body says no length: counted as it comes
            raise too_large
        return message

    try:
        return await Request(request.scope, counted).form(max_files=1, max_fields=64)
    except (MultiPartException, ClientDisconnect) as e:
        raise Refused(400, f"the multipart form cannot be read ({e})") from None


def fields(form: FormData, file_field: str) -> tuple[UploadFile, dict[str, list[str]]]:
    """The form's file (400 naming the field if there is none) and its other fields."""
    file = form.get(file_field)
    if not isinstance(file, UploadFile):
        raise Refused(400, f"{file_field} is required: the audio, as a file of the multipart form",
                      file_field)
    values: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(name, []).append(value)
    return file, values


def _wav_header(size: int) -> bytes:
    """A WAV header for `size` bytes of 16-bit mono PCM at 16 kHz."""
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", size))


# How media files begin (RIFF/WAVE, tagged MP3, Ogg, FLAC, Matroska; MP4: "ftyp" at 4): never raw PCM's
# first samples but by a rare chance (two-byte marks, as an untagged MP3's, would be too common).
MEDIA_MAGIC = (b"RIFF", b"ID3", b"OggS", b"fLaC", b"\x1a\x45\xdf\xa3")


@dataclass
class Media:
    """An upload kept in the store's tmp/, checked: where, how big, what ffprobe says."""

    path: Path
    size: int
    info: MediaInfo
    filename: str

    @property
    def duration(self) -> float:
        return float(self.info.duration or self.info.audio[0].duration or 0.0)


async def keep_media(request: Request, file: UploadFile, file_field: str, *, pcm: bool = False,
                     seconds: float | None = None) -> Media:
    """The uploaded file as a checked media file in the store's tmp/ (removed if refused).
    `pcm`: the bytes are headerless 16-bit mono 16 kHz PCM, made a WAV file here; `seconds`: keep
    only the start (decoded by ffmpeg to WAV)."""
    store = request.app.state.store
    tmp = store.temp_path()

    def copy() -> int:
        head = file.file.read(8)
        if pcm and (head.startswith(MEDIA_MAGIC) or head[4:8] == b"ftyp"):
            raise Refused(400, f"{file_field} is a media file, not raw PCM: send it with encode=true",
                          "encode")
        file.file.seek(0)
        size = file.size if file.size is not None else len(file.file.read())
        file.file.seek(0)
        if not size:
            raise Refused(400, f"{file_field} is empty", file_field)
        if pcm and size % 2:
            raise Refused(400, f"{file_field} is not 16-bit PCM (an odd number of bytes)", file_field)
        if pcm and seconds is not None:
            size = min(size, int(seconds * SAMPLE_RATE) * 2)
        with open(tmp, "wb") as out:
            if pcm:
                out.write(_wav_header(size))
            left = size
            size += out.tell()
            while left > 0:
                chunk = file.file.read(min(left, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                left -= len(chunk)
        return size

    try:
        size = await in_background(copy)
        try:
            info = await in_background(probe, tmp)
        except SubtitlerError:
            raise Refused(415, f"{file_field} is not media ffmpeg can read", file_field) from None
        if not info.audio:
            raise Refused(400, f"{file_field} has no audio stream", file_field)
        if seconds is not None and not pcm:
            whole, tmp = tmp, store.temp_path()
            try:
                await in_background(_cut, whole, tmp, seconds)
            finally:
                whole.unlink()
            info = await in_background(probe, tmp)
            size = tmp.stat().st_size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Media(tmp, size, info, file.filename or file_field)


def _cut(source: Path, target: Path, seconds: float) -> None:
    """The first `seconds` of `source`'s first audio stream, as 16 kHz mono WAV."""
    proc = run([find_tools().ffmpeg, "-nostdin", "-v", "error", "-i", ffmpeg_path(source), "-map", "0:a:0",
                "-t", str(seconds), "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav",
                ffmpeg_path(target)])
    if proc.returncode or not target.is_file():
        raise Refused(415, "the audio cannot be decoded")


def server_model(request: Request) -> str:
    """The model the server's engines run."""
    workers = request.app.state.workers
    return str(workers.spec.transcription.engine.model or workers.base.backend_class.default_model)


def decode_options(request: Request, **given: Any) -> DecodeOptions:
    """The server's decoding defaults with the request's `given` values (None: not given); 400
    naming a value the options or the engine refuse."""
    workers = request.app.state.workers
    values = {k: v for k, v in given.items() if v is not None}
    try:
        options = dataclasses.replace(workers.spec.transcription.options, **values)
        workers.base.backend_class.check_options(options)
    except SubtitlerError as e:
        text = str(e)
        raise Refused(400, text, next((k for k in values if k in text), None)) from None
    return options


async def transcribe(request: Request, who: str, media: Media, options: DecodeOptions, model: str,
                     api: str) -> Transcript:
    """Run `media` (taken over: the store owns it from here) as a job of `who` and wait for its
    transcript, on the file's clock, knowing its duration. Refused: queue full (429), the job
    failed (400: its reason; 500 for the server's own failures), the client went away."""
    state = request.app.state
    store = state.store
    # The client's extension helps ffmpeg tell formats apart; none, an odd one or .json (the job path
    # reads a .json input as a saved transcript): "media".
    suffix = PurePath(media.filename).suffix.lower()[1:]
    ext = "wav" if media.info.format_name == "wav" else \
        suffix if EXTENSION_RE.match(suffix) and suffix != "json" else "media"
    try:
        upload_id = await run_in_threadpool(store.new_upload, who, ext)
        await run_in_threadpool(store.keep_upload, store.upload(upload_id), media.path, media.size)
    finally:
        media.path.unlink(missing_ok=True)
    upload_path = store.upload_path(store.upload(upload_id))
    try:
        try:
            job, _ = await run_in_threadpool(store.submit, who, upload_id, model, api, options.to_dict(),
                                             None, state.settings.max_queue)
        except QueueFull:
            raise Refused(429, "the queue is full: try again later", code="queue_full",
                          headers={"Retry-After": str(_retry_after(state))}) from None
        state.workers.submit(job["id"])
        job = await _wait(request, job["id"])
    finally:
        upload_path.unlink(missing_ok=True)  # no later job can use it: only its result is kept
    if job["state"] == SUCCESS:
        result = store.result(job["id"])
        if result is None:
            raise Refused(500, "the job's result cannot be read")
        transcript = from_whisper_result(result)
        transcript.duration = max(media.duration, transcript.duration)
        transcript.source = Source(input=media.filename, media_duration=media.duration or None,
                                   task=options.task)
        return transcript
    if job["state"] == CANCELLED:
        raise Refused(409, "the job was cancelled")
    message = job["message"] or "the job failed"
    server_fault = message.startswith(("internal error", "the upload is gone"))
    raise Refused(500 if server_fault else 400, message)


async def _wait(request: Request, job_id: str) -> dict[str, Any]:
    """The job once it has ended; cancelled if the client goes away first."""
    store = request.app.state.store
    gone = asyncio.ensure_future(_disconnected(request))
    delay = 0.02
    try:
        while True:
            job = store.job(job_id)
            if job is None:
                raise Refused(500, "the job is gone")
            if job["state"] not in UNFINISHED:
                return job
            if gone.done():
                store.cancel(job_id)
                raise Refused(400, "the client went away: the job is cancelled")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
    finally:
        gone.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away. (Request.is_disconnected never says so behind the
    app's http middleware: its check is cancelled before the middleware passes the news on.)"""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def render(request: Request, transcript: Transcript, fmt: str) -> str:
    """The transcript as `fmt` (srt, vtt, txt, tsv), laid out by subtitler's cues and the server's
    profile, as the command line writes files."""
    if transcript.source and transcript.source.task == "translate":
        transcript = dataclasses.replace(transcript, language="en")  # the text is English: its rules
    cues = build_cues(transcript, request.app.state.workers.spec.render.profile)
    return get_format(fmt).dumps(transcript, cues, request.app.state.workers.spec.render.style)
