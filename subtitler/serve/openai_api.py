"""OpenAI's audio API, as its SDK and the servers that copy it speak it.

    POST /v1/audio/transcriptions   multipart: file, model, language, prompt, temperature,
                                    response_format (json | text | srt | vtt | verbose_json),
                                    timestamp_granularities[] (word and/or segment)
    POST /v1/audio/translations     the same, into English (no language, no granularities)
    GET  /v1/models, /v1/models/ID  the models a request may name

Bearer key as the rest of the server. Each request is a job of the queue
(sync.py), answered when it ends; srt and vtt are subtitler's own cue layout.
Errors are OpenAI's: `{"error": {"message", "type", "param", "code"}}`. The
model a request names must be one this server lists: `whisper-1` (what
clients send by default) or the server's own model; the server's engine does
the work.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..languages import LANGUAGES, language_code
from ..transcript import Transcript
from .sync import (
    Refused,
    api_route,
    decode_options,
    fields,
    keep_media,
    key_owner,
    multipart,
    read_form,
    render,
    server_model,
    transcribe,
)

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
         409: "invalid_request_error", 413: "invalid_request_error", 429: "requests"}


def error(e: Refused) -> JSONResponse:
    status = 400 if e.status == 415 else e.status  # OpenAI's answer to a file it cannot read
    code = e.code or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    body = {"error": {"message": e.message, "type": TYPES.get(status, "server_error"), "param": e.param,
                      "code": code}}
    return JSONResponse(body, status, headers=e.headers)


router = APIRouter(route_class=api_route(error), tags=["OpenAI's API"])


def owner(request: Request) -> str:
    found = key_owner(request)
    if found is None:
        raise Refused(401, "Incorrect API key provided: a valid key is required (Authorization: Bearer KEY)")
    return found


def models(request: Request) -> list[str]:
    """The model names a request may give: the usual alias and the server's engine's model."""
    name = server_model(request)
    return list(dict.fromkeys(["whisper-1", name, f"whisper-{name}"]))


def _model(id: str) -> dict[str, Any]:
    return {"id": id, "object": "model", "created": 0, "owned_by": "subtitler"}


@router.get("/v1/models", summary="The models a transcription may name")
def list_models(request: Request, who: str = Depends(owner)) -> dict[str, Any]:
    return {"object": "list", "data": [_model(m) for m in models(request)]}


@router.get("/v1/models/{model_id:path}", summary="One model")
def get_model(request: Request, model_id: str, who: str = Depends(owner)) -> dict[str, Any]:
    if model_id not in models(request):
        raise Refused(404, f"The model `{model_id}` does not exist", "model", "model_not_found")
    return _model(model_id)


FORM = {"model": "whisper-1, or the server's model (GET /v1/models)",
        "prompt": "Text the speech continues (names, spellings)", "temperature": "Sampling temperature",
        "response_format": " | ".join(FORMATS)}


@router.post("/v1/audio/transcriptions", summary="Transcribe audio (OpenAI's API)",
             openapi_extra=multipart("file", ("model",), **FORM, language="The spoken language (en, fr...)",
                                     timestamp_granularities__="word and/or segment (verbose_json)"))
async def transcriptions(request: Request, who: str = Depends(owner)) -> Response:
    return await _answer(request, who, "transcribe")


@router.post("/v1/audio/translations", summary="Translate audio into English (OpenAI's API)",
             openapi_extra=multipart("file", ("model",), **FORM))
async def translations(request: Request, who: str = Depends(owner)) -> Response:
    return await _answer(request, who, "translate")


def _one(values: dict[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    return given[-1] if given else None


async def _answer(request: Request, who: str, task: str) -> Response:
    form = await read_form(request)
    try:
        file, values = fields(form, "file")
        model = _one(values, "model")
        if not model:
            raise Refused(400, "you must provide a model parameter", "model")
        if model not in models(request):
            raise Refused(404, f"The model `{model}` does not exist (this server has "
                               f"{', '.join(models(request))})", "model", "model_not_found")
        fmt = _one(values, "response_format") or "json"
        if fmt not in FORMATS:
            raise Refused(400, f"response_format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                          "response_format")
        granularities = [*values.get("timestamp_granularities[]", []),
                         *values.get("timestamp_granularities", [])]
        unknown = [g for g in granularities if g not in GRANULARITIES]
        if unknown:
            raise Refused(400, f"timestamp_granularities[] are word and/or segment, not {unknown[0]!r}",
                          "timestamp_granularities[]")
        language = _one(values, "language") if task == "transcribe" else None
        if language and language_code(language) is None:
            raise Refused(400, f"language {language!r} is not one Whisper knows (ISO-639-1: en, fr...)",
                          "language")
        temperature = _one(values, "temperature")
        try:
            heat = float(temperature) if temperature else None
        except ValueError:
            raise Refused(400, f"temperature must be a number, not {temperature!r}", "temperature") from None
        options = decode_options(request, task=task, language=language or None,
                                 initial_prompt=_one(values, "prompt") or None, temperature=heat)
        media = await keep_media(request, file, "file")
    finally:
        await form.close()
    # Recorded as the engine's model: the name asked for is one of its aliases.
    transcript = await transcribe(request, who, media, options, server_model(request), "openai")
    if fmt == "json":
        return JSONResponse({"text": transcript.text})
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(render(request, transcript, fmt))
    return JSONResponse(verbose(transcript, task, granularities or ["segment"]))


def verbose(t: Transcript, task: str, granularities: list[str]) -> dict[str, Any]:
    """verbose_json: OpenAI's shape (the language as a name, words at the top level)."""
    language = "en" if task == "translate" else t.language
    body: dict[str, Any] = {"task": task, "language": LANGUAGES.get(language or "", language or ""),
                            "duration": round(t.duration, 3), "text": t.text}
    if "segment" in granularities:
        body["segments"] = [
            {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
             "temperature": s.temperature or 0.0, "avg_logprob": s.avg_logprob or 0.0,
             "compression_ratio": s.compression_ratio or 0.0, "no_speech_prob": s.no_speech_prob or 0.0}
            for i, s in enumerate(t.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end} for w in t.words]
    body["usage"] = {"type": "duration", "seconds": round(t.duration, 3)}
    return body
