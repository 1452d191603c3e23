"""The Transcript: what every backend returns and everything downstream reads.

Times are float seconds relative to the input's first picture (or first audio
sample when there is no video). Word text keeps the engine's leading space
(" world"), so joining words gives the segment text back unchanged.

Saved as JSON losslessly: floats survive `json` exactly, and `load` refuses a
file that does not follow the schema instead of guessing.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadTranscript
from .files import atomic_write

# Bumped when the JSON layout changes incompatibly.
SCHEMA_VERSION = 1
SCHEMA_NAME = "subtitler.transcript"


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    # Engine confidence figures, kept for filters downstream; None if unknown.
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Source:
    """Where a transcript's audio came from: what rendering needs of the file, beyond the words."""

    # The input's file name.
    input: str | None = None
    audio_stream: int = 0
    # Seconds the audio starts after the picture: already added to every time (`place`).
    offset: float = 0.0
    # The container's duration: cues may not run past it (decoded audio can, with AAC padding).
    media_duration: float | None = None
    # The picture's size (ASS styles and burn-in are sized on it) and length; None: audio only.
    width: int | None = None
    height: int | None = None
    video_duration: float | None = None
    # The picture's frames per second (cue times snap to its frames); None: audio only or unknown.
    frame_rate: float | None = None
    # transcribe, or translate (an English track).
    task: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        try:
            return cls(**data)
        except TypeError as e:
            raise BadTranscript(f"malformed transcript: source: {e}") from None

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Source | None:
        """The facts version 1 transcripts kept in `meta` (subtitler 0.2), if any."""
        if not any(k in meta for k in ("input", "offset", "video", "media_duration")):
            return None
        video = meta.get("video") if isinstance(meta.get("video"), dict) else {}
        options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
        return cls(meta.get("input"), int(meta.get("audio_stream") or 0), float(meta.get("offset") or 0.0),
                   meta.get("media_duration"), video.get("width"), video.get("height"),
                   video.get("duration"), options.get("task"))


@dataclass
class Transcript:
    language: str | None
    duration: float
    segments: list[Segment] = field(default_factory=list)
    # Free-form facts the engine tells about how it was made: backend, model, options.
    meta: dict[str, Any] = field(default_factory=dict)
    # The file it was heard in, once known (pipeline: job.place).
    source: Source | None = None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    def shifted(self, offset: float) -> Transcript:
        """A copy with every time moved by `offset` seconds, clamped at 0."""

        def t(x: float) -> float:
            return max(0.0, x + offset)

        segments = [
            Segment(
                t(s.start), t(s.end), s.text,
                [Word(t(w.start), t(w.end), w.text, w.probability) for w in s.words],
                s.avg_logprob, s.no_speech_prob, s.compression_ratio, s.temperature,
            )
            for s in self.segments
        ]
        return Transcript(self.language, self.duration, segments, dict(self.meta), self.source)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.source is None:
            del data["source"]
        return {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        if data.get("schema") != SCHEMA_NAME:
            raise BadTranscript("not a subtitler transcript (missing \"schema\")")
        if data.get("version") != SCHEMA_VERSION:
            raise BadTranscript(f"unsupported transcript version {data.get('version')!r}")
        try:
            segments = [
                Segment(**{**s, "words": [Word(**w) for w in s.get("words", [])]})
                for s in data["segments"]
            ]
            meta = data.get("meta", {})
            source = data.get("source")
            if source is not None and not isinstance(source, dict):
                raise BadTranscript("malformed transcript: source: not an object")
            placed = Source.from_dict(source) if source is not None else (
                Source.from_meta(meta) if isinstance(meta, dict) else None)
            return _checked(cls(data["language"], float(data["duration"]), segments, meta, placed))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadTranscript(f"malformed transcript: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadTranscript(f"invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadTranscript("not a subtitler transcript (not a JSON object)")
        from .whisper_compat import from_whisper_result, is_whisper_result

        if is_whisper_result(data):  # what `whisper clip.mp4 --output_format json` writes
            return _checked(from_whisper_result(data))  # the same checks as our own JSON
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        atomic_write(Path(path), self.to_json().encode("utf-8", "backslashreplace"))  # names not UTF-8

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        """The transcript saved in `path`; BadTranscript naming the file if it is not one."""
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise BadTranscript(f"{path}: not UTF-8 text") from None
        except BadTranscript as e:
            raise BadTranscript(f"{path}: {e}") from None


# Times past this are no media's (1e308 overflowed the formatters): about 11 days.
MAX_SECONDS = 1e6


def _number(value: Any, where: str, *, is_time: bool = False, optional: bool = False) -> None:
    """A finite number (a time: from 0 to MAX_SECONDS), or None where `optional`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadTranscript(f"malformed transcript: {where}: not a number ({value!r:.40})")
    if not math.isfinite(value) or (is_time and not 0 <= value <= MAX_SECONDS):
        raise BadTranscript(f"malformed transcript: {where}: {value!r} is out of range"
                            + (f" (0 to {MAX_SECONDS:.0f} seconds)" if is_time else ""))


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise BadTranscript(f"malformed transcript: {where}: not a string ({value!r:.40})")


def _checked(t: Transcript) -> Transcript:
    """`t` if every field has its type and every number is finite and in range: a wrong type
    (a time as text), NaN or 1e308 from a file fails here, not deep in a formatter."""
    if t.language is not None:
        _text(t.language, "language")
    _number(t.duration, "duration", is_time=True)
    if not isinstance(t.meta, dict):
        raise BadTranscript("malformed transcript: meta: not an object")
    if t.source is not None:
        s = t.source
        _number(s.offset, "source: offset")
        for name in ("media_duration", "video_duration"):
            _number(getattr(s, name), f"source: {name}", is_time=True, optional=True)
        for name in ("width", "height"):
            _number(getattr(s, name), f"source: {name}", optional=True)
    for n, s in enumerate(t.segments):
        _text(s.text, f"segment {n}: text")
        _number(s.start, f"segment {n}: start", is_time=True)
        _number(s.end, f"segment {n}: end", is_time=True)
        for name in ("avg_logprob", "no_speech_prob", "compression_ratio", "temperature"):
            _number(getattr(s, name), f"segment {n}: {name}", optional=True)
        for m, w in enumerate(s.words):
            _text(w.text, f"segment {n}: word {m}: text")
            _number(w.start, f"segment {n}: word {m}: start", is_time=True)
            _number(w.end, f"segment {n}: word {m}: end", is_time=True)
            _number(w.probability, f"segment {n}: word {m}: probability")
    return t
