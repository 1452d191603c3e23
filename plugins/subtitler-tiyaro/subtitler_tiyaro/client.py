"""A client for Tiyaro's async Whisper protocol: upload URL, PUT, submit, poll.

The retry, deadline and secrecy rules are subtitler.remote's: only the
idempotent steps (the upload URL request, the PUT and the polls) are retried,
never the job submission, and the key goes to the API's own origin only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from subtitler.plugin import (
    RemoteAuthError,
    RemoteError,
    RemoteJobFailed,
    RemoteNotFound,
    RemoteNoTimings,
    RemoteTimeout,
    ServiceClient,
)

MODEL_PATH = "/v1/async/ent/tiyarofs/1/openai/whisper-{model}"
UPLOAD_PATH = "/v1/input/upload-url"
PENDING = frozenset({"accepted", "pending", "processing", "queued", "running", "started"})

# The core's remote errors, under the names this plugin has always exported.
TiyaroError = RemoteError
TiyaroAuthError = RemoteAuthError
TiyaroNotFound = RemoteNotFound
TiyaroJobFailed = RemoteJobFailed
TiyaroNoTimings = RemoteNoTimings
TiyaroTimeout = RemoteTimeout

# Called with each new state of a job: "pending", "processing"...
OnStatus = Callable[[str], None]


def _unwrap(body: Any) -> Any:
    """The spec wraps bodies as {"response": {...}}; the sample reads them bare. Accept both."""
    if isinstance(body, dict) and isinstance(body.get("response"), dict):
        return body["response"]
    return body


class TiyaroClient(ServiceClient):
    def __init__(self, base_url: str, api_key: str, *, service_tier: str = "cpuflex",
                 poll_interval: float = 0.5, max_poll_interval: float = 15.0,
                 max_wait: float = 6 * 3600.0, **settings: Any) -> None:
        settings.setdefault("key_setting", "TIYARO_API_KEY")
        super().__init__(base_url, api_key, service="Tiyaro", **settings)
        self.service_tier = service_tier
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.max_wait = max_wait

    def timeout_hint(self) -> str:
        return ("--timeout ran out; a submitted job keeps running: "
                "run the same command again to re-attach to it")

    def upload_url(self, extension: str) -> str:
        what = "upload-url request"
        resp = self.request("POST", f"{self.base_url}{UPLOAD_PATH}", what,
                            retry=True, params={"extension": extension}, json={})
        body = self.json(resp, what)
        for shape in (body, _unwrap(body)):  # the sample's shape, and the spec's (with its typo)
            for key in ("uploadUrl", "uplaodUrl"):
                put = shape.get(key, {}).get("PUT") if isinstance(shape, dict) else None
                if isinstance(put, str) and put:
                    return put
        raise self.error(RemoteError, f"Tiyaro {what}: no uploadUrl.PUT in the answer")

    def upload(self, url: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.request("PUT", url, "upload", retry=True, content=data, headers={"Content-Type": content_type})

    def submit(self, model: str, inputs: dict[str, Any], url: str) -> tuple[str, str]:
        """Start a job; returns (job id, poll URL). Never retried."""
        what = "job submission"
        resp = self.request("POST", self.base_url + MODEL_PATH.format(model=model), what,
                            retry=False, params={"serviceTier": self.service_tier},
                            json={"input": inputs, "URL": url})
        body = _unwrap(self.json(resp, what))
        try:
            job_id, poll = str(body["id"]), body["urls"]["GET"]
        except (KeyError, TypeError):
            raise self.error(RemoteError, f"Tiyaro {what}: no id / urls.GET in the answer") from None
        return job_id, urljoin(self.base_url + "/", poll)

    def wait(self, poll_url: str, on_status: OnStatus | None = None) -> dict[str, Any]:
        """Poll until the job ends; returns its result, or raises with the server's message.

        The wait between polls grows with the time already waited (5% of it,
        between `poll_interval` and `max_poll_interval`): a result is noticed
        at most 5% late, while a long job costs few requests (the sample's
        fixed 15 s would make a 2 s job 7x slower).
        """
        started, last = time.monotonic(), None
        while True:
            body = _unwrap(self.json(self.request("GET", poll_url, "poll", retry=True), "poll"))
            status = str(body.get("status", "")).lower() if isinstance(body, dict) else ""
            if status != last and on_status:
                on_status(status)
            last = status
            if status == "success":
                result = body.get("result")
                if not isinstance(result, dict):
                    raise self.error(RemoteError, "Tiyaro job succeeded without a result object")
                return result
            if status in ("failed", "cancelled", "canceled"):
                msg = next((str(v) for v in (body.get("message"), body.get("error"),
                                             (body.get("result") or {}).get("error")
                                             if isinstance(body.get("result"), dict) else None) if v),
                           "no reason given")
                raise self.error(RemoteJobFailed, f"Tiyaro job {status}: {msg}")
            if status not in PENDING:
                raise self.error(RemoteError, f"Tiyaro poll: unexpected job status {status!r}")
            waited = time.monotonic() - started
            if waited >= self.max_wait:
                raise self.error(RemoteError, f"Tiyaro job still {status} after {waited:.0f} s")
            interval = min(self.max_poll_interval, max(self.poll_interval, 0.05 * waited))
            self.pause(interval, f"job still {status}")
