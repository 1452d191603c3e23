"""A faithful fake of Tiyaro's async Whisper API: real HTTP servers on 127.0.0.1.

Two servers, like the real service: the API host (bearer auth, upload-url,
submit, poll) and a separate "storage host" that takes the presigned PUT and
records the headers it got, so tests can check the key never went there.

    with FakeTiyaro(result=lambda audio, inputs, model: {...}) as fake:
        os.environ["TIYARO_BASE_URL"] = fake.base_url

The job's result comes from the `result` callable (the uploaded bytes, the
job's `input` and the model name in, an openai-whisper-style dict out).
Faults: those of fake_http.FakeService (5xx/429 bursts, malformed JSON,
connection resets, 413 past `max_upload` on the PUT), plus `final_status` /
`final_message` (failed, cancelled), `polls_before_success`, `job_seconds`,
`never_finish`, `text_only`, `no_words` and `wrapped`.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .fake_http import Answer, FakeService

MODEL_RE = re.compile(r"^/v1/async/ent/tiyarofs/1/openai/whisper-(tiny|base|small|medium|large)(\.en)?$")
POLL_RE = re.compile(r"^/v1/async/results/([0-9a-f]+)$")
OBJECT_RE = re.compile(r"^/objects/([0-9a-f]+)\.(\w+)$")
TIERS = ("cpuflex", "gpuflex")


@dataclass
class Job:
    id: str
    model: str
    tier: str
    inputs: dict[str, Any]
    url: str
    polls: int = 0
    submitted: float = field(default_factory=time.monotonic)
    finished: float | None = None  # when the success answer went out
    first_poll: float | None = None
    last_poll: float | None = None


@dataclass
class FakeTiyaro(FakeService):
    result: Callable[[bytes, dict[str, Any], str], dict[str, Any]] | None = None
    wrapped: bool = True  # poll answers as {"response": {...}} (the spec) or bare (the sample)
    polls_before_success: int = 0  # polls answered "pending"/"processing" first
    job_seconds: float = 0.0  # and the server's own processing time before a job can succeed
    never_finish: bool = False  # jobs stay "processing" forever
    final_status: str = "success"  # or "failed" / "cancelled"
    final_message: str = "model crashed"
    text_only: bool = False  # the result keeps only "text"
    # Segments without "words": openai-whisper's transcribe() without word_timestamps, what the
    # service runs (the plugin cannot ask for word times: it is not one of Tiyaro's inputs).
    no_words: bool = False
    max_in_flight: int = 0  # most jobs submitted and not yet finished at one time
    objects: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)

    HOSTS: ClassVar[tuple[str, ...]] = ("api", "storage")
    UPLOADS: ClassVar[frozenset[str]] = frozenset({"put"})

    @property
    def base_url(self) -> str:
        return self.url("api")

    @property
    def storage_url(self) -> str:
        return self.url("storage")

    def endpoint(self, host: str, method: str, path: str) -> str:
        if host == "storage":
            return "put" if method == "PUT" else "other"
        if method == "POST" and path == "/v1/input/upload-url":
            return "upload-url"
        if method == "POST" and MODEL_RE.match(path):
            return "submit"
        if method == "GET" and POLL_RE.match(path):
            return "poll"
        return "other"

    def route(self, host: str, endpoint: str, method: str, path: str, query: dict[str, list[str]],
              headers: dict[str, str], body: bytes) -> Answer:
        if host == "storage":
            return self._storage(method, path, body)
        if headers.get("Authorization") != f"Bearer {self.key}":
            return self.error(401, "Unauthorized: invalid API key")
        if endpoint == "upload-url":
            ext = query.get("extension", [""])[0]
            if not ext:
                return self.error(400, "extension is required")
            put = f"{self.storage_url}/objects/{uuid.uuid4().hex}.{ext}?X-Amz-Signature={uuid.uuid4().hex}"
            return 201, {"uploadUrl": {"PUT": put}}, {}
        if endpoint == "submit":
            return self._submit(path, query, body)
        if endpoint == "poll":
            return self._poll(POLL_RE.match(path).group(1))  # type: ignore[union-attr]
        return self.error(404, f"no route for {method} {path}")

    def _storage(self, method: str, path: str, body: bytes) -> Answer:
        m = OBJECT_RE.match(path)
        if method != "PUT" or not m:
            return self.error(404, "NoSuchKey")
        with self._lock:
            self.objects[m.group(1)] = body
        return 200, None, {}

    def _submit(self, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        m = MODEL_RE.match(path)
        assert m
        tier = query.get("serviceTier", [""])[0]
        if tier not in TIERS:
            return self.error(400, f"bad serviceTier {tier!r}")
        try:
            data = json.loads(body)
            inputs, url = data["input"], data["URL"]
        except (ValueError, KeyError, TypeError):
            return self.error(400, "body must be {\"input\": {...}, \"URL\": ...}")
        obj = OBJECT_RE.match(urlsplit(url).path)
        if not isinstance(inputs, dict) or not obj or obj.group(1) not in self.objects:
            return self.error(400, "URL is not an uploaded object")
        job = Job(uuid.uuid4().hex, m.group(1) + (m.group(2) or ""), tier, inputs, url)
        with self._lock:
            self.jobs[job.id] = job
            in_flight = sum(j.finished is None for j in self.jobs.values())
            self.max_in_flight = max(self.max_in_flight, in_flight)
        accepted = datetime.datetime.now(datetime.timezone.utc).isoformat()
        return 202, {"response": {"id": job.id, "urls": {"GET": f"{self.base_url}/v1/async/results/{job.id}"},
                                  "status": "accepted", "acceptedAt": accepted}}, {}

    def _poll(self, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return self.error(404, "no such job")
        job.polls += 1
        job.last_poll = time.monotonic()
        job.first_poll = job.first_poll or job.last_poll
        if (self.never_finish or job.polls <= self.polls_before_success
                or time.monotonic() - job.submitted < self.job_seconds):
            body: dict[str, Any] = {"id": job.id, "status": "pending" if job.polls == 1 else "processing"}
        elif self.final_status != "success":
            body = {"id": job.id, "status": self.final_status, "message": self.final_message}
        else:
            obj = OBJECT_RE.match(urlsplit(job.url).path)
            assert obj and self.result is not None
            result = self.result(self.objects[obj.group(1)], job.inputs, job.model)
            if self.text_only:
                result = {"text": result["text"]}
            if self.no_words:
                result = {**result, "segments": [{k: v for k, v in s.items() if k != "words"}
                                                 for s in result["segments"]]}
            body = {"id": job.id, "status": "success", "result": result}
            job.finished = time.monotonic()
        return 200, ({"response": body} if self.wrapped else body), {}
