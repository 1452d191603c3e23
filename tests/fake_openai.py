"""A faithful fake of OpenAI's `POST /v1/audio/transcriptions`: a real HTTP server on 127.0.0.1.

It parses the multipart form as the real endpoint does, checks the bearer key
(when it has one), the model, the form fields and the upload size, and
answers `verbose_json` in OpenAI's shape: `language` as a full name
("english"), segments without words, words at the top level. The words come
from `transcribe` (the uploaded bytes and the form in, a Transcript out).

Faults: those of fake_http.FakeService (5xx/429 bursts, malformed JSON,
connection resets, 413 past `max_upload`, slow answers), plus `language_as_code` (as
self-hosted servers answer), `text_only` and `no_words`.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from subtitler.languages import LANGUAGES
from subtitler.transcript import Transcript

from .fake_http import Answer, FakeService

MODELS = ("whisper-1", "Systran/faster-whisper-tiny.en")
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


@dataclass
class Upload:
    """One transcription request's form."""

    fields: dict[str, list[str]]
    filename: str
    content_type: str
    data: bytes


@dataclass
class FakeOpenAI(FakeService):
    transcribe: Callable[[bytes, dict[str, list[str]]], Transcript] | None = None
    key: str | None = None  # None: a self-hosted server that takes no key
    language_as_code: bool = False
    text_only: bool = False  # answer {"text": ...} whatever was asked
    no_words: bool = False  # segments only
    uploads: list[Upload] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    UPLOADS: ClassVar[frozenset[str]] = frozenset({"transcriptions", "translations"})

    @property
    def base_url(self) -> str:
        return self.url("api") + "/v1"

    def endpoint(self, host: str, method: str, path: str) -> str:
        if method == "POST" and path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            return path.rsplit("/", 1)[1]
        return "other"

    def error(self, status: int, message: str, code: str | None = None) -> Answer:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, {}

    def route(self, host: str, endpoint: str, method: str, path: str, query: dict[str, list[str]],
              headers: dict[str, str], body: bytes) -> Answer:
        if self.key is not None and headers.get("Authorization") != f"Bearer {self.key}":
            return self.error(401, "Incorrect API key provided: sk-...", "invalid_api_key")
        if endpoint == "other":
            return self.error(404, f"Invalid URL ({method} {path})")
        upload = _parse_form(headers.get("Content-Type", ""), body)
        if upload is None:
            return self.error(400, "Could not parse multipart form")
        model = (upload.fields.get("model") or [""])[0]
        if model not in MODELS:
            return self.error(404, f"The model `{model}` does not exist", "model_not_found")
        fmt = (upload.fields.get("response_format") or ["json"])[0]
        if fmt not in FORMATS:
            return self.error(400, f"Invalid response_format {fmt!r}")
        with self._lock:
            self.uploads.append(upload)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            assert self.transcribe is not None
            t = self.transcribe(upload.data, upload.fields)
        finally:
            with self._lock:
                self.in_flight -= 1
        if self.text_only or fmt == "json":
            return 200, {"text": t.text}, {}
        if fmt != "verbose_json":
            return self.error(400, "this fake answers json and verbose_json only")
        granularities = upload.fields.get("timestamp_granularities[]") or ["segment"]
        answer: dict[str, Any] = {
            "task": "translate" if endpoint == "translations" else "transcribe",
            "language": t.language if self.language_as_code else LANGUAGES.get(t.language or "", "english"),
            "duration": t.duration, "text": t.text,
        }
        if "segment" in granularities:
            answer["segments"] = [
                {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
                 "temperature": s.temperature or 0.0, "avg_logprob": s.avg_logprob,
                 "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                for i, s in enumerate(t.segments)]
        if "word" in granularities and not self.no_words:
            answer["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end} for w in t.words]
        return 200, answer, {}


def _parse_form(content_type: str, body: bytes) -> Upload | None:
    """multipart/form-data, parsed with the standard library's MIME parser."""
    if not content_type.startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        return None
    fields: dict[str, list[str]] = {}
    upload = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            upload = (part.get_filename() or "", part.get_content_type(), payload)
        elif name:
            fields.setdefault(str(name), []).append(payload.decode())
    if upload is None:
        return None
    return Upload(fields, *upload)
