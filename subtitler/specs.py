"""Settings as data: what a job is asked to do, frozen, typed, and JSON in and out.

A job is "this input, these settings, this engine". Its settings travel to
other processes (a server's worker, a cluster's actor) and into job stores,
so they are plain frozen dataclasses that save to JSON and load back equal:

- `EngineSpec`: which engine, which model, and how it runs (device, threads);
- `TranscriptionSpec`: what shapes a transcript (the engine, the audio stream,
  the decoding options);
- `RenderSpec`: what shapes the files made from a transcript (formats,
  profile, style, the subtitled video);
- `OutputSpec`: where outputs go and what may be replaced;
- `JobSpec`: the three together.

The cache key and the manifest's settings digest are computed from these
(`JobSpec.transcript_settings`, `JobSpec.settings_digest`): every field is in
them unless listed in `NOT_IN_KEY` with its reason, so a new field cannot be
forgotten. A backend's own settings are in `EngineSpec.settings`; secrets
(API keys) never are: each process resolves them from its own environment.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import digest
from .errors import SubtitlerError
from .formats import get_format
from .languages import language_code
from .naming import DEFAULT_TEMPLATE, Naming
from .options import DecodeOptions
from .profiles import Profile
from .style import Style
from .video import SubtitleTrack

SCHEMA_NAME = "subtitler.job"
SCHEMA_VERSION = 1

# EngineSpec fields that change how fast a transcript comes, not what it says.
NOT_IN_KEY = frozenset({
    "device",  # where it runs: compute_type (in the key) is what changes results
    "threads",  # CPU threads
    "timeout",  # an overall deadline per file
    # In the key as resolved (given, environment, config file): those that shape results only,
    # never secrets; see JobSpec.transcript_settings.
    "settings",
})


class BadSpec(SubtitlerError):
    """A job's settings (JSON) that cannot be used."""

    exit_code = 2


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs, on which model, and how."""

    backend: str = "auto"
    # None: the backend's default model.
    model: str | None = None
    device: str = "auto"
    compute_type: str = "auto"
    threads: int | None = None
    # An overall deadline per file in seconds, for backends that wait on a service.
    timeout: float | None = None
    # The backend's own settings given explicitly (a server's request, a job store), by key as in
    # `[backends.NAME]`: they win over the environment and the config files. Never secrets.
    settings: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Any mapping or list of pairs, kept sorted: equal settings make equal specs and keys.
        pairs = self.settings.items() if isinstance(self.settings, Mapping) else self.settings
        object.__setattr__(self, "settings", tuple(sorted((str(k), str(v)) for k, v in pairs)))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineSpec:
        return _build(cls, data)


@dataclass(frozen=True)
class TranscriptionSpec:
    """What shapes a transcript."""

    engine: EngineSpec = field(default_factory=EngineSpec)
    audio_stream: int = 0
    options: DecodeOptions = field(default_factory=DecodeOptions)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine.to_dict(), "audio_stream": self.audio_stream,
                "options": self.options.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptionSpec:
        return _build(cls, data, engine=EngineSpec.from_dict,
                      options=lambda d: _build(DecodeOptions, d))


@dataclass(frozen=True)
class VideoSpec:
    """Put the subtitles into the video too: as soft tracks (mux) or into the picture (burn)."""

    mode: str  # "mux" or "burn"
    # The output container's extension (".mkv"); None keeps the input's.
    container: str | None = None
    encoder: str = "libx264"
    crf: int | None = 23
    preset: str | None = "medium"
    # Mark the new track as the default one (mux).
    default_track: bool = False
    # Existing subtitle files to add as tracks as well (mux).
    extra_tracks: tuple[SubtitleTrack, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("mux", "burn"):
            raise BadSpec(f"video mode must be mux or burn, not {self.mode!r}")
        object.__setattr__(self, "extra_tracks", tuple(self.extra_tracks))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "extra_tracks": [
            {**dataclasses.asdict(t), "path": str(t.path)} for t in self.extra_tracks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoSpec:
        return _build(cls, data, extra_tracks=lambda tracks: tuple(
            _build(SubtitleTrack, t, path=Path) for t in tracks))


# Kept for code written against 0.2 (pipeline.VideoSettings).
VideoSettings = VideoSpec


@dataclass(frozen=True)
class RenderSpec:
    """What shapes the files made from a transcript."""

    formats: tuple[str, ...] = ("srt",)
    # Cue layout rules; None: netflix, or cjk for Chinese, Japanese and Korean.
    profile: Profile | None = None
    style: Style = field(default_factory=Style)
    video: VideoSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        for f in self.formats:
            get_format(f)  # a bad format fails here, before any work

    def to_dict(self) -> dict[str, Any]:
        return {"formats": list(self.formats),
                "profile": dataclasses.asdict(self.profile) if self.profile else None,
                "style": dataclasses.asdict(self.style),
                "video": self.video.to_dict() if self.video else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderSpec:
        return _build(cls, data, profile=lambda d: _build(Profile, d), style=lambda d: _build(Style, d),
                      video=VideoSpec.from_dict)


@dataclass(frozen=True)
class OutputSpec:
    """Where the outputs go, and what may be replaced."""

    # Outputs go here instead of beside each input (a folder input is mirrored under it).
    output_dir: Path | None = None
    # Replace existing files subtitler did not make.
    overwrite: bool = False
    # Record each output in its folder's .subtitler.json manifest: a later run then knows the
    # files as its own (replaces them, or skips them when up to date). False writes no manifest.
    record: bool = True
    # How output files are named (naming.py): `{stem}` is clip.srt; `{stem}.{lang}` clip.en.srt.
    name_template: str = DEFAULT_TEMPLATE
    lang_code: str = "iso639-1"  # {lang} as ISO 639-1 (en) or iso639-2 (eng)

    def __post_init__(self) -> None:
        if self.output_dir is not None:
            object.__setattr__(self, "output_dir", Path(self.output_dir))
        self.naming  # noqa: B018  # a bad template fails here, before any work

    @property
    def naming(self) -> Naming:
        return Naming(self.name_template, self.lang_code)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "output_dir": str(self.output_dir) if self.output_dir else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        return _build(cls, data)


@dataclass(frozen=True)
class JobSpec:
    """Everything a job is asked to do, but the input."""

    transcription: TranscriptionSpec = field(default_factory=TranscriptionSpec)
    render: RenderSpec = field(default_factory=RenderSpec)
    output: OutputSpec = field(default_factory=OutputSpec)

    def tasks(self) -> tuple[DecodeOptions, ...]:
        """The engine runs per input: one, or two when a translation is muxed, or named apart (a
        template with {lang} or {task}), beside the original (the speech's own language and English)."""
        options = self.transcription.options
        video = self.render.video
        if options.task == "translate" and ((video and video.mode == "mux") or self.output.naming.per_track):
            original = dataclasses.replace(options, task="transcribe")
            if options.language and language_code(options.language) == "en":
                return (original,)  # English speech: one English track
            return (original, options)
        return (options,)

    def transcript_settings(self, backend_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What shapes the transcripts, as the cache key and the manifest take it: every field of
        the transcription spec but NOT_IN_KEY's, the decoding options of each task, and
        `backend_settings`: the backend's own settings that shape results, as resolved."""
        data = self.transcription.to_dict()
        engine = {k: v for k, v in data.pop("engine").items() if k not in NOT_IN_KEY}
        engine["settings"] = dict(backend_settings or {})
        del data["options"]  # as tasks: a muxed translation is two runs
        return {**engine, **data, "tasks": [t.to_dict() for t in self.tasks()]}

    def settings_summary(self, backend_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything that shapes the outputs, as a manifest entry and a report record it."""
        return {"transcription": self.transcript_settings(backend_settings), "render": self.render.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION,
                "transcription": self.transcription.to_dict(), "render": self.render.to_dict(),
                "output": self.output.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA_NAME:
            raise BadSpec("not a subtitler job spec (missing \"schema\": \"subtitler.job\")")
        if data.get("version") != SCHEMA_VERSION:
            raise BadSpec(f"unsupported job spec version {data.get('version')!r}")
        return _build(cls, {k: v for k, v in data.items() if k not in ("schema", "version")},
                      transcription=TranscriptionSpec.from_dict, render=RenderSpec.from_dict,
                      output=OutputSpec.from_dict)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise BadSpec(f"job spec: invalid JSON: {e}") from None


def settings_digest(summary: Mapping[str, Any]) -> str:
    """The settings as a manifest entry records them (check --require-subs compares with it)."""
    return digest([summary["transcription"], summary["render"]])


def _build(cls: Any, data: Any, **nested: Any) -> Any:
    """`cls(**data)`, nested fields converted by `nested`'s functions; a bad field is a BadSpec."""
    if not isinstance(data, Mapping):
        raise BadSpec(f"job spec: {cls.__name__}: expected an object, not {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadSpec(f"job spec: {cls.__name__}: unknown field(s) {', '.join(unknown)}")
    values = {k: (nested[k](v) if k in nested and v is not None else v) for k, v in data.items()}
    try:
        return cls(**values)
    except SubtitlerError as e:
        raise BadSpec(f"job spec: {cls.__name__}: {e}") from None
    except (TypeError, ValueError) as e:
        raise BadSpec(f"job spec: {cls.__name__}: {e}") from None
