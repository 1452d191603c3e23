"""The command line: a thin face over the job path (job.py, batch.py).

`subtitler VIDEO...` runs the default `run` command; `subtitler backends` and
`subtitler models` list what is installed. Errors are one line on stderr with
a distinct exit code (see errors.py), never a traceback.

Where things are, in this file's order:
  _warn, _fail          one-line warnings and errors on stderr
  cli                   the group: --config, --verbose; loads config files (cli_config.py)
  run                   the default command; _job_spec turns its parameters into a
                        JobSpec, _run_batch runs the inputs and sets the exit code
  watch                 run, kept going over folders (watch.py)
  render                re-lays out saved transcripts (.json)
  check                 checks subtitle files; --require-subs reads run's settings
                        (_required_subtitles, _run_params)
  mux, burn             add subtitles to a video (_video_job: progress bar, errors)
  config                the settings a command would get, and their sources
  backends, models      what is installed
  main                  the `subtitler` entry point
Option groups shared by commands (output_options, profile_options, style_options,
encoder_options, batch_options) and the option types live in cli_options.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import click
from click.core import ParameterSource
from click_default_group import DefaultGroup

from . import __version__, cli_config, files, manifest, naming, signals, whisper_compat
from .backends import auto_backend_name, broken_plugins, discover
from .batch import Batch
from .cache import Cache
from .check import RULES, FileReport, check_file, speech_of
from .cli_options import (
    _pop_profile,
    _pop_style,
    _track,
    batch_options,
    decode_options,
    encoder_options,
    naming_options,
    output_options,
    profile_options,
    style_options,
)
from .errors import OutputError, SubtitlerError
from .inputs import Input, find_inputs
from .job import Job
from .media import probe
from .models import DEFAULT_MODEL, list_models
from .options import DecodeOptions
from .profiles import DEFAULT_PROFILE, Profile, get_profile
from .progress import BatchDisplay, StageBar, echo, summary
from .report import JsonReport
from .require import RequiredSubtitles
from .specs import EngineSpec, JobSpec, OutputSpec, RenderSpec, TranscriptionSpec, VideoSpec
from .style import Style
from .video import SubtitleTrack, burn, default_output, mux


def _warn(message: str) -> None:
    """A warning on stderr."""
    echo(f"subtitler: warning: {message}", err=True)  # above the bars, if any


def _fail(e: SubtitlerError, code: int | None = None) -> None:
    """The error on stderr, then exit with `code` or the error's own."""
    click.echo(f"subtitler: error: {e}", err=True)
    sys.exit(code if code is not None else e.exit_code)


def _verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-v/--verbose, before or after the command: log what happens underneath on stderr."""
    if value:
        logging.basicConfig(level=logging.DEBUG, format="subtitler: %(name)s: %(message)s", stream=sys.stderr)
        for noisy in ("httpx", "httpcore", "numba", "faster_whisper"):
            logging.getLogger(noisy).setLevel(logging.WARNING)  # their own debug output names URLs


_VERBOSE_HELP = "Log what happens underneath (requests to remote services...) on stderr."


class _Command(cli_config.ConfiguredCommand):
    """Every command takes -v after its name too, and openai-whisper's option spellings
    (--output_dir, --word_timestamps True...: whisper_compat.py) for the options it has."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["-v", "--verbose"], is_flag=True, expose_value=False,
                                        callback=_verbose, help=_VERBOSE_HELP))
        aliases = whisper_compat.aliases_for(self.flags())
        if aliases:
            self.epilog = f"openai-whisper's spellings work too: {', '.join(aliases)}."

    def flags(self) -> set[str]:
        return {flag for p in self.params if isinstance(p, click.Option)
                for flag in [*p.opts, *p.secondary_opts]}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, whisper_compat.rewrite_args(args, self.flags()))


class _Group(DefaultGroup):
    command_class = _Command  # a bad config value names its file and key (cli_config.ConfiguredCommand)

    # The group's parser takes a "--" for its own, so the command never saw it and read the
    # file in `subtitler -- -x.mp4` as an option: what follows "--" is kept for the command.
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            return super().parse_args(ctx, args)
        at = args.index("--")
        ctx.meta[_AFTER_DASHES] = args[at + 1:]
        rest = super().parse_args(ctx, args[:at] or [self.default_cmd_name])
        if not ctx._protected_args:  # only the group's own options came before "--"
            ctx._protected_args = [self.default_cmd_name]
        return rest

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if _AFTER_DASHES in ctx.meta:
            rest = [*rest, "--", *ctx.meta.pop(_AFTER_DASHES)]
        return name, command, rest


_AFTER_DASHES = "subtitler.after_dashes"


# Commands whose options a config file can set (see config.py, cli_config.py).
CONFIGURABLE = ("run", "render", "check", "mux", "burn", "serve", "watch")


@click.group(cls=_Group, default="run", default_if_no_args=False)
@click.version_option(__version__, prog_name="subtitler")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Settings file to use instead of ./subtitler.toml or pyproject.toml's "
                   "[tool.subtitler] [env: SUBTITLER_CONFIG].")
@click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_verbose, help=_VERBOSE_HELP)
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Subtitle videos with Whisper.

    \b
    Examples:
      subtitler clip.mp4                    # writes clip.srt beside it
      subtitler clip.mp4 -f srt,vtt,json -o subs/
      subtitler talk.mkv --model base --language fr
      subtitler clip.json -f vtt            # re-render a saved transcript
      subtitler watch videos/ -o subs/      # keep a folder subtitled as files arrive
      subtitler backends                    # engines and their availability
      subtitler models                      # models usable offline
      subtitler config                      # settings from subtitler.toml, and their sources
      subtitler cache                       # where transcripts are cached, and how much
    """
    cli_config.apply(ctx, config_file, {name: cli.commands[name] for name in CONFIGURABLE})




@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@batch_options
@output_options
@naming_options
@click.option("--mux", is_flag=True,
              help="Also write clip.subtitled.mp4 (etc.) with the subtitles as a soft track, "
                   "re-encoding nothing.")
@click.option("--burn", is_flag=True,
              help="Also write clip.subtitled.mp4 with the subtitles drawn into the picture "
                   "(not with --mux: both would write the same file).")
@click.option("--video-format", type=click.Choice(["mp4", "mkv", "mov", "webm"]),
              help="Container of the subtitled video [default: the input's].")
@click.option("--default-track", is_flag=True, help="Mark the new subtitle track as the default (--mux).")
@click.option("--add-track", "add_tracks", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An existing subtitle file to mux too (repeatable); clip.fr.srt is tagged French.")
@encoder_options
@click.option("-b", "--backend", default="auto", show_default=True,
              help="Engine: auto (whisper on a GPU, faster-whisper on a CPU) "
                   "or a name from `subtitler backends`.")
@click.option("-m", "--model",
              help=f"Model name (tiny.en, base, small, large-v3, turbo...) or path [default: {DEFAULT_MODEL} "
                   "for local engines; the backend's own for remote ones (openai: whisper-1)].")
@click.option("--audio-stream", default=0, show_default=True, type=click.IntRange(min=0),
              help="Which audio stream to transcribe (0 = first).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where a local engine runs: auto is cuda when torch or CTranslate2 sees a GPU.")
@click.option("--compute-type", default="auto", show_default=True,
              help="Precision: auto (GPU float16; CPU int8 for faster-whisper, float32 for whisper), "
                   "float32, float16, int8.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for the engine [default: all cores].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Remote backends: give up on a file after this many seconds.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Remote backends: files in flight at once. Local engines: files decoded at once, "
                   "ahead of the engine.")
@click.option("--cluster", metavar="ADDRESS",
              help="Transcribe on a Ray cluster: HOST:PORT of its head, ray://HOST:PORT (Ray client), or "
                   "auto ($RAY_ADDRESS, else one started on this machine). Needs subtitler-core[ray].")
@click.option("--cluster-workers", type=click.IntRange(min=1), metavar="N",
              help="With --cluster: at most N engines [default: as many as the cluster has room for: "
                   "a GPU each, else --threads CPUs each (1)].")
@decode_options
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr [default: only on a terminal].")
def run(inputs: tuple[Path, ...], output_dir: Path | None, jobs: int, progress: bool | None,
        include: tuple[str, ...], exclude: tuple[str, ...], lists: tuple[str, ...], null: bool,
        force: bool, cache: bool, dry_run: bool, fail_fast: bool, report: Path | None,
        **settings: Any) -> None:
    """Transcribe each INPUT (video, audio, a saved transcript .json, or a folder of them) and write
    subtitles.

    Outputs go beside each input (clip.mp4 -> clip.srt, clip.subtitled.mp4)
    unless -o is given; folders are searched recursively and mirrored under
    -o. Files this tool made are replaced when their settings change;
    other existing files are kept unless --overwrite. What is up to date is
    skipped, and transcripts are cached, so a run after a change of format or
    layout only re-renders. Exit code: 0 all done, 1 some inputs failed (a
    single input: its error's own code), 2 usage error.

    The decoding options have Tiyaro's Whisper API names and openai-whisper's
    defaults. With --mux and --task translate, the video gets two tracks: the
    spoken language and English (one, when the speech is English).

    \b
    Examples:
      subtitler clip.mp4
      subtitler a.mp4 b.mkv -f srt,vtt -o subs/
      subtitler lecture.m4a --model base --language de --task translate
      subtitler clip.mp4 --beam-size 1 --temperature-increment-on-fallback none
      subtitler clip.mp4 --mux --default-track      # clip.subtitled.mp4, soft track
      subtitler talk.mkv --mux --model base --task translate   # original + English tracks
      subtitler clip.mp4 --burn --font-size 48 --box           # drawn into the picture
      subtitler videos/ -o subs/ --exclude 'drafts/*' --report report.json
      find . -name '*.mov' | subtitler --from-list - -f vtt --dry-run
      find . -name '*.mov' -print0 | subtitler --from-list - -0
      cat clip.mp4 | subtitler - -o subs/          # media on stdin: subs/stdin.srt
      subtitler -- -x.mp4                          # a name that starts with "-"
    """
    address, cluster_workers = settings.pop("cluster"), settings.pop("cluster_workers")
    spec = _job_spec(output_dir=output_dir, **settings)
    show = sys.stderr.isatty() if progress is None else progress
    if not inputs and not lists:
        raise click.UsageError("give an INPUT, a folder, or --from-list FILE")
    try:
        items = find_inputs([str(p) for p in inputs], include, exclude, lists, null)
    except SubtitlerError as e:
        _fail(e, code=2)
    single = len(inputs) == 1 and not lists and len(items) == 1 and not Path(inputs[0]).is_dir()
    job = Job(spec, config=cli_config.loaded(click.get_current_context()))
    cluster = _cluster(address, cluster_workers) if address else None
    if cluster is not None:
        job = _attach(cluster, job)
        jobs = max(jobs, cluster.size)  # a file in flight per actor
    batch = Batch(job, cache=Cache() if cache else None, force=force, fail_fast=fail_fast, jobs=jobs)
    try:
        if cluster is not None:
            batch.report_extra["cluster"] = cluster.figures
        _run_batch(batch, items, show, dry_run, report, single)
    finally:
        if cluster is not None:
            for line in cluster.lines():
                echo(line, err=True)
            cluster.close()


def _cluster(address: str, workers: int | None) -> Any:
    """--cluster: connected (cluster.py imports Ray only then), or one error line and its exit code."""
    from .cluster import connect

    try:
        return connect(address, workers)
    except SubtitlerError as e:
        _fail(e)


def _attach(cluster: Any, job: Job) -> Job:
    """`job` with its engine on the cluster's actors."""
    try:
        return cluster.attach(job)
    except SubtitlerError as e:
        cluster.close()
        _fail(e)
        raise  # not reached: _fail exits


def _job_spec(*, formats: list[str], output_dir: Path | None, overwrite: bool, profile: Profile | None,
              style: Style, mux: bool, burn: bool, video_format: str | None, default_track: bool,
              add_tracks: tuple[str, ...], encoder: str, crf: int, preset: str, backend: str,
              model: str | None, audio_stream: int, device: str, compute_type: str, threads: int | None,
              timeout: float | None, name_template: str | None = None, media_server: str | None = None,
              lang_code: str = "iso639-1", **rest: Any) -> JobSpec:
    """The job spec `run` makes of its parameters, as `run` gets them: `rest` holds the decoding
    options, and may hold the batch's own parameters (ignored). Loads no model."""
    video = None
    video_mode = _video_mode(mux, burn)
    if video_mode:
        video = VideoSpec(video_mode, f".{video_format}" if video_format else None, encoder, crf, preset,
                          default_track, tuple(_track(t) for t in add_tracks))
    elif add_tracks or default_track or video_format:
        raise click.UsageError("--add-track, --default-track and --video-format need --mux or --burn")
    decoding = {name: rest[name] for name in DecodeOptions.names()}
    try:
        return JobSpec(
            TranscriptionSpec(EngineSpec(backend, model, device, compute_type, threads, timeout),
                              audio_stream, DecodeOptions(**decoding)),
            RenderSpec(tuple(formats), profile, style, video),
            OutputSpec(output_dir, overwrite, name_template=_name_template(name_template, media_server),
                       lang_code=lang_code))
    except SubtitlerError as e:
        _fail(e)
        raise  # not reached: _fail exits


def _name_template(template: str | None, server: str | None) -> str:
    """--name-template, or --for's preset. Both name the outputs: a usage error, unless only one of
    them was typed (the command line overrides a config file's)."""
    if template is not None and server is not None:
        ctx = click.get_current_context(silent=True)
        typed = {name for name in ("name_template", "media_server") if ctx and name in ctx.params
                 and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
        if typed == {"name_template"}:
            server = None
        elif typed == {"media_server"}:
            template = None
        else:
            raise click.UsageError("--name-template and --for both name the outputs: pick one")
    if server is not None:
        return naming.preset(server)
    return template if template is not None else naming.DEFAULT_TEMPLATE


def _video_mode(mux: bool, burn: bool) -> str | None:
    """mux, burn or None. Both would write the same clip.subtitled.mp4: a usage error, unless only one
    of them was typed (the command line overrides a config file's)."""
    if not (mux and burn):
        return "mux" if mux else "burn" if burn else None
    ctx = click.get_current_context(silent=True)
    typed = {name for name in ("mux", "burn")
             if ctx and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    if len(typed) == 1:
        return typed.pop()
    raise click.UsageError("--mux and --burn cannot be used together (both write clip.subtitled.*): "
                           "pick one")


def _run_batch(batch: Batch, items: list[Input], show: bool, dry_run: bool = False,
               report: Path | None = None, single: bool = False) -> None:
    """Run a batch with a display, write its report, exit with its code."""
    started = time.time()
    display = BatchDisplay(len(items), show, {id(item): n for n, item in enumerate(items, 1)},
                           detected=batch.job.spec.transcription.options.language is None)
    batch.events.add(display)
    json_report = JsonReport(report, started) if report is not None else None
    if json_report is not None:
        batch.events.add(json_report)
    interrupted = False
    try:
        outcomes = batch.run(items, dry_run=dry_run)
    except SubtitlerError as e:  # before any input's work: the backend or its options
        display.close()
        _fail(e)
    except KeyboardInterrupt:
        display.close()
        interrupted = True
        outcomes = batch.finished
        click.echo("subtitler: interrupted (finished files are kept; run again to do the rest)", err=True)
    display.close()
    if len(items) > 1 and not dry_run:
        echo(summary(outcomes, time.time() - started), err=True)
    if dry_run:
        for o in outcomes:
            detail = o.error if o.error else ", ".join(str(p) for p in o.outputs)
            click.echo(f"{o.status}\t{o.input.path}\t{detail}")
    report_error = None
    if json_report is not None:
        try:
            json_report.write(items, batch.summary, interrupted, outcomes,
                              {k: f() for k, f in batch.report_extra.items()})
        except OSError as e:
            report_error = OutputError(f"{report}: cannot write the report ({e.strerror or e})")
            click.echo(f"subtitler: error: {report_error}", err=True)
    if interrupted:
        # Threads may be blocked in network calls or an engine: don't wait for them, but take
        # away the temporary files they are writing.
        files.abandon()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(signals.exit_code())
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        # One input: its own error's code. Several: 1 means "some failed".
        sys.exit((failed[0].exit_code or 1) if single else 1)
    if report_error:  # a script relying on the report must not take the run for a success
        sys.exit(report_error.exit_code)


@cli.command("watch")
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--settle", type=click.FloatRange(min=0), default=5.0, show_default=True, metavar="SECONDS",
              help="A file is worked on once its size and time have not changed for this long "
                   "(it has stopped growing: a copy or download is complete).")
@click.option("--poll", is_flag=True,
              help="Look for changes by polling instead of the system's notifications (network file systems; "
                   "used anyway when notifications cannot be had).")
def watch_command(folders: tuple[Path, ...], settle: float, poll: bool, output_dir: Path | None, jobs: int,
                  progress: bool | None, include: tuple[str, ...], exclude: tuple[str, ...], cache: bool,
                  report: Path | None, **settings: Any) -> None:
    """Keep FOLDERS subtitled: what is there now, then every new or changed media file.

    Works as `subtitler FOLDER...` with the same options (and config), over
    and over: at start it catches up (what is up to date is skipped), then
    each file created, written, copied or moved in is subtitled once it has
    stopped growing (--settle). The engine loads once; the manifest, the
    transcript cache and --report are a folder run's, so a renamed or copied
    file is rendered from the cache, never transcribed again, and deletions
    change nothing. Ctrl-C or SIGTERM stops: while waiting with exit code 0,
    during work as a run does (130, 143: finished files kept, nothing
    half-written); the next start catches up.

    \b
    Examples:
      subtitler watch videos/ -o subs/
      subtitler watch /media/films --for jellyfin --model base
      subtitler watch /mnt/nas/videos --poll --settle 30 --report watch.json
    """
    from .watch import Watcher, watch

    # Run's options come unfolded (its decorators' wrappers fold them for run alone).
    spec = _job_spec(output_dir=output_dir, profile=_pop_profile(settings), style=_pop_style(settings),
                     **settings)
    show = sys.stderr.isatty() if progress is None else progress
    job = Job(spec, config=cli_config.loaded(click.get_current_context()))
    watch(Watcher(folders, job, include=include, exclude=exclude, settle=settle, poll=poll,
                  cache=Cache() if cache else None, jobs=jobs, report=report, show=show))


# Run's options, but those that make no sense kept going (a list of inputs, a dry run, --force...).
watch_command.params += [p for p in run.params if p.expose_value  # -v is the command's own already
                         and p.name not in ("inputs", "lists", "null", "force", "dry_run", "fail_fast")]


@cli.command()
@click.argument("transcripts", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_options
def render(transcripts: tuple[Path, ...], formats: list[str], output_dir: Path | None, overwrite: bool,
           profile: Profile | None, style: Style) -> None:
    """Lay out cues again from saved transcripts (.json), without any engine.

    Takes milliseconds: change the profile or the style and render again.

    \b
    Examples:
      subtitler clip.mp4 -f json                 # transcribe once
      subtitler render clip.json --profile bbc -f srt,ass --overwrite
      subtitler render clip.json --max-cps 20 --max-line-chars 37 -f vtt
    """
    not_json = [str(p) for p in transcripts if p.suffix.lower() != ".json"]
    if not_json:
        raise click.BadParameter(f"not a transcript .json: {not_json[0]}", param_hint="TRANSCRIPTS")
    job = Job(JobSpec(render=RenderSpec(tuple(formats), profile, style),
                      output=OutputSpec(output_dir, overwrite)))
    items = [Input(p, PurePosixPath(p.name)) for p in transcripts]
    _run_batch(Batch(job), items, show=False, single=len(items) == 1)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--require-subs", "folders", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Every media file in DIR (found as `subtitler DIR` finds them) must have the subtitles "
                   "`subtitler DIR` writes, up to date, made with the settings of the config file "
                   "(repeatable).")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --require-subs: the subtitles are where `subtitler DIR -o OUTPUT_DIR` writes them "
                   "[default: run's output-dir from the config file, else beside the videos].")
@naming_options
@profile_options
@click.option("--video", type=click.Path(path_type=Path),
              help="The video the subtitles belong to: cues past its end are violations.")
@click.option("--speech-offset", type=click.IntRange(min=0), metavar="MS",
              help="With --video: a cue starting more than MS milliseconds before or after the speech "
                   "it carries is a violation [speech-start] (its audio is decoded).")
@click.option("--strict", is_flag=True,
              help="Warnings (reading speed: speech faster than the profile allows) fail too.")
@click.option("--ignore", "ignored", multiple=True, type=click.Choice(RULES), metavar="RULE",
              help="Do not check RULE (repeatable; in a config file: ignore = [\"reading-speed\"]).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report on stdout.")
@click.pass_context
def check(ctx: click.Context, files: tuple[Path, ...], folders: tuple[Path, ...], output_dir: Path | None,
          profile: Profile | None, video: Path | None, speech_offset: int | None, strict: bool,
          ignored: tuple[str, ...], as_json: bool, **names: Any) -> None:
    """Check subtitle files (SRT, WebVTT, ASS) against a profile's rules.

    Reports overlaps, long or too many lines, too short or long cues, gaps,
    empty cues, bad encoding and, with --video, cues after its end (and with
    --speech-offset MS, cues starting more than MS off their speech). Reading
    speed over the profile's is a warning: shown, failing only with --strict
    (speech can be faster than any layout allows). A file without cues is
    valid. Exit code: 0 clean (warnings aside), 1 violations, 2 a file could
    not be checked.

    With --require-subs DIR, for each video `subtitler DIR` would subtitle
    (with run's settings from subtitler.toml or pyproject.toml: formats,
    output folder, --include/--exclude, model, profile...), each subtitle
    file (named as run names it: --name-template, --for, --lang-code, typed
    here or in the config file) must exist [missing], be made from the video as it is now
    [stale: its .subtitler.json entry has another hash; without an entry,
    older than the video], with the current settings [settings], and pass the
    rules above, cues past the video's end included. Nothing is transcribed.

    \b
    Examples:
      subtitler check clip.srt
      subtitler check subs/*.vtt --profile bbc --json
      subtitler check clip.srt --video clip.mp4
      subtitler check clip.srt --video clip.mp4 --speech-offset 100
      subtitler check clip.srt --strict --ignore gap
      subtitler check --require-subs videos/     # CI or pre-commit in a media repository
    """
    if not files and not folders:
        raise click.UsageError("give subtitle FILES, or --require-subs DIR")
    rules = profile or get_profile(DEFAULT_PROFILE)
    duration, speech = None, None
    if speech_offset is not None and video is None:
        raise click.UsageError("--speech-offset needs --video (the media whose speech the cues carry)")
    if video is not None:
        try:
            duration = probe(video).duration
            speech = speech_of(video) if speech_offset is not None else None
        except SubtitlerError as e:
            _fail(e, code=2)
    reports = [check_file(f, rules, duration, speech, (speech_offset or 0) / 1000) for f in files]
    for report in reports:
        report.video = str(video) if video is not None else None
    if folders:
        reports += _required_subtitles(ctx, folders, rules, _typed(ctx, "output_dir"))
    for report in reports:
        report.waive(ignored)
    if as_json:
        click.echo(json.dumps({"profile": rules.name, "strict": strict, "ignored": list(ignored),
                               "files": [r.to_dict() for r in reports]}, indent=1))
    else:
        for r in reports:
            if r.error:
                click.echo(f"{r.path}: error: {r.error}")
            for v in r.violations:
                click.echo(f"{r.path}: {v.message} [{v.rule}]")
            for v in r.warnings:
                click.echo(f"{r.path}: {'' if strict else 'warning: '}{v.message} [{v.rule}]")
            if not r.error and not r.fails(strict):
                notes = [f"{r.cues} cues"] if r.cues is not None else []
                notes += [f"{len(r.warnings)} warnings"] if r.warnings else []
                click.echo(f"{r.path}: ok" + (f" ({', '.join(notes)})" if notes else ""))
    if any(r.error for r in reports):
        sys.exit(2)
    if any(r.fails(strict) for r in reports):
        sys.exit(1)


def _required_subtitles(ctx: click.Context, folders: tuple[Path, ...], rules: Profile,
                        output_dir: Path | None = None) -> list[FileReport]:
    """check --require-subs: what `subtitler FOLDER... [-o output_dir]` would write, checked
    (see require.py)."""
    params = _run_params(ctx)
    if output_dir is not None:
        params["output_dir"] = output_dir
    for name in ("name_template", "media_server", "lang_code"):  # typed here: as `run` was given them
        if _typed(ctx, name) is not None:
            params[name] = ctx.params[name]
    job = Job(_job_spec(**params), config=cli_config.loaded(ctx))
    try:
        items = find_inputs([str(f) for f in folders], params["include"], params["exclude"])
        return RequiredSubtitles(job, rules).check(items)
    except SubtitlerError as e:
        _fail(e, code=2)
        raise  # not reached: _fail exits


def _typed(ctx: click.Context, name: str) -> Any:
    """A parameter's value when given on the command line, else None (config values are run's own)."""
    return ctx.params[name] if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE else None


def _run_params(ctx: click.Context) -> dict[str, Any]:
    """`run`'s parameters as its function gets them, from the config files alone (nothing typed)."""
    command = cli.commands["run"]
    with command.make_context("run", [], parent=ctx.find_root()) as sub:  # the root holds the config
        params = dict(sub.params)
    params["profile"] = _pop_profile(params)
    params["style"] = _pop_style(params)
    return params


@cli.command("mux")
@click.argument("video", type=click.Path(path_type=Path))
@click.argument("subtitles", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The new video [default: VIDEO's name + .subtitled].")
@click.option("-l", "--language", "languages", multiple=True,
              help="Language of each subtitle file in order (code or name) [default: from names like "
                   "clip.fr.srt].")
@click.option("--default-track", is_flag=True, help="Mark the first new track as the default.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr [default: only on a terminal].")
def mux_command(video: Path, subtitles: tuple[str, ...], output: Path | None, languages: tuple[str, ...],
                default_track: bool, overwrite: bool, progress: bool | None) -> None:
    """Add existing subtitle files to VIDEO as soft tracks, re-encoding nothing.

    MP4/MOV get mov_text, MKV gets SRT (ASS files stay ASS, with their
    styling), WebM gets WebVTT. Existing tracks are kept.

    \b
    Examples:
      subtitler mux clip.mp4 clip.srt                   # -> clip.subtitled.mp4
      subtitler mux film.mkv film.en.srt film.fr.ass -o film.multi.mkv
      subtitler mux clip.mp4 subs.srt -l de --default-track
    """
    tracks = [_track(s) for s in subtitles]
    for n, lang in enumerate(languages[: len(tracks)]):
        tracks[n] = SubtitleTrack(tracks[n].path, lang)
    if default_track:
        tracks[0] = SubtitleTrack(tracks[0].path, tracks[0].language, default=True)
    settings = {"command": "mux", "tracks": [[t.language, t.default] for t in tracks]}
    _video_job(lambda bar, replace: mux(video, tracks, output, overwrite=replace, on_progress=bar),
               video, [Path(s) for s in subtitles], output or default_output(video), "mux", progress,
               settings, overwrite)


@cli.command("burn")
@click.argument("video", type=click.Path(path_type=Path))
@click.argument("subtitles", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The new video [default: VIDEO's name + .subtitled].")
@style_options
@encoder_options
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr [default: only on a terminal].")
def burn_command(video: Path, subtitles: Path, output: Path | None, style: Style, encoder: str, crf: int,
                 preset: str, overwrite: bool, progress: bool | None) -> None:
    """Draw SUBTITLES (SRT, WebVTT or ASS) into VIDEO's picture; audio is copied.

    SRT and WebVTT get the style options (sizes in the video's pixels); an
    ASS file keeps its own styles.

    \b
    Examples:
      subtitler burn clip.mp4 clip.srt                  # -> clip.subtitled.mp4
      subtitler burn clip.mp4 clip.srt --font-size 42 --box --position top
      subtitler burn clip.mkv clip.ass -o clip.web.mp4 --crf 20 --preset slow
    """
    settings = {"command": "burn", "style": dataclasses.asdict(style), "encoder": encoder, "crf": crf,
                "preset": preset}
    _video_job(lambda bar, replace: burn(video, subtitles, output, style=style, encoder=encoder, crf=crf,
                                         preset=preset, overwrite=replace, on_progress=bar, warn=_warn),
               video, [subtitles], output or default_output(video), "burn", progress, settings, overwrite)


def _video_job(job: Callable[[Any, bool], Path], video: Path, subtitles: list[Path], output: Path,
               stage: str, progress: bool | None, settings: dict[str, Any], overwrite: bool) -> None:
    """Run mux's or burn's `job(bar, replace)` under a progress bar; print the new video's path, or fail.

    The new video is recorded in its folder's manifest like run's outputs: the same command again
    finds it up to date and does nothing; with another input or setting it replaces its own file.
    """
    show = sys.stderr.isatty() if progress is None else progress
    try:
        record = manifest.OutputRecord(output, [video, *subtitles], settings) if video.is_file() else None
        if record and record.up_to_date():
            click.echo(str(output))
            return
        replace = overwrite or bool(record and record.mine)
        # Recorded when it may be written; else the job refuses it (not ours): nothing to record.
        writable = record is not None and (replace or not output.exists())
        recording = record.writing() if record and writable else contextlib.nullcontext()
        with StageBar(output.name, show) as bar, recording:
            result = job(lambda done, total: bar.update(stage, done, total), replace)
    except SubtitlerError as e:
        _fail(e)
    except OSError as e:
        _fail(OutputError(f"{e.filename or output}: {e.strerror or e}"))
    except KeyboardInterrupt:
        click.echo("subtitler: interrupted", err=True)
        sys.exit(signals.exit_code())
    click.echo(str(result))


@cli.command("config", context_settings={"ignore_unknown_options": True})
@click.option("--command", "command_name", type=click.Choice(CONFIGURABLE), default="run", show_default=True,
              help="The command whose settings to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, on stdout.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def config_command(ctx: click.Context, command_name: str, as_json: bool, args: tuple[str, ...]) -> None:
    """Show the settings a command would run with, and where each comes from.

    Lowest precedence first: the option's default, the user config
    (config.toml in the user config folder), the project's subtitler.toml or
    pyproject.toml's [tool.subtitler] (or --config FILE), and the command
    line: options after `config` are read as the command's own.

    \b
    Examples:
      subtitler config                          # run's settings
      subtitler config --command check --json
      subtitler config --model base -f srt,vtt  # as `subtitler clip.mp4 --model base -f srt,vtt` would
      subtitler --config ci.toml config
    """
    command = cli.commands[command_name]
    assert isinstance(command, _Command)
    shown = cli_config.effective(ctx, command, whisper_compat.rewrite_args(list(args), command.flags()))
    if as_json:
        click.echo(json.dumps({"command": command_name, "settings": {
            key: {"value": _plain(value), "source": source} for key, (value, source) in shown.items()}},
            indent=1))
        return
    for key, (value, source) in shown.items():
        click.echo(f"{key} = {'none' if value is None else json.dumps(_plain(value))}  # {source}")


def _plain(value: Any) -> Any:
    """A setting as JSON (and TOML) can write it: paths as text, tuples as lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


@cli.command()
@click.pass_context
def backends(ctx: click.Context) -> None:
    """List installed backends and whether each can run here.

    \b
    Examples:
      subtitler backends
    """
    entries = discover(cli_config.loaded(ctx))
    for line in broken_plugins(entries):
        _warn(line)
    if not entries:
        click.echo("no backends installed (pip install a subtitler backend plugin)")
        return
    try:
        auto = auto_backend_name(entries)
    except SubtitlerError:
        auto = None
    for name, e in sorted(entries.items()):
        state = "available" if e.problem is None else f"unavailable: {e.problem}"
        mark = " (auto)" if name == auto else ""
        desc = e.cls.description if e.cls else e.target
        click.echo(f"{name}{mark}\t{state}\t{desc}")


@cli.command()
def models() -> None:
    """List model names and which work offline (bundled).

    \b
    Examples:
      subtitler models
    """
    for m in list_models():
        click.echo(f"{m.name}\t{'offline' if m.offline else 'download'}\t{m.source}")


@cli.command("cache")
@click.option("--clear", is_flag=True, help="Remove every cached transcript and file hash.")
@click.option("--older-than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Remove only entries not written for DAYS days.")
def cache_command(clear: bool, older_than: float | None) -> None:
    """Show where transcripts are cached and how much room they take, or clear them.

    A run reuses a transcript when the same audio was transcribed with the
    same backend, model and decoding options; removing entries only costs
    time on the next run.

    \b
    Examples:
      subtitler cache
      subtitler cache --older-than 30
      subtitler cache --clear
    """
    store = Cache()
    if clear or older_than is not None:
        removed = store.prune(None if clear else older_than * 86400)
        click.echo(f"removed {removed} entries from {store.root}")
        return
    click.echo(f"{store.root}")
    for kind, (count, size) in store.usage().items():
        click.echo(f"{kind}\t{count} entries\t{size / 1e6:.1f} MB")


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from .serve.retention import parse_duration

    try:
        return parse_duration(value)
    except SubtitlerError as e:
        raise click.BadParameter(str(e)) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; one other machines can reach needs an API key.")
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free one, named on stderr).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Jobs transcribed at once, each by its own engine; the others wait in the queue.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where jobs, uploads and results are kept across restarts "
                   "[default: the user data folder's subtitler/serve].")
@click.option("--max-queue", default=100, show_default=True, type=click.IntRange(min=1),
              help="Jobs that may wait; beyond, a submission gets 429 with Retry-After.")
@click.option("--max-upload", default=2048, show_default=True, type=click.IntRange(min=1), metavar="MB",
              help="Largest upload, in MiB; beyond, 413.")
@click.option("--keys-file", type=click.Path(dir_okay=False, path_type=Path),
              help="API keys, one a line (# comments), besides those of $SUBTITLER_SERVE_KEYS "
                   "(comma-separated).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve on a non-loopback address with no API key (anyone who can reach it).")
@click.option("--retention", default="24h", show_default=True, metavar="DURATION", callback=_duration,
              help="How long a finished job, its result and its upload are kept (90s, 30m, 24h, 7d).")
@click.option("--grace", default=30.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="On SIGTERM, how long running jobs may take to finish before the server stops anyway "
                   "(they then run again at the next start).")
@click.option("--webhook-url", metavar="URL",
              help="POST every job's end here, signed (needs $SUBTITLER_WEBHOOK_SECRET or webhook-secret).")
@click.option("--webhook-allow", multiple=True, metavar="HOST[:PORT]",
              help="A host a job's callback_url may name (repeatable); no other is ever posted to.")
@click.option("--webhook-secret", envvar="SUBTITLER_WEBHOOK_SECRET", show_envvar=True, metavar="SECRET",
              help="The key webhooks are signed with (HMAC-SHA256); better from the environment or config "
                   "than on a command line.")
@decode_options
@profile_options
def serve(host: str, port: int, workers: int, data_dir: Path | None, max_queue: int, max_upload: int,
          keys_file: Path | None, insecure_no_auth: bool, retention: float, grace: float,
          webhook_url: str | None, webhook_allow: tuple[str, ...], webhook_secret: str | None,
          backend: str, model: str | None, device: str, compute_type: str, threads: int | None,
          timeout: float | None, profile: Profile | None, cluster: str | None, cluster_workers: int | None,
          **decoding: Any) -> None:
    """Serve Whisper transcription over HTTP: Tiyaro's async protocol, OpenAI's, whisper-asr-webservice's.

    The engine loads once at start-up; jobs wait in a queue kept in --data-dir
    and survive a restart. API docs at /docs; /health and /ready for probes.
    The decoding options are the defaults of a job that does not give them.

    \b
    Examples:
      subtitler serve --model base
      SUBTITLER_SERVE_KEYS=k1,k2 subtitler serve --host 0.0.0.0 --workers 2
      subtitler serve --cluster head:6379   # jobs run on a Ray cluster's engines (not --workers)
    """
    import platformdirs

    from .serve.app import ServeSettings
    from .serve.server import serve as run_server

    folder = data_dir or Path(platformdirs.user_data_dir("subtitler")) / "serve"
    settings = ServeSettings(host, port, workers, folder, max_queue, max_upload * 2**20,
                             insecure_no_auth=insecure_no_auth, retention=retention, grace=grace,
                             webhook_url=webhook_url, webhook_allow=webhook_allow,
                             webhook_secret=webhook_secret)
    on_cluster = None
    try:
        spec = JobSpec(TranscriptionSpec(EngineSpec(backend, model, device, compute_type, threads, timeout),
                                         0, DecodeOptions(**decoding)),
                       RenderSpec(profile=profile))  # the layout of srt and vtt answers
        config = cli_config.loaded(click.get_current_context())
        engines = None
        if cluster:  # the queue hands its jobs to the cluster's actors: one worker thread per actor
            on_cluster = _cluster(cluster, cluster_workers)
            engines = [_attach(on_cluster, Job(spec, config=config)).engine]
            on_cluster.engine.start()  # the actors load their engines while the server starts
            settings = dataclasses.replace(settings, workers=on_cluster.size)
        run_server(settings, spec, keys_file=keys_file, config=config, engines=engines)
    except SubtitlerError as e:
        _fail(e)
    except KeyboardInterrupt:  # uvicorn has stopped serving; a running job runs again at the next start
        click.echo("subtitler: stopped (jobs not finished run when the server starts again)", err=True)
        sys.stderr.flush()
        # At once: a worker still inside the engine's native code crashes under the interpreter's teardown.
        os._exit(signals.exit_code())
    finally:
        if on_cluster is not None:
            for line in on_cluster.lines():
                echo(line, err=True)
            on_cluster.close()


# The engine options are run's own (one definition, one help text).
serve.params[:0] = [p for p in run.params
                    if p.name in ("backend", "model", "device", "compute_type", "threads", "timeout",
                                  "cluster", "cluster_workers")]


def main() -> None:
    """The `subtitler` entry point (pyproject.toml)."""
    signals.install()  # SIGTERM stops a run as Ctrl-C does, with 143
    files.use_private_tempdir()
    try:
        cli(prog_name="subtitler")
    except SystemExit:
        if signals.received():  # stopped outside a batch (click says "Aborted!" with 1)
            sys.exit(signals.exit_code())
        raise
