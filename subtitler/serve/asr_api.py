"""whisper-asr-webservice's API, which Bazarr's Whisper provider and other media-server add-ons call.

    POST /asr?encode=&task=&language=&initial_prompt=&vad_filter=&word_timestamps=&output=
         multipart audio_file             -> 200 text/plain, Content-Disposition: attachment;
                                             filename="<upload name>.<output>"
    POST /detect-language?encode=         -> {"detected_language", "language_code", "confidence"}

`encode=false` (what Bazarr sends): the file is headerless 16-bit mono 16 kHz
PCM; `encode=true` (the default): any media, decoded by ffmpeg. `output` is
txt, vtt, srt, tsv or json (openai-whisper's result dict); txt, vtt, srt and
tsv are subtitler's own cue layout. VAD and the word times are always on (the
server's settings), so `vad_filter` and `word_timestamps` change nothing.
Language detection hears the first 30 s, as Whisper's own does; `confidence`
is the engine's probability of that language (faster-whisper's; null from
openai-whisper's, which does not tell it; an English-only model says 1.0).

Each request is a job of the queue (sync.py). Bazarr saves whatever body comes
back as the SRT without looking at the status, so an error is never a 200 and
its body is JSON (`{"detail": "..."}`, FastAPI's shape, as that project's
errors), never something that reads as subtitles. That project has no keys:
with keys configured, the key goes as a bearer token, or as the password of the
URL's user part (`http://any:KEY@host:9000`: Bazarr's endpoint setting), which
HTTP clients send as Basic authentication.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from ..languages import LANGUAGES
from ..whisper_compat import to_whisper_result
from . import sync
from .sync import Refused, api_route, key_owner

FORMATS = {"txt": "txt", "vtt": "vtt", "srt": "srt", "tsv": "tsv"}


def error(e: Refused) -> JSONResponse:
    return JSONResponse({"detail": e.message}, e.status, headers=e.headers)


router = APIRouter(route_class=api_route(error, invalid_status=422), tags=["whisper-asr-webservice's API"])


def owner(request: Request) -> str:
    """The key's owner: a bearer key, or Basic authentication with the key as the password."""
    header = request.headers.get("authorization") or ""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            header = "Bearer " + base64.b64decode(credentials, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            header = ""
    found = key_owner(request, header or None)
    if found is None:
        raise Refused(401, "a valid API key is required (Authorization: Bearer KEY, or the endpoint URL "
                           "as http://user:KEY@host:port)", headers={"WWW-Authenticate": "Basic"})
    return found


def _engine_name(request: Request) -> str:
    name = request.app.state.workers.spec.transcription.engine.backend
    return {"faster-whisper": "faster_whisper", "whisper": "openai_whisper"}.get(name, name)


@router.post("/asr", summary="Transcribe or translate audio (whisper-asr-webservice's API)",
             openapi_extra=sync.multipart("audio_file"))
async def asr(request: Request,
              encode: bool = Query(True, description="true: any media, decoded by ffmpeg; false: headerless "
                                                     "16-bit mono 16 kHz PCM"),
              task: Literal["transcribe", "translate"] = "transcribe",
              language: str | None = None,
              initial_prompt: str | None = None,
              vad_filter: bool = Query(False, description="Ignored: VAD is always on"),
              word_timestamps: bool = Query(False, description="Ignored: words are always timed"),
              output: Literal["txt", "vtt", "srt", "tsv", "json"] = "txt",
              who: str = Depends(owner)) -> Response:
    form = await sync.read_form(request)
    try:
        file, _ = sync.fields(form, "audio_file")
        options = sync.decode_options(request, task=task, language=language or None,
                                 initial_prompt=initial_prompt or None)
        media = await sync.keep_media(request, file, "audio_file", pcm=not encode)
    finally:
        await form.close()
    model = sync.server_model(request)
    transcript = await sync.transcribe(request, who, media, options, model, "asr")
    if output == "json":
        body = json.dumps(to_whisper_result(transcript), ensure_ascii=False)
    else:
        body = sync.render(request, transcript, FORMATS[output])
    return Response(body, media_type="text/plain", headers={
        "Asr-Engine": _engine_name(request),
        "Content-Disposition": f'attachment; filename="{quote(media.filename)}.{output}"'})


@router.post("/detect-language", summary="The spoken language (whisper-asr-webservice's API)",
             openapi_extra=sync.multipart("audio_file"))
async def detect_language(request: Request,
                          encode: bool = Query(True, description="true: any media, decoded by ffmpeg; "
                                                                 "false: headerless 16-bit mono 16 kHz PCM"),
                          who: str = Depends(owner)) -> dict[str, Any]:
    form = await sync.read_form(request)
    try:
        file, _ = sync.fields(form, "audio_file")
        # Detected, whatever the server's default language.
        options = dataclasses.replace(sync.decode_options(request, task="transcribe"), language=None)
        media = await sync.keep_media(request, file, "audio_file", pcm=not encode,
                                      seconds=sync.DETECT_SECONDS)
    finally:
        await form.close()
    model = sync.server_model(request)
    transcript = await sync.transcribe(request, who, media, options, model, "asr")
    code = transcript.language
    if not code:
        raise Refused(422, "no speech in the first 30 s to detect a language in")
    return {"detected_language": LANGUAGES.get(code, code), "language_code": code,
            "confidence": transcript.meta.get("language_probability")}
