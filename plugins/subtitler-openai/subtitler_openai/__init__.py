"""subtitler backend: OpenAI's `POST /audio/transcriptions`, and the servers that speak it.

OpenAI, Groq, speaches (faster-whisper-server), LocalAI... all take a
multipart upload and answer `verbose_json` with segment and word times.

Settings, each from the environment or else the config file's [backends.openai]
table (`base-url = "http://localhost:8000/v1"`): OPENAI_BASE_URL (with the version, as the OpenAI SDK
has it: default https://api.openai.com/v1; a self-hosted server is
http://host:port/v1), OPENAI_API_KEY (optional: servers that need none get no
Authorization header), OPENAI_UPLOAD_LIMIT (bytes per request, default
26214400 = OpenAI's 25 MiB), OPENAI_UPLOAD_FORMAT (mp3, ogg, flac or wav,
default mp3), OPENAI_MAX_PARALLEL (pieces in flight at once, default 4),
OPENAI_TIMEOUT (seconds one request may take, its whole answer included,
default 600), OPENAI_MAX_ANSWER (the largest answer read, in bytes, default 64 MiB).

Audio longer than one upload allows is cut at silences into pieces that fit,
sent side by side, and stitched back with each piece's times shifted into
place. A server that refuses a piece as too large (413) gets it again in two
halves, down to 10 s pieces.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from subtitler.plugin import (
    API_VERSION,
    DEFAULT_MAX_ANSWER,
    DEFAULT_UPLOAD_FORMAT,
    SAMPLE_RATE,
    UPLOAD_FORMATS,
    Backend,
    BackendSettings,
    DecodeOptions,
    EngineSpec,
    RemoteError,
    RemoteNoTimings,
    RemoteTooLarge,
    Report,
    Segment,
    ServiceClient,
    Setting,
    Transcript,
    Word,
    encode_audio,
    language_code,
    missing,
    split_at_silences,
    stitch,
)

__all__ = ["OpenAIBackend", "to_transcript"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_UPLOAD_LIMIT = 25 * 1024 * 1024
# Pieces are planned this far under the limit: the encoded size per second varies a little.
HEADROOM = 0.9
MIN_PIECE_SECONDS = 10.0


def to_transcript(body: Any, duration: float, language: str | None) -> Transcript:
    """A verbose_json answer as a Transcript; words (top-level in OpenAI's answer) go to their segments."""
    if not isinstance(body, dict):
        raise RemoteError("OpenAI API: the answer is not a verbose_json object")
    segments, words = body.get("segments"), body.get("words")
    text = str(body.get("text") or "").strip()
    if not segments and not words:
        if text:
            raise RemoteNoTimings("the OpenAI API answered text without segment or word times, "
                                  "and subtitles need timings (does the server support verbose_json?)")
        segments = []
    try:
        out = [Segment(float(s["start"]), float(s["end"]), s["text"], [], s.get("avg_logprob"),
                       s.get("no_speech_prob"), s.get("compression_ratio"), s.get("temperature"))
               for s in segments or []]
        all_words = [Word(float(w["start"]), float(w["end"]), _spaced(w["word"]),
                          float(w.get("probability", 1.0))) for w in words or []]
    except (KeyError, TypeError, ValueError) as e:
        raise RemoteError(f"OpenAI API: malformed verbose_json: {type(e).__name__}: {e}") from None
    if not out and all_words:  # words only: one segment holding them all
        out = [Segment(all_words[0].start, all_words[-1].end, "".join(w.text for w in all_words))]
    for w in all_words:
        _segment_for(out, w).words.append(w)
    spoken = body.get("language")
    return Transcript(language_code(spoken) if spoken else language, duration, out)


def _spaced(word: str) -> str:
    # OpenAI's words come bare ("The"); subtitler's keep the leading space (" The").
    return word if word[:1].isspace() else " " + word


def _segment_for(segments: list[Segment], w: Word) -> Segment:
    """The segment a word belongs to: the one holding its middle, else the nearest."""
    middle = (w.start + w.end) / 2
    return min(segments, key=lambda s: 0.0 if s.start <= middle <= s.end
               else min(abs(middle - s.start), abs(middle - s.end)))


class OpenAIBackend(Backend):
    api_version = API_VERSION
    name = "openai"
    description = "OpenAI-compatible /audio/transcriptions (OPENAI_BASE_URL, OPENAI_API_KEY)"
    # What the endpoint takes: language, prompt, temperature; translate uses /audio/translations.
    supported_options = frozenset({"language", "task", "temperature", "initial_prompt"})
    default_model = "whisper-1"
    supports_timeout = True
    parallel_files = True
    remote = True
    auto_priority = None
    declared_settings = (
        # Another server is another engine: its transcripts are not the same as OpenAI's.
        Setting("base-url", "OPENAI_BASE_URL", DEFAULT_BASE_URL),
        Setting("api-key", "OPENAI_API_KEY", secret=True),
        # Where the audio is cut changes what is heard at the cuts.
        Setting("upload-limit", "OPENAI_UPLOAD_LIMIT", DEFAULT_UPLOAD_LIMIT, int),
        Setting("upload-format", "OPENAI_UPLOAD_FORMAT", DEFAULT_UPLOAD_FORMAT,
                choices=tuple(UPLOAD_FORMATS)),
        Setting("max-parallel", "OPENAI_MAX_PARALLEL", 4, int, shapes_result=False),
        Setting("timeout", "OPENAI_TIMEOUT", 600.0, float, shapes_result=False),
        Setting("max-answer", "OPENAI_MAX_ANSWER", DEFAULT_MAX_ANSWER, int, shapes_result=False),
    )

    def __init__(self, spec: EngineSpec, settings: BackendSettings | None = None) -> None:
        super().__init__(spec, settings)
        s = self.settings
        self.base_url, self.upload_limit = s["base-url"], s["upload-limit"]
        self.upload_format, self.max_parallel = s["upload-format"], s["max-parallel"]
        self.client = ServiceClient(self.base_url, s["api-key"], service="OpenAI API",
                                    key_setting=s.named("api-key"), retries=3, read_timeout=s["timeout"],
                                    max_answer=s["max-answer"], max_answer_setting=s.named("max-answer"))

    def prepare(self, audio: np.ndarray) -> list[tuple[int, int, bytes]]:
        """The upload's pieces, encoded ahead (in a batch's decode stage)."""
        return self._plan(audio)

    @classmethod
    def unavailable_reason(cls, settings: BackendSettings) -> str | None:
        if missing("httpx"):
            return "httpx is not installed (pip install httpx)"
        # OpenAI's own API answers 401 to every request without a key: say so before any upload.
        # A self-hosted server (another base URL) may need none.
        if not settings["api-key"] and (settings["base-url"] or "").rstrip("/") == DEFAULT_BASE_URL:
            return ("OPENAI_API_KEY is not set (nor api-key in [backends.openai]); "
                    "a self-hosted server needs OPENAI_BASE_URL (or base-url) instead")
        return None

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        self.client.start_deadline(self.timeout)
        deadline = self.client.deadline
        duration = len(audio) / SAMPLE_RATE
        pieces = prepared or self._plan(audio)
        if len(pieces) > 1:
            report.status(f"{len(pieces)} pieces cut at silences "
                          f"(over {self.upload_limit / 2**20:.1f} MiB as one upload)")
        done, lock = [0.0], threading.Lock()

        def run(start: int, end: int, data: bytes) -> list[tuple[float, float, Transcript]]:
            self.client.deadline = deadline  # the client's deadline is per thread
            parts = self._send(audio, start, end, data, options, len(pieces), report)
            with lock:
                done[0] += (end - start) / SAMPLE_RATE
                report.progress(min(done[0], duration))
            return parts

        if len(pieces) == 1:
            parts = run(*pieces[0])
        else:
            with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="openai-upload") as pool:
                futures = [pool.submit(run, *p) for p in pieces]
                parts = [part for f in futures for part in f.result()]
        transcript = stitch(parts, duration)
        transcript.meta.update({"backend": self.name, "model": self.model_name, "base_url": self.base_url,
                                "options": options.to_dict()})
        return transcript

    def _plan(self, audio: np.ndarray) -> list[tuple[int, int, bytes]]:
        """Encoded pieces, each under the upload limit, cut at silences."""
        whole = encode_audio(audio, self.upload_format)
        if len(whole) <= self.upload_limit:
            return [(0, len(audio), whole)]
        per_second = len(whole) / (len(audio) / SAMPLE_RATE)
        max_seconds = HEADROOM * self.upload_limit / per_second
        if max_seconds < MIN_PIECE_SECONDS:
            raise RemoteTooLarge(f"OPENAI_UPLOAD_LIMIT ({self.upload_limit} bytes) holds under "
                                 f"{MIN_PIECE_SECONDS:.0f} s of {self.upload_format}: raise it")
        return self._fit(audio, 0, len(audio), whole, max_seconds)

    def _fit(self, audio: np.ndarray, start: int, end: int, data: bytes,
             max_seconds: float) -> list[tuple[int, int, bytes]]:
        """audio[start:end] (encoded: `data`) as it is if it fits, else cut at silences into pieces
        of at most `max_seconds`, each cut again, shorter, if it still comes out over the limit."""
        if len(data) <= self.upload_limit:
            return [(start, end, data)]
        if max_seconds < MIN_PIECE_SECONDS:
            raise RemoteTooLarge(f"cannot cut the audio into pieces under OPENAI_UPLOAD_LIMIT "
                                 f"({self.upload_limit} bytes)")
        out = []
        for a, b in split_at_silences(audio[start:end], max_seconds):
            piece = encode_audio(audio[start + a:start + b], self.upload_format)
            out.extend(self._fit(audio, start + a, start + b, piece, 0.8 * max_seconds))
        return out

    def _send(self, audio: np.ndarray, start: int, end: int, data: bytes, options: DecodeOptions,
              count: int, report: Report) -> list[tuple[float, float, Transcript]]:
        """Transcribe one piece: [(offset, length, transcript)]; split in two if the server says 413."""
        offset, length = start / SAMPLE_RATE, (end - start) / SAMPLE_RATE
        where = f"{offset:.0f}-{offset + length:.0f} s: " if count > 1 else ""
        report.status(f"{where}uploading {len(data) / 1e6:.2f} MB ({self.upload_format})")
        try:
            body = self._request(data, options)
        except RemoteTooLarge as e:
            if length < 2 * MIN_PIECE_SECONDS:
                raise RemoteTooLarge(f"{e}; pieces of {length:.0f} s are still too large: "
                                     "set OPENAI_UPLOAD_LIMIT to the server's limit") from None
            report.status(f"{where}too large for the server (413): sending it in two pieces")
            (a, m), (_, b) = _halves(audio[start:end])
            return [part for s, e in ((start + a, start + m), (start + m, start + b))
                    for part in self._send(audio, s, e, encode_audio(audio[s:e], self.upload_format),
                                           options, count + 1, report)]
        report.status(f"{where}transcribed")
        return [(offset, length, to_transcript(body, length, options.language))]

    def _request(self, data: bytes, options: DecodeOptions) -> Any:
        translate = options.task == "translate"
        fields: dict[str, str | list[str]] = {"model": self.model_name, "response_format": "verbose_json",
                                              "temperature": str(options.temperature)}
        if not translate:  # translations have no language or word granularity
            fields["timestamp_granularities[]"] = ["word", "segment"]
            if options.language:
                fields["language"] = options.language
        if options.initial_prompt:
            fields["prompt"] = options.initial_prompt
        path = "/audio/translations" if translate else "/audio/transcriptions"
        what = "translation" if translate else "transcription"
        files = {"file": (f"audio.{self.upload_format}", data, UPLOAD_FORMATS[self.upload_format][1])}
        # Retried like the SDK does: a transcription request creates no job that could run twice.
        resp = self.client.request("POST", self.base_url + path, what, retry=True, data=fields, files=files)
        return self.client.json(resp, what)


def _halves(samples: np.ndarray) -> list[tuple[int, int]]:
    """Two pieces of about half the length, cut in a pause."""
    half = len(samples) / SAMPLE_RATE / 2
    pieces = split_at_silences(samples, half * 1.3)
    if len(pieces) == 2:
        return pieces
    middle = pieces[0][1]
    return [(0, middle), (middle, len(samples))]
