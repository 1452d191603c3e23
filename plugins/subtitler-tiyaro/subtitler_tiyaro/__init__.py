"""subtitler backend: Tiyaro's async Whisper API, against any server speaking its protocol.

Settings, each from the environment or else the config file's [backends.tiyaro]
table (`base-url = "https://..."`): TIYARO_API_KEY (required), TIYARO_BASE_URL (default
https://api.tiyaro.ai), TIYARO_SERVICE_TIER (cpuflex or gpuflex, default
cpuflex), TIYARO_POLL_INTERVAL (shortest wait between polls in seconds,
default 0.5: at most 2 polls a second per job; the wait grows to 5% of the
time already waited, up to 15 s), TIYARO_UPLOAD_FORMAT (mp3, ogg, flac or
wav, default mp3: 48 kbit/s mono, a fifth of WAV), TIYARO_TIMEOUT (seconds
one request may take, its whole answer and the upload included, default 60),
TIYARO_MAX_ANSWER (the largest answer read, in bytes, default 64 MiB).

Resume: as soon as a job is submitted, its id and poll URL are saved in the
user's state directory (SUBTITLER_STATE_DIR overrides it), keyed by the audio
and every setting that shapes the result. Running the same command again
after a crash or Ctrl-C polls that job instead of uploading and submitting
again; a finished result is kept there too, so it is never fetched twice.
The key is never written there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from subtitler.plugin import (
    API_VERSION,
    DEFAULT_MAX_ANSWER,
    DEFAULT_UPLOAD_FORMAT,
    UPLOAD_FORMATS,
    Backend,
    BackendSettings,
    BackendUnavailable,
    DecodeOptions,
    EngineSpec,
    Report,
    Segment,
    Setting,
    Transcript,
    Word,
    atomic_write,
    check_english_only,
    encode_audio,
    missing,
)

from .client import (
    TiyaroAuthError,
    TiyaroClient,
    TiyaroError,
    TiyaroJobFailed,
    TiyaroNotFound,
    TiyaroNoTimings,
    TiyaroTimeout,
)

__all__ = ["TiyaroBackend", "TiyaroError", "TiyaroAuthError", "TiyaroNotFound",
           "TiyaroJobFailed", "TiyaroNoTimings", "TiyaroTimeout", "tiyaro_input",
           "to_transcript"]

DEFAULT_BASE_URL = "https://api.tiyaro.ai"
SAMPLE_RATE = 16000
MODELS = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large")
SERVICE_TIERS = ("cpuflex", "gpuflex")


def tiyaro_input(options: DecodeOptions) -> dict[str, Any]:
    """The job's `input`: DecodeOptions already use Tiyaro's names; `vad`, `batch_size` and
    `refine_timing` (done here, on the returned words) are subtitler's own."""
    data = options.to_dict()
    del data["vad"], data["batch_size"], data["refine_timing"]
    if data["language"] is None:
        del data["language"]  # omitted = detect the language
    return data


def state_dir() -> Path:
    """Where submitted jobs are remembered (SUBTITLER_STATE_DIR overrides the user state dir)."""
    root = os.environ.get("SUBTITLER_STATE_DIR") or platformdirs.user_state_dir("subtitler")
    return Path(root) / "tiyaro-jobs"


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none yet, or unreadable: start a new job
    return state if isinstance(state, dict) and "poll_url" in state else None


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(state, indent=1).encode("utf-8"))


def _forget(path: Path) -> None:
    with contextlib.suppress(OSError):  # missing, or in a folder that cannot be written
        path.unlink()


def to_transcript(result: dict[str, Any], duration: float, language: str | None,
                  meta: dict[str, Any]) -> Transcript:
    """An openai-whisper transcribe() dict as a Transcript; a text-only result is refused."""
    segments = result.get("segments")
    if not isinstance(segments, list) or (not segments and str(result.get("text") or "").strip()):
        raise TiyaroNoTimings("the Tiyaro result has text but no segment timings, "
                              "and subtitles need timings")
    try:
        out = [
            Segment(float(s["start"]), float(s["end"]), s["text"],
                    [Word(float(w["start"]), float(w["end"]), w["word"], float(w.get("probability", 1.0)))
                     for w in s.get("words") or []],
                    s.get("avg_logprob"), s.get("no_speech_prob"),
                    s.get("compression_ratio"), s.get("temperature"))
            for s in segments
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise TiyaroError(f"malformed Tiyaro result segment: {type(e).__name__}: {e}") from None
    return Transcript(result.get("language") or language, duration, out, meta)


class TiyaroBackend(Backend):
    api_version = API_VERSION
    name = "tiyaro"
    description = "Tiyaro's async Whisper API (TIYARO_API_KEY; TIYARO_BASE_URL for another server)"
    # The service runs its own pipeline: subtitler's `vad` cannot be passed on, so --no-vad is refused.
    supported_options = frozenset(DecodeOptions.names()) - {"vad", "batch_size"}
    supports_timeout = True
    parallel_files = True  # the work happens on the server; the client only waits
    remote = True
    auto_priority = None
    declared_settings = (
        Setting("api-key", "TIYARO_API_KEY", secret=True),
        Setting("base-url", "TIYARO_BASE_URL", DEFAULT_BASE_URL),
        Setting("service-tier", "TIYARO_SERVICE_TIER", "cpuflex", choices=SERVICE_TIERS),
        Setting("poll-interval", "TIYARO_POLL_INTERVAL", 0.5, float, shapes_result=False),
        Setting("upload-format", "TIYARO_UPLOAD_FORMAT", DEFAULT_UPLOAD_FORMAT,
                choices=tuple(UPLOAD_FORMATS)),
        Setting("timeout", "TIYARO_TIMEOUT", 60.0, float, shapes_result=False),
        Setting("max-answer", "TIYARO_MAX_ANSWER", DEFAULT_MAX_ANSWER, int, shapes_result=False),
    )

    def __init__(self, spec: EngineSpec, settings: BackendSettings | None = None) -> None:
        super().__init__(spec, settings)
        s = self.settings
        reason = self.unavailable_reason(s)
        if reason:
            raise BackendUnavailable(f"backend 'tiyaro' is unavailable: {reason}")
        if self.model_name not in MODELS:
            raise BackendUnavailable(f"Tiyaro has no model {self.model_name!r} "
                                     f"(choose one of {', '.join(MODELS)})")
        self.base_url, self.upload_format = s["base-url"], s["upload-format"]
        self.client = TiyaroClient(self.base_url, s["api-key"], service_tier=s["service-tier"],
                                   poll_interval=s["poll-interval"], key_setting=s.named("api-key"),
                                   read_timeout=s["timeout"], max_answer=s["max-answer"],
                                   max_answer_setting=s.named("max-answer"))

    def prepare(self, audio: np.ndarray) -> bytes:
        """The upload, encoded ahead (in a batch's decode stage)."""
        return encode_audio(audio, self.upload_format)

    @classmethod
    def unavailable_reason(cls, settings: BackendSettings) -> str | None:
        if missing("httpx"):
            return "httpx is not installed (pip install httpx)"
        if not settings["api-key"]:
            return "TIYARO_API_KEY is not set (nor api-key in [backends.tiyaro])"
        return None

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        check_english_only(self.model_name, not self.model_name.endswith(".en"), options)
        self.client.start_deadline(self.timeout)
        inputs = tiyaro_input(options)
        settings = json.dumps([self.base_url, self.model_name, self.client.service_tier,
                               self.upload_format, inputs], sort_keys=True)
        key = hashlib.sha256(np.asarray(audio, "<f4").tobytes() + settings.encode()).hexdigest()[:32]
        result = self._result(state_dir() / f"{key}.json", audio, inputs, report, prepared)
        duration = len(audio) / SAMPLE_RATE
        transcript = to_transcript(result, duration, options.language, {
            "backend": self.name, "model": self.model_name, "base_url": self.base_url,
            "service_tier": self.client.service_tier, "options": options.to_dict(),
        })
        report.progress(duration)
        return transcript

    def _result(self, state_path: Path, audio: np.ndarray, inputs: dict[str, Any], report: Report,
                prepared: bytes | None) -> dict[str, Any]:
        """The job's result: kept, re-attached to, or from a new upload and submission."""
        state = _load_state(state_path)
        if state and isinstance(state.get("result"), dict):
            report.status(f"job {state.get('job_id')}: result kept from an earlier run")
            return state["result"]
        if state:
            report.status(f"job {state.get('job_id')}: re-attaching")
            try:
                return self._finish(state_path, state, report)
            except TiyaroNotFound:  # the service forgot the job: start again
                _forget(state_path)
        data = prepared or encode_audio(audio, self.upload_format)
        url = self.client.upload_url(self.upload_format)
        report.status(f"uploading {len(data) / 1e6:.2f} MB ({self.upload_format})")
        self.client.upload(url, data, UPLOAD_FORMATS[self.upload_format][1])
        job_id, poll_url = self.client.submit(self.model_name, inputs, url)
        # Saved before the first poll, so a crash from here on re-attaches instead of resubmitting.
        state = {"job_id": job_id, "poll_url": poll_url, "base_url": self.base_url,
                 "model": self.model_name, "submitted_at": time.time()}
        try:
            _save_state(state_path, state)
        except OSError as e:  # an unwritable state folder costs the re-attaching, not the job
            report.warning(f"cannot remember job {job_id} in {state_path.parent} ({e.strerror or e}): "
                           "if this run is killed, the next one submits it again")
        report.status(f"job {job_id}: submitted")
        return self._finish(state_path, state, report)

    def _finish(self, state_path: Path, state: dict[str, Any], report: Report) -> dict[str, Any]:
        job = state.get("job_id")
        try:
            result = self.client.wait(state["poll_url"], lambda status: report.status(f"job {job}: {status}"))
        except TiyaroJobFailed:
            _forget(state_path)  # a failed job is not re-attached to
            raise
        with contextlib.suppress(OSError):  # keeping the result is a saving, not a must
            _save_state(state_path, {**state, "result": result})
        return result
