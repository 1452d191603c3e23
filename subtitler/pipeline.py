"""The whole job, callable from Python: media -> audio -> transcript -> cues -> files.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])

For many files, make one `Subtitler` and call it per file: the model loads
once, on the first file that needs it. It runs the same path as the command
line (job.py): outputs are recorded in their folder's manifest, what is up to
date is skipped, transcripts are cached (`record=False`, `cache=False` opt out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import naming
from .backends import Backend
from .cache import Cache
from .events import Events, Sink, Stage, Warned, progress_callback, python_warnings
from .job import Job, decode_input, input_source, is_transcript_file, output_paths, place, single_input
from .options import DecodeOptions
from .profiles import Profile
from .specs import EngineSpec, JobSpec, OutputSpec, RenderSpec, TranscriptionSpec, VideoSettings, VideoSpec
from .style import Style
from .transcript import Transcript

if TYPE_CHECKING:
    from .config import Config

__all__ = ["OnProgress", "Result", "Subtitler", "VideoSettings", "VideoSpec", "is_transcript_file",
           "output_paths", "subtitle", "transcribe"]

# Called with (stage, seconds done, seconds in all); stage is decode, vad, transcribe, translate, mux
# or burn.
OnProgress = Callable[[str, float, float], None]


@dataclass
class Result:
    input: Path
    outputs: list[Path]
    transcript: Transcript
    # The subtitled video, when --mux or --burn asked for one.
    video: Path | None = None
    # done, rendered (from the cache or a saved transcript) or up-to-date (nothing written).
    status: str = "done"


class Subtitler:
    """A configured job for Python code; the engine loads lazily, once, and is reused.

    The arguments are the command line's settings (backend, model, options, formats,
    output_dir, profile, style, video...). Also: `engine`, an engine already loaded
    (`subtitler.backends.load_backend`) to use instead of loading one; `settings`,
    the backend's own settings ({"base-url": ...}); `events`, sinks for what happens
    (events.py; warnings are Python warnings by default); `record=False` writes no
    manifest (then an existing output is refused unless `overwrite`); `cache=False`
    (or a Cache) for the transcript cache; `config`, the config files' settings;
    `name_template`, `media_server` ("jellyfin", "plex", "kodi") and `lang_code`, how outputs
    are named, as --name-template, --for and --lang-code (naming.py).
    """

    def __init__(self, backend: str = "auto", model: str | None = None,
                 options: DecodeOptions | None = None, formats: Sequence[str] = ("srt",),
                 output_dir: str | Path | None = None, overwrite: bool = False, audio_stream: int = 0,
                 device: str = "auto", compute_type: str = "auto", threads: int | None = None,
                 timeout: float | None = None, profile: Profile | None = None, style: Style | None = None,
                 video: VideoSpec | None = None, warn: Callable[[str], None] | None = None,
                 record: bool = True, cache: Cache | bool = True, engine: Backend | None = None,
                 events: Iterable[Sink] = (), settings: Mapping[str, str] | None = None,
                 config: Config | None = None, name_template: str | None = None,
                 media_server: str | None = None, lang_code: str = "iso639-1") -> None:
        engine_spec = EngineSpec(backend, model, device, compute_type, threads, timeout,
                                 tuple((settings or {}).items()))
        self.spec = JobSpec(
            TranscriptionSpec(engine_spec, audio_stream, options or DecodeOptions()),
            RenderSpec(tuple(formats), profile, style or Style(), video),
            OutputSpec(Path(output_dir) if output_dir is not None else None, overwrite, record,
                       naming.template_for(name_template, media_server), lang_code))
        sinks = list(events)
        if warn is not None:  # 0.2's warn callable: where warnings go instead of Python's
            sinks.append(lambda e: warn(e.message) if isinstance(e, Warned) else None)
        elif not sinks:
            sinks.append(python_warnings)
        self.events = Events(sinks)
        self.cache = Cache() if cache is True else (cache or None)
        self.job = Job(self.spec, engine=engine, cache=self.cache, events=self.events, config=config,
                       want_transcripts=True)

    @classmethod
    def from_spec(cls, spec: JobSpec, **kwargs: object) -> Subtitler:
        """A Subtitler for a JobSpec (from JSON, a job store...); `kwargs` as for the constructor."""
        t, r, o = spec.transcription, spec.render, spec.output
        e = t.engine
        return cls(e.backend, e.model, t.options, r.formats, o.output_dir, o.overwrite, t.audio_stream,
                   e.device, e.compute_type, e.threads, e.timeout, r.profile, r.style, r.video,
                   record=o.record, settings=dict(e.settings), name_template=o.name_template,
                   lang_code=o.lang_code, **kwargs)  # type: ignore[arg-type]

    @property
    def engine(self) -> Backend:
        """The loaded engine (loaded now if not yet): to share with another Subtitler (`engine=`)."""
        return self.job.engine

    def subtitle(self, path: str | Path, on_progress: OnProgress | None = None) -> Result:
        """Write subtitle files (and the subtitled video, if asked) for one input.

        The input is media, or a saved transcript .json (then no engine runs). Raises the
        input's SubtitlerError if it fails.
        """
        sink = progress_callback(on_progress) if on_progress else None
        if sink:
            self.events.add(sink)
        try:
            outcome = self.job.run(single_input(path))
        finally:
            if sink:
                self.events.sinks.remove(sink)
        if outcome.exception is not None:
            raise outcome.exception
        video = outcome.video or (outcome.outputs[-1] if self.spec.render.video else None)
        files = [p for p in outcome.outputs if p != video]
        return Result(Path(path), files, outcome.transcripts[-1], video, str(outcome.status))

    def transcribe(self, path: str | Path, on_progress: OnProgress | None = None) -> Transcript:
        """Transcribe a media file; times are on the picture's clock. Nothing is written."""
        job = self.job.derive(events=Events([*self.events.sinks, *(
            [progress_callback(on_progress)] if on_progress else [])]))
        job.check_engine()
        item = single_input(path)
        stream = self.spec.transcription.audio_stream
        audio = decode_input(item.path, stream, job.events.report(item, Stage.DECODE),
                             lambda message: job.events(Warned(item, message)))
        heard = job.hear(item, audio)
        return place(heard[-1], input_source(item.path, audio, stream))


def subtitle(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Result:
    """Subtitle one file; `settings` are `Subtitler`'s arguments (backend, model, formats...)."""
    return Subtitler(**settings).subtitle(path, on_progress)  # type: ignore[arg-type]


def transcribe(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Transcript:
    """Transcribe one media file into a Transcript."""
    return Subtitler(**settings).transcribe(path, on_progress)  # type: ignore[arg-type]

