"""yt-dlp post-processor: subtitle each downloaded video with subtitler.

    yt-dlp --use-postprocessor "Subtitler:when=after_move;model=base;format=srt,vtt;mux=true" URL

yt-dlp's plugin discovery finds `SubtitlerPP` (yt_dlp_plugins/postprocessor/subtitler.py: this
class under the name yt-dlp looks for) and makes one with the `key=value` arguments. Keys are
`subtitler run`'s long option names (model, language, format, profile, beam-size, mux...), over
subtitler's config files as the command line's options are; `force=true` subtitles a video that
already has subtitles in the target language, `config=FILE` names the config file to use. One
post-processor serves the whole yt-dlp run: the model loads once, on the first video, for every
video of a playlist.

Files are named as yt-dlp names its own subtitles (`Title [id].en.srt`) and recorded as its own are:
in `requested_subtitles` (what --embed-subs embeds, what --exec's templates read) and, when the
post-processor runs before yt-dlp moves the files (when=post_process, the default), in
`__files_to_move`, so that --paths and the `subtitle:` output template place them.

Nothing of subtitler is imported until a SubtitlerPP is made: yt-dlp imports every plugin module on
every run, used or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from yt_dlp.postprocessor.common import PostProcessor
from yt_dlp.utils import DownloadError, PostProcessingError, prepend_extension, subtitles_filename

__all__ = ["SubtitlerPostProcessor"]

# `subtitler run`'s parameters that pick inputs, outputs or shape a batch: yt-dlp does that here.
_NOT_HERE = {"inputs": "", "output_dir": "files go where yt-dlp's output template puts the video",
             "include": "", "exclude": "", "lists": "", "null": "", "jobs": "", "progress": "",
             "cache": "", "dry_run": "", "fail_fast": "", "report": "",
             "video_format": "yt-dlp's --remux-video changes the container",
             "overwrite": "force=true replaces existing files"}
# Formats yt-dlp can embed (--embed-subs), the one a container takes best first.
_EMBEDDABLE = {"webm": ("vtt",)}
_EMBEDDABLE_DEFAULT = ("srt", "vtt", "ass")


class _Target(NamedTuple):
    """One subtitle file: its format, where it is written, and where it ends up (where yt-dlp moves
    it; the same path when nothing moves it)."""

    format: str
    written: str
    final: str


@dataclass
class _Settings:
    spec: Any  # subtitler.specs.JobSpec
    config: Any  # subtitler.config.Config
    force: bool


class SubtitlerPostProcessor(PostProcessor):
    """Writes subtitles for the downloaded video (and muxes them with mux=true); yt-dlp knows it as
    `Subtitler` (the plugin's SubtitlerPP)."""

    def __init__(self, downloader: Any = None, **arguments: str) -> None:
        super().__init__(downloader)
        self._moves: dict[str, str] = {}  # our files: temporary path -> where yt-dlp moves them
        self._subtitler: Any = None
        try:
            self._settings = _resolve(arguments)
            self._subtitler = self._make_subtitler()
            self._subtitler.job.check_engine()  # an engine that cannot run here: before any download
        except Exception as e:
            message = _message(e)
            if message is None:
                raise
            if downloader is None:
                raise PostProcessingError(message) from None
            # A usage error: yt-dlp stops before it downloads anything, "ERROR: [Subtitler] ...", exit 1
            # (report_error raises DownloadError itself unless errors are ignored: the CLI's default).
            downloader.report_error(f"[{self.PP_NAME}] {message}")
            raise DownloadError(message) from None
        if downloader is not None:
            downloader.add_post_processor(_FinalPathsPP(self, downloader), when="after_move")

    def _make_subtitler(self) -> Any:
        from subtitler.pipeline import Subtitler

        return Subtitler.from_spec(self._settings.spec, events=[self._tell], cache=False,
                                   config=self._settings.config)

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        path = info.get("filepath")
        if not path or not os.path.isfile(path):
            raise PostProcessingError("no downloaded file to subtitle: run it with when=post_process "
                                      "(the default) or when=after_move")
        try:
            self._subtitle(info, path)
        except Exception as e:
            message = _message(e)
            if message is None:
                raise
            raise PostProcessingError(message) from None
        return [], info

    # -- one video ----------------------------------------------------------------------

    def _subtitle(self, info: dict[str, Any], path: str) -> None:
        spec = self._settings.spec
        language = self._target_language(info)
        if language is not None and not self._settings.force:
            why = self._has_subtitles(info, language)
            if why:
                self.to_screen(f"{path}: {why}; skipping (force=true subtitles it anyway)")
                return
        self.to_screen(f'Transcribing "{path}"')
        transcripts = self._transcribe(Path(path))
        last = transcripts[-1]
        language = ("en" if last.source and last.source.task == "translate" else last.language) \
            or language or "und"
        files = self._targets(info, path, language)
        if not self._settings.force:  # the language is known only now: a file of an earlier run?
            present = _present(files)
            if present:
                self.to_screen(f'Subtitles already present: "{present}"; kept (force=true replaces them)')
                return
        self._write(transcripts, files)
        self._record(info, language, files)
        if spec.render.video is not None:
            self._into_video(Path(path), transcripts)

    def _target_language(self, info: dict[str, Any]) -> str | None:
        """The language the subtitles will be in, when known before transcribing."""
        from subtitler.languages import language_code

        transcription = self._settings.spec.transcription
        options = transcription.options
        if options.task == "translate":
            return "en"
        if options.language:
            return language_code(options.language) or options.language
        model = transcription.engine.model or self._subtitler.job.backend_class.default_model
        if model.endswith(".en"):
            return "en"
        site = info.get("language")
        return language_code(site.split("-")[0]) if isinstance(site, str) and site else None

    def _has_subtitles(self, info: dict[str, Any], language: str) -> str | None:
        """Why the video needs no subtitles from us: it has some in `language` already."""
        def same(key: str) -> bool:
            return key.lower().split("-")[0] == language

        for key, sub in (info.get("requested_subtitles") or {}).items():
            if same(key) and sub.get("filepath") and os.path.exists(sub["filepath"]):
                return f'it has {key} subtitles already ("{sub["filepath"]}")'
        for key in info.get("subtitles") or {}:
            if same(key) and key != "live_chat":
                return f"the site has {key} subtitles for it (--write-subs downloads them)"
        present = _present(self._targets(info, info["filepath"], language))
        return f'subtitles already present ("{present}")' if present else None

    def _transcribe(self, path: Path) -> list[Any]:
        """The video's transcripts (one per task), placed on its picture's clock: subtitler's own
        decode and engine, the engine loaded once for this post-processor."""
        from subtitler.events import Stage, Warned
        from subtitler.job import decode_input, input_source, place, single_input

        job = self._subtitler.job
        item = single_input(path)
        stream = job.spec.transcription.audio_stream
        audio = decode_input(path, stream, job.events.report(item, Stage.DECODE),
                             lambda message: job.events(Warned(item, message)))
        source = input_source(path, audio, stream)
        return [place(t, source) for t in job.hear(item, audio)]

    def _targets(self, info: dict[str, Any], path: str, language: str) -> list[_Target]:
        """Each format's file, named as yt-dlp names its subtitles: written beside the video, ending
        up at the `subtitle:` output template's place (by default beside the video, once moved)."""
        from subtitler.formats import get_format

        final_base = self._downloader.prepare_filename(info, "subtitle") if self._downloader else path
        moved = self._when() != "post_process"  # the files are in their final place already
        result = []
        for fmt in self._settings.spec.render.formats:
            ext = get_format(fmt).extension.lstrip(".")
            final = subtitles_filename(final_base or path, language, ext, info.get("ext"))
            # force=true over an existing file: replaced in place (yt-dlp would not move ours over it).
            replace = self._settings.force and os.path.exists(final)
            written = final if moved or replace else subtitles_filename(path, language, ext, info.get("ext"))
            result.append(_Target(fmt, written, final))
        return result

    def _when(self) -> str:
        """When yt-dlp runs this post-processor (`when=`; it keeps the argument to itself)."""
        pps = getattr(self._downloader, "_pps", {}) or {}
        return next((when for when, found in pps.items() if self in found), "post_process")

    def _write(self, transcripts: list[Any], files: list[_Target]) -> None:
        from subtitler.render import write_outputs

        render = self._settings.spec.render
        write_outputs(transcripts[-1], [(f.format, Path(f.written)) for f in files], render.profile,
                      render.style)
        for f in files:
            self.to_screen(f"Writing video subtitles to: {f.written}")

    def _record(self, info: dict[str, Any], language: str, files: list[_Target]) -> None:
        """Tell yt-dlp about the files as about its own: moved with the video, and the one a
        container takes best in `requested_subtitles` for --embed-subs and --exec."""
        to_move = info.setdefault("__files_to_move", {})
        for f in files:
            if f.written != f.final:
                to_move[f.written] = f.final
                self._moves[f.written] = f.final
        by_ext = {Path(f.written).suffix.lstrip("."): f.written for f in files}
        for ext in _EMBEDDABLE.get(info.get("ext") or "", _EMBEDDABLE_DEFAULT):
            if ext in by_ext:
                subtitles = info.get("requested_subtitles") or {}
                subtitles[language] = {"ext": ext, "filepath": by_ext[ext], "name": "subtitler"}
                info["requested_subtitles"] = subtitles
                break

    def _into_video(self, path: Path, transcripts: list[Any]) -> None:
        """The subtitles into the downloaded video itself (mux=true, burn=true), with subtitler's
        own mux: written beside it, then renamed over it as yt-dlp's --embed-subs does."""
        from subtitler.events import Stage
        from subtitler.job import single_input
        from subtitler.render import write_video

        job = self._subtitler.job
        render = job.spec.render
        temporary = Path(prepend_extension(str(path), "temp"))
        stage = Stage.BURN if render.video.mode == "burn" else Stage.MUX
        self.to_screen(f'{"Burning" if stage is Stage.BURN else "Embedding"} subtitles in "{path}"')
        item = single_input(path)
        write_video(path, transcripts, temporary, render, True, job.events.report(item, stage),
                    lambda message: self.report_warning(f"[{self.PP_NAME}] {message}"))
        os.replace(temporary, path)

    # -- what subtitler tells -------------------------------------------------------------

    def _tell(self, event: Any) -> None:
        """subtitler's events as yt-dlp's `[Subtitler] ...` lines (to_screen: --quiet silences them)."""
        from subtitler.events import Stage, StageEnded, StageStarted, Warned

        if isinstance(event, StageStarted) and event.stage is Stage.LOAD_MODEL:
            engine = self._settings.spec.transcription.engine
            job = self._subtitler.job
            model = engine.model or job.backend_class.default_model
            self.to_screen(f"Loading model {model} ({job.backend_class.name})")
        elif isinstance(event, StageEnded) and event.stage is Stage.LOAD_MODEL:
            self.to_screen(f"Model loaded in {event.seconds:.1f} s")
        elif isinstance(event, Warned):
            self.report_warning(f"[{self.PP_NAME}] {event.message}")


class _FinalPathsPP(PostProcessor):
    """After yt-dlp moved the files (after_move, before --exec): `requested_subtitles` names where
    our files are now, not the temporary folder they were written in."""

    def __init__(self, owner: SubtitlerPostProcessor, downloader: Any) -> None:
        super().__init__(downloader)
        self._owner = owner

    def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        for sub in (info.get("requested_subtitles") or {}).values():
            moved = self._owner._moves.get(sub.get("filepath") or "")
            if moved and os.path.exists(moved):
                sub["filepath"] = moved
        return [], info


def _resolve(arguments: dict[str, Any]) -> _Settings:
    """The job's settings: `subtitler run`'s options from the config files, then the `key=value`
    arguments over them, converted and checked as the command line's are."""
    import click

    from subtitler import cli, cli_config

    given = {key.replace("_", "-"): str(value) for key, value in arguments.items()}
    force = _boolean("force", given.pop("force", "false"))
    explicit = given.pop("config", None)
    group = cli.cli
    ctx = click.Context(group, info_name="subtitler")
    config = cli_config.apply(ctx, Path(explicit) if explicit else None,
                              {name: group.commands[name] for name in cli.CONFIGURABLE})
    command = group.commands["run"]
    argv: list[str] = []
    defaults = dict((ctx.default_map or {}).get("run", {}))
    for key, value in given.items():
        found = cli_config._option(command, key)
        if found is None:
            raise click.UsageError(f"{key}: no such setting (the settings are `subtitler run`'s "
                                   "options, force and config)")
        param, flag = found
        if param.name in _NOT_HERE:
            raise click.UsageError(f"{key}: not a setting here" + (
                f" ({_NOT_HERE[param.name]})" if _NOT_HERE[param.name] else ""))
        if param.is_flag:  # true/false, whatever the config file said
            on = _boolean(key, value)
            defaults[param.name] = on if flag in param.opts else not on
        else:
            for item in value.split(",") if param.multiple else [value]:
                argv += [flag, item]
    with command.make_context("run", argv, parent=ctx, default_map=defaults) as sub:
        params = dict(sub.params)
    return _Settings(_spec(params), config, force)


def _spec(params: dict[str, Any]) -> Any:
    """`run`'s parameters as a JobSpec (what cli._job_spec does, raising instead of exiting)."""
    import click

    from subtitler.cli_options import _pop_profile, _pop_style, _track
    from subtitler.options import DecodeOptions
    from subtitler.specs import EngineSpec, JobSpec, OutputSpec, RenderSpec, TranscriptionSpec, VideoSpec

    p = params
    if p["mux"] and p["burn"]:
        raise click.UsageError("mux and burn cannot be used together: pick one")
    mode = "mux" if p["mux"] else "burn" if p["burn"] else None
    if not mode and (p["add_tracks"] or p["default_track"]):
        raise click.UsageError("add-track and default-track need mux=true or burn=true")
    video = VideoSpec(mode, None, p["encoder"], p["crf"], p["preset"], p["default_track"],
                      tuple(_track(t) for t in p["add_tracks"])) if mode else None
    engine = EngineSpec(p["backend"], p["model"], p["device"], p["compute_type"], p["threads"], p["timeout"])
    options = DecodeOptions(**{name: p[name] for name in DecodeOptions.names()})
    return JobSpec(TranscriptionSpec(engine, p["audio_stream"], options),
                   RenderSpec(tuple(p["formats"]), _pop_profile(p), _pop_style(p), video),
                   OutputSpec(None, True, record=False))


def _present(files: list[_Target]) -> str | None:
    """A file of these in the way, where it ends up or where it would be written; None if none is."""
    return next((p for f in files for p in (f.final, f.written) if os.path.exists(p)), None)


def _boolean(key: str, value: str) -> bool:
    import click

    text = value.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise click.UsageError(f"{key}={value}: expected true or false")


def _message(e: Exception) -> str | None:
    """subtitler's one-line message for an error it reports; None for a bug (a traceback)."""
    import click

    from subtitler.errors import SubtitlerError

    if isinstance(e, SubtitlerError):
        return str(e)
    if isinstance(e, click.ClickException):
        return e.format_message()
    if isinstance(e, OSError):
        return f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")
    return None
