"""One input, these settings, this engine: the one path every host runs.

    job = Job(JobSpec(...), cache=Cache(), events=Events([display]))
    outcome = job.run(Input.of("clip.mp4"))

For each input the job first decides what it needs, cheapest first (`plan`):

1. up to date: every output exists and its manifest entry (manifest.py) says
   it was made from this very file with these settings: nothing to do;
2. render: a transcript of this audio with these transcription settings is
   in the cache (cache.py), or the input is a saved transcript: lay it out
   and write the files, no decoding;
3. transcribe: decode, run the engine, cache the transcript, write.

and then does it: `decode`, `hear` (the engine), `write` (render, write,
record in the manifest). `run` does all of it for one input; a batch
(batch.py) calls the same steps, overlapping inputs; the CLI, `subtitle()`,
`Subtitler`, a server's worker or a cluster's actor are hosts of this path.
Everything it does is told as events (events.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import manifest, naming
from .backends import Backend, BackendEntry, BackendSettings, discover, get_backend_class, resolve_settings
from .cache import Cache
from .cleanup import collapse_repetitions
from .config import Config
from .config import load as load_config
from .errors import (
    BadTranscript,
    EmptyAudio,
    InputNotFound,
    NoAudioStream,
    NotMedia,
    OutputError,
    OutputExists,
    SubtitlerError,
)
from .events import Events, Finished, Report, Sink, Stage, StageEnded, StageStarted, Started, Status, Warned
from .files import remove_leftovers, sha256
from .formats import get_format
from .inputs import Input
from .languages import language_code
from .media import SAMPLE_RATE, Audio, MediaInfo, Pcm, audible_streams, decode_audio, probe
from .options import DecodeOptions
from .render import write_outputs, write_video
from .specs import JobSpec, settings_digest
from .splitting import stitch
from .timing import audio_energy, refine_transcript
from .transcript import Source, Transcript
from .video import check_can_write, default_output

# Failures that depend only on the file's bytes: remembered, so a re-run does not decode it again.
UNDECODABLE = (NotMedia, NoAudioStream, EmptyAudio)


@dataclass
class Outcome:
    """How one input went: what was planned, then how it ended, and what it made."""

    input: Input
    # up-to-date | render | transcribe (planned, or for --dry-run), then done | rendered | failed | skipped.
    status: Status
    outputs: list[Path] = field(default_factory=list)
    language: str | None = None
    duration: float | None = None
    # Seconds spent per stage: decode, transcribe, write, total...
    timings: dict[str, float] = field(default_factory=dict)
    # ...and when each ran: (start, end) in seconds from the start of the run.
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str | None = None
    exit_code: int | None = None
    # The transcripts the outputs were made from (one per task), when known; not in the report.
    transcripts: list[Transcript] = field(default_factory=list, repr=False)
    # The subtitled video (--mux, --burn), also last in `outputs`.
    video: Path | None = None
    # The error itself, for the Python API to raise; not in the report.
    exception: SubtitlerError | None = field(default=None, repr=False)

    @property
    def decoded(self) -> bool:
        return "decode" in self.timings

    def to_dict(self) -> dict[str, Any]:
        return {"input": str(self.input), "status": str(self.status),
                "outputs": [str(p) for p in self.outputs], "language": self.language,
                "duration": self.duration, "decoded": self.decoded,
                "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "spans": {k: list(v) for k, v in self.spans.items()},
                "error": self.error, "exit_code": self.exit_code}


@dataclass
class Plan:
    input: Input
    targets: list[Path]
    action: Status
    file_hash: str | None = None
    settings: str = ""  # digest of all the settings, as recorded in the manifest
    summary: dict[str, Any] = field(default_factory=dict)
    # The transcripts, when the cache (or a transcript .json input) already has them.
    transcripts: list[Transcript] | None = None
    # The names no other input of a run may have: the targets, with a language that names depend
    # on left as naming.UNKNOWN (two inputs whose names differ only by it collide); [] = targets.
    claims: list[Path] = field(default_factory=list)


def is_transcript_file(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def output_paths(path: Path, formats: Iterable[str], output_dir: Path | None = None) -> list[Path]:
    """Where each format's file goes: beside the input, or in `output_dir`."""
    folder = output_dir if output_dir is not None else path.parent
    return [folder / (path.stem + get_format(f).extension) for f in formats]


class Job:
    """Runs inputs with one JobSpec and one engine (loaded on first need, once, or given).

    `cache`: the transcript cache (None: none); `force`: transcribe again even what is up to
    date or cached; `events`: where events go (a sink or an Events channel); `config`: the
    config files' settings for the backend's own settings (None: read them when needed).
    `want_transcripts`: every outcome carries its transcripts (an up-to-date input's from the
    cache, else transcribed again): what the Python API returns.
    """

    def __init__(self, spec: JobSpec, *, engine: Backend | None = None, cache: Cache | None = None,
                 events: Events | Sink | None = None, config: Config | None = None, force: bool = False,
                 want_transcripts: bool = False) -> None:
        self.spec = spec
        self.cache, self.force, self.config = cache, force, config
        self.want_transcripts = want_transcripts
        self.events = events if isinstance(events, Events) else Events([events] if events else [])
        self._slot = _Slot(engine)
        self._manifests = manifest.Reader()
        self.t0 = time.perf_counter()  # spans are told from here

    # -- the engine and the settings that depend on it ----------------------------------

    def derive(self, *, cache: Cache | None = None, force: bool = False,
               events: Events | Sink | None = None) -> Job:
        """Another job with the same spec and config sharing this one's engine (loaded once)."""
        job = Job(self.spec, cache=cache, events=events, config=self.config, force=force,
                  want_transcripts=self.want_transcripts)
        job._slot = self._slot
        return job

    @property
    def _engine(self) -> Backend | None:
        return self._slot.engine

    @functools.cached_property
    def _files(self) -> Config:
        """The config files' settings: as given, else read once for this job."""
        return self.config if self.config is not None else load_config()

    @functools.cached_property
    def _entries(self) -> dict[str, BackendEntry]:
        return discover(self._files)

    @functools.cached_property
    def backend_class(self) -> type[Backend]:
        if self._engine is not None:
            return type(self._engine)
        return get_backend_class(self.spec.transcription.engine.backend, self._entries)

    @functools.cached_property
    def backend_settings(self) -> BackendSettings:
        if self._engine is not None:
            return self._engine.settings
        given = dict(self.spec.transcription.engine.settings)
        return resolve_settings(self.backend_class, given, self._files)

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """Everything that shapes a media input's outputs, as the manifest records it."""
        return self.spec.settings_summary(self._shaping())

    def _shaping(self) -> dict[str, Any]:
        """The backend's settings that shape results. None to know for `auto` (local engines), nor
        for a backend not installed here (`check --require-subs` in CI needs no engine): what a
        job spec gives is all there is to know then."""
        if self._engine is not None:
            return self._engine.settings.shaping()
        name = self.spec.transcription.engine.backend
        entry = self._entries.get(name) if name != "auto" else None
        if entry is None or entry.cls is None:
            return {}
        given = dict(self.spec.transcription.engine.settings)
        return resolve_settings(entry.cls, given, self._files).shaping()  # usable here or not

    @functools.cached_property
    def transcript_summary(self) -> dict[str, Any]:
        """What shapes the outputs of a saved transcript (.json) input: the rendering alone."""
        return {"transcription": None, "render": self.spec.render.to_dict()}

    def transcript_key(self, audio: str) -> str:
        """The cache key of this audio's transcripts: the transcription settings and the engine's
        fingerprint (a model file's identity...)."""
        fingerprint = self.backend_class.fingerprint(self.spec.transcription.engine, self.backend_settings)
        return Cache.transcript_key(audio, {**self.summary["transcription"], "fingerprint": fingerprint})

    @property
    def engine(self) -> Backend:
        """The loaded engine: loaded here on first use (told as the `loading model` stage)."""
        with self._slot.lock:
            if self._slot.engine is None:
                with self.timed(None, Stage.LOAD_MODEL):
                    self._slot.engine = self.backend_class(self.spec.transcription.engine,
                                                           self.backend_settings)
            return self._slot.engine

    def check_engine(self) -> None:
        """Refuse an engine that cannot run here, or options it would ignore, before any work
        (no model is loaded for it)."""
        for options in self.spec.tasks():
            self.backend_class.check_options(options)

    # -- planning ---------------------------------------------------------------------

    def folder_for(self, item: Input) -> Path | None:
        """Outputs of `item` go here: its mirror under the output folder (-o), or None: beside it
        (or where a stdin input's go)."""
        if self.spec.output.output_dir is None:
            return item.folder
        return self.spec.output.output_dir / item.relative.parent

    def tracks(self, language: str | None = naming.UNKNOWN) -> list[tuple[str, str | None]]:
        """(task, language) of each track that gets files of its own: the last task's alone, unless
        the name template tells tracks apart (naming.py). `language`: the one heard in the input
        (None: none, no speech); naming.UNKNOWN: not heard yet, --language's if given."""
        given = self.spec.transcription.options.language
        if language == naming.UNKNOWN and given:
            language = language_code(given) or given
        tasks = [o.task for o in self.spec.tasks()]
        if not self.spec.output.naming.per_track:
            tasks = tasks[-1:]
        elif language == "en":
            tasks = tasks[:1]  # English speech: its transcript is the English track (see hear())
        return [(t, "en" if t == "translate" else language) for t in tasks]

    @functools.cached_property
    def model_label(self) -> str:
        """The model as `{model}` names it: the one given, else the backend's default."""
        model = self.spec.transcription.engine.model
        if model is None:
            with contextlib.suppress(SubtitlerError):  # a backend not installed here (check in CI)
                model = self.backend_class.default_model
        return naming.model_label(model)

    def subtitle_targets(self, item: Input, language: str | None = naming.UNKNOWN) -> list[tuple[str, Path]]:
        """(format, path) of each subtitle file subtitling `item` writes, track after track, named by
        the template (`language`: as for `tracks`)."""
        folder = self.folder_for(item)
        where = folder if folder is not None else item.path.parent
        names = self.spec.output.naming
        model = self.model_label if "model" in naming.fields(names.template) else ""
        return [(fmt, where / (names.name(item.path.stem, lang, task, model) + get_format(fmt).extension))
                for task, lang in self.tracks(language) for fmt in self.spec.render.formats]

    def targets(self, item: Input, language: str | None = naming.UNKNOWN) -> list[Path]:
        """Every file subtitling `item` writes: the subtitle files, then the video if asked."""
        folder = self.folder_for(item)
        path = item.path
        outputs = [p for _, p in self.subtitle_targets(item, language)]
        video = self.spec.render.video
        if video:
            if is_transcript_file(path):
                raise OutputError(f"{path}: --{video.mode} needs the video, not a transcript")
            target = default_output(path).with_suffix(video.container or path.suffix)
            outputs.append(folder / target.name if folder is not None else target)
        return outputs

    def plan(self, item: Input, manifests: manifest.Reader | None = None) -> Plan | Outcome:
        """What `item` needs; an Outcome if it cannot be planned (a missing file...).

        `manifests`: the manifests as read for this plan (a batch reads them once, before it
        writes any: `refresh`)."""
        try:
            targets = claims = self.targets(item)
            if not item.path.is_file():
                raise InputNotFound(f"{item.path}: no such file" + (
                    " (a symlink to nothing, or a loop)" if item.path.is_symlink() else ""))
            reader = manifests or self._manifests
            # Hashed even without the cache: every output is recorded in the manifest, so running
            # the same command again is never an error.
            file_hash = self.cache.file_hash(item.path) if self.cache else sha256(item.path)
            if self.named_by_language:  # names known from the language an earlier run recorded
                targets = self.targets(item, self.recorded_language(item, reader, file_hash))
            self._check_plan_targets(item, targets, reader)
            transcript_input = is_transcript_file(item.path)
            summary = self.transcript_summary if transcript_input else self.summary
            plan = Plan(item, targets, Status.RENDER if transcript_input else Status.TRANSCRIBE, file_hash,
                        settings_digest(summary), summary, claims=claims)
            if self.cache and not self.force and not transcript_input:
                failed = self.cache.failure(file_hash, self.spec.transcription.audio_stream)
                if failed:  # the same bytes cannot decode now either
                    return Outcome(item, Status.FAILED, exit_code=failed["exit_code"],
                                   error=f"{item.path}: {failed['detail']} (as in an earlier run; "
                                         "--force tries again)")
            if not self.force and self.spec.output.record and self._up_to_date(plan, reader):
                plan.action = Status.UP_TO_DATE
            if transcript_input:
                if plan.action == Status.RENDER or self.want_transcripts:
                    plan.transcripts = [Transcript.load(item.path)]
            elif self.cache and not self.force and (plan.action == Status.TRANSCRIBE
                                                    or self.want_transcripts):
                plan.transcripts = self._cached(file_hash)
                if plan.transcripts is not None and plan.action == Status.TRANSCRIBE:
                    plan.action = Status.RENDER
            if plan.action == Status.UP_TO_DATE and self.want_transcripts and plan.transcripts is None:
                plan.action = Status.TRANSCRIBE  # the caller wants the transcript: hear it again
            if plan.action == Status.RENDER and plan.transcripts and self.named_by_language:
                # The cache knows the language: the names are known before any work.
                plan.targets = self.targets(item, plan.transcripts[0].language)
                self._check_plan_targets(item, plan.targets, reader)
            if plan.action != Status.UP_TO_DATE:
                self.check_video(item.path, plan.targets)  # before any work on it
            return plan
        except SubtitlerError as e:
            return Outcome(item, Status.FAILED, error=str(e), exit_code=e.exit_code, exception=e)
        except OSError as e:
            error = InputNotFound(f"{item.path}: cannot read ({e.strerror or e})")
            return Outcome(item, Status.FAILED, error=str(error), exit_code=3, exception=error)

    def _check_plan_targets(self, item: Input, targets: list[Path], reader: manifest.Reader) -> None:
        """A file in the way that is not ours (the manifest's) is refused before any work, not
        after the transcription (write() checks again: one may appear meanwhile)."""
        # Another run writing the same folder may have made a file since the manifests were
        # read: its entry (written before the file) is read afresh, after the file is seen.
        record = self.spec.output.record
        ours = [t for t in targets if reader.entry(t) is not None] if record else []
        self.check_targets(item.path, targets, replaceable=ours,
                           is_ours=(lambda t: manifest.entry_for(t) is not None) if record else None)
        self._refuse_taken(item, targets, reader.entry)

    def _refuse_taken(self, item: Input, targets: list[Path],
                      entry_of: Callable[[Path], manifest.Entry | None] = manifest.entry_for) -> None:
        """With a name template, a name an earlier run gave another input that is still there is
        refused, never replaced (the default names keep replacing their own: clip.mkv's clip.srt
        where clip.mp4's was)."""
        if self.spec.output.name_template == naming.DEFAULT_TEMPLATE or not self.spec.output.record:
            return
        for target in targets:
            entry = entry_of(target)
            if (entry is not None and entry.source != manifest.source_path(target, item.path)
                    and (target.parent / entry.source).exists()):
                raise OutputError(f"{item.path}: {target} is already the output of "
                                  f"{os.path.normpath(target.parent / entry.source)} (rename one, or use -o)")

    @property
    def named_by_language(self) -> bool:
        """Output names depend on the language heard (no --language): they have {lang}, or a
        translation gets files of its own, but none for English speech."""
        names = self.spec.output.naming
        return not self.spec.transcription.options.language and (
            names.needs_language or (names.per_track and len(self.spec.tasks()) > 1))

    def recorded_language(self, item: Input, reader: manifest.Reader,
                          file_hash: str | None = None) -> str | None:
        """The language an earlier run heard in `item`, as its manifest entries record it, or
        naming.UNKNOWN."""
        folder = self.folder_for(item)
        folder = folder if folder is not None else item.path.parent
        found = reader.language(folder, manifest.source_path(folder / "-", item.path), file_hash)
        return found or naming.UNKNOWN

    def _cached(self, file_hash: str) -> list[Transcript] | None:
        """This file's transcripts from the cache, made this file's (its offset, picture...)."""
        assert self.cache is not None
        known = self.cache.input_of(file_hash, self.spec.transcription.audio_stream)
        if not known:
            return None
        audio, source = known
        heard = self.cache.transcripts(self.transcript_key(audio))
        try:
            return None if heard is None else [place(t, Source.from_dict(source)) for t in heard]
        except BadTranscript:  # facts kept by 0.2 (another layout): a miss, heard again
            return None

    def refresh(self) -> None:
        """Read the manifests afresh (a batch does before planning: as they are before it writes)."""
        self._manifests = manifest.Reader()
        self.t0 = time.perf_counter()

    def _up_to_date(self, plan: Plan, manifests: manifest.Reader) -> bool:
        for target in plan.targets:
            entry = manifests.entry(target)
            if (entry is None or entry.pending or entry.settings != plan.settings
                    or entry.source_sha256 != plan.file_hash or not target.is_file()):
                return False
        return True

    def check_video(self, path: Path, targets: list[Path]) -> None:
        """Refuse a video --mux/--burn cannot make of `path` (see video.check_can_write): from its
        probe, before any decoding or transcribing."""
        v = self.spec.render.video
        if v is None or is_transcript_file(path):
            return
        check_can_write(probe(path), targets[-1], v.mode, encoder=v.encoder, crf=v.crf, preset=v.preset,
                        font=self.spec.render.style.font)

    def check_targets(self, path: Path, targets: list[Path], replaceable: Iterable[Path] = (),
                      is_ours: Callable[[Path], bool] | None = None) -> None:
        """Refuse to overwrite the input, or an existing file unless --overwrite, `replaceable` or
        `is_ours` (asked only of a file that exists)."""
        mine = {p.resolve() for p in replaceable}
        for target in targets:
            if target.resolve() == path.resolve():
                raise OutputError(f"{target}: output would overwrite the input")
            if target.exists() and not self.spec.output.overwrite and target.resolve() not in mine \
                    and not (is_ours and is_ours(target)):
                raise OutputExists(f"{target}: already exists (use --overwrite to replace it)")

    # -- doing it ---------------------------------------------------------------------

    def run(self, item: Input) -> Outcome:
        """Plan `item` and do what it needs; failures are in the outcome, as for every input of a
        batch (SubtitlerError from the engine's loading aside)."""
        plan = self.plan(item, manifest.Reader())  # as they are now: an earlier run() wrote them
        if isinstance(plan, Outcome):
            return self.finish(plan)
        if plan.action != Status.TRANSCRIBE:
            return self.render(plan)
        self.check_engine()
        outcome = Outcome(item, Status.TRANSCRIBE)
        self.events(Started(item, Status.TRANSCRIBE))
        with self.timed(outcome, "total"):
            try:
                audio, prepared = self.decode(plan, outcome)
                self.transcribe(plan, outcome, audio, prepared)
            except SubtitlerError as e:
                self.failed(plan, outcome, e)
        return self.finish(outcome)

    def render(self, plan: Plan) -> Outcome:
        """Up to date, or only rendering: no decoding, no engine."""
        outcome = Outcome(plan.input, plan.action, transcripts=plan.transcripts or [])
        if plan.action == Status.UP_TO_DATE:
            outcome.outputs = plan.targets
            if plan.transcripts:
                outcome.language = plan.transcripts[-1].language
            return self.finish(outcome)
        self.events(Started(plan.input, plan.action))
        with self.timed(outcome, "total"):
            try:
                assert plan.transcripts is not None
                self.write(plan, plan.transcripts, outcome)
                outcome.status = Status.RENDERED
            except SubtitlerError as e:
                self.failed(plan, outcome, e)
        return self.finish(outcome)

    def decode(self, plan: Plan, outcome: Outcome) -> tuple[Audio, Any]:
        """The input's audio, and the engine's work done ahead on it (Backend.prepare)."""
        path = plan.input.path
        with self.timed(outcome, Stage.DECODE):
            audio = decode_input(path, self.spec.transcription.audio_stream,
                                 self.events.report(plan.input, Stage.DECODE), self._warn(plan.input))
        prepared = None
        # Only backends with their own prepare: the others' model must not load in a decode thread.
        # No samples: no audio stream, nothing to send. A long input's first piece only: the
        # others are prepared as they are heard, one at a time.
        if self.backend_class.prepare is not Backend.prepare and audio.count:
            with self.timed(outcome, Stage.PREPARE):
                prepared = self.engine.prepare(audio.read(*audio.pieces[0]))
        return audio, prepared

    def transcribe(self, plan: Plan, outcome: Outcome, audio: Audio, prepared: Any = None) -> None:
        """Run the engine on decoded audio, cache what it heard, write the outputs."""
        outcome.duration = audio.duration
        with self.timed(outcome, Stage.TRANSCRIBE):
            heard = self.hear(plan.input, audio, prepared)
        source = input_source(plan.input.path, audio, self.spec.transcription.audio_stream)
        if self.cache and plan.file_hash:
            # Saved before the outputs: a run killed while writing only renders next time. On the
            # audio's clock; this file's offset, picture... are kept with its hash.
            key = audio.hash
            self.cache.store(self.transcript_key(key), heard)
            self.cache.remember_input(plan.file_hash, self.spec.transcription.audio_stream, key,
                                      source.to_dict())
        transcripts = [place(t, source) for t in heard]
        del audio  # the samples can go before writing (long inputs are big)
        self.write(plan, transcripts, outcome)
        outcome.status = Status.DONE

    def failed(self, plan: Plan, outcome: Outcome, e: SubtitlerError) -> None:
        """`outcome` failed with `e`; a file whose bytes cannot be decoded is remembered as such."""
        outcome.status, outcome.error, outcome.exit_code, outcome.exception = \
            Status.FAILED, str(e), e.exit_code, e
        if isinstance(e, UNDECODABLE) and self.cache and plan.file_hash:
            self.cache.remember_failure(plan.file_hash, self.spec.transcription.audio_stream,
                                        _without_path(str(e), plan.input.path), e.exit_code)

    def hear(self, item: Input, audio: Audio, prepared: Any = None) -> list[Transcript]:
        """Run the engine once per task on decoded audio: times on the audio's own clock, nothing
        of the file it came from (what the cache keeps: `place` makes them the file's)."""
        results: list[Transcript] = []
        path = item.path
        for options in self.spec.tasks():
            if options.task == "translate" and any(t.language == "en" for t in results):
                continue  # English speech: its transcript is the English track already, not a second one
            stage = Stage.TRANSLATE if options.task == "translate" else Stage.TRANSCRIBE
            report = self.events.report(item, stage, audio.duration)
            if not audio.count:  # no audio stream: nothing for the engine
                transcript = Transcript(None, 0.0, meta={"options": options.to_dict()})
            else:
                engine = self.engine
                if options.vad and "vad" in engine.supported_options:
                    # Voice activity detection runs inside the engine first: shown until its first
                    # progress.
                    report.stage_started(Stage.VAD)
                # Repetition loops are Whisper's classic failure: collapse them whatever the engine.
                transcript = collapse_repetitions(
                    hear_pieces(engine, audio, options, report, prepared if not results else None))
                if options.refine_timing:  # every engine's word times onto the speech (timing.py)
                    loudness = audio_energy(audio.read(*piece) for piece in audio.pieces)
                    transcript = refine_transcript(transcript, loudness)
            removed = transcript.meta.get("repetitions_removed")
            if removed:
                self._warn(item)(f"{path}: removed a repetition loop ({removed['words']} words, "
                                 f"{removed['segments']} repeated segments)")
            transcript.duration = audio.duration
            transcript.source = dataclasses.replace(transcript.source or Source(), task=options.task)
            results.append(transcript)
        if audio.stream is None:
            self._warn(item)(f"{path}: no audio stream; the subtitles are empty")
        # What becomes cues: words, or a segment's text (build_cues estimates its words).
        elif not any(s.words or s.text.strip() for t in results for s in t.segments):
            hint = _other_streams_hint(audio.info, self.spec.transcription.audio_stream)
            self._warn(item)(f"{path}: no speech found; the subtitles are empty{hint}")
        return results

    def write(self, plan: Plan, transcripts: list[Transcript], outcome: Outcome) -> None:
        """Write the outputs; recorded: with their manifest entries pending first and complete
        after, so a run killed in between leaves files the next one knows are its own (and redoes)."""
        with self.timed(outcome, Stage.WRITE):
            language = None
            if self.spec.output.naming.per_track:  # recorded: the names depend on it
                language = transcripts[0].language or "und"
                if self.named_by_language:  # now that it is heard
                    plan.targets = self.targets(plan.input, language)
            self._refuse_taken(plan.input, plan.targets)
            path, targets = plan.input.path, plan.targets
            if self.spec.output.record:
                # A file in the way is ours if the manifest says so when we look, after seeing the
                # file: another run writing here records its entry before its file.
                self.check_targets(path, targets, is_ours=lambda t: manifest.entry_for(t) is not None)
                for target in (t for t in targets if manifest.entry_for(t) is not None):
                    remove_leftovers(target)  # a killed run's temporary files
                assert plan.file_hash is not None

                def entries(pending: bool) -> dict[Path, manifest.Entry | None]:
                    return {t: manifest.Entry(manifest.source_path(t, path), plan.file_hash or "",
                                              plan.settings, pending, plan.summary, language)
                            for t in targets}

                manifest.update(entries(pending=True))
                self._write_files(plan, transcripts, outcome, replace=True)
                manifest.update(entries(pending=False))
            else:
                self.check_targets(path, targets)
                self._write_files(plan, transcripts, outcome, replace=self.spec.output.overwrite)
            outcome.transcripts = transcripts
            outcome.language = transcripts[-1].language
            outcome.duration = outcome.duration or transcripts[-1].duration

    def _write_files(self, plan: Plan, transcripts: list[Transcript], outcome: Outcome,
                     replace: bool) -> None:
        render = self.spec.render
        n = len(render.formats)
        # Each track its own files when the names tell them apart; else the last track's.
        tracks = transcripts if self.spec.output.naming.per_track else transcripts[-1:]
        files = plan.targets[: n * len(tracks)]
        for k, transcript in enumerate(tracks):
            write_outputs(transcript, zip(render.formats, files[k * n:(k + 1) * n], strict=True),
                          render.profile, render.style)
        outcome.outputs = list(files)
        if render.video:
            stage = Stage.BURN if render.video.mode == "burn" else Stage.MUX
            titles = [self.spec.output.naming.title(_track_language(t), _task(t), self.model_label)
                      for t in transcripts]
            outcome.video = write_video(plan.input.path, transcripts, plan.targets[-1], render, replace,
                                        self.events.report(plan.input, stage), self._warn(plan.input),
                                        titles)
            outcome.outputs.append(outcome.video)

    # -- telling it ---------------------------------------------------------------------

    def finish(self, outcome: Outcome) -> Outcome:
        outcome.error = outcome.input.told(outcome.error) if outcome.error else None
        self.events(Finished(outcome))
        return outcome

    def _warn(self, item: Input | None) -> Any:
        return lambda message: self.events(Warned(item, message))

    @contextlib.contextmanager
    def timed(self, outcome: Outcome | None, stage: Stage | str) -> Iterator[None]:
        """Time a stage: told as it starts and ends; its seconds, and when it ran (from the start
        of the run), kept in the outcome for the report."""
        item = outcome.input if outcome is not None else None
        if isinstance(stage, Stage):
            self.events(StageStarted(item, stage))
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            if outcome is not None:
                outcome.timings[str(stage)] = end - start
                outcome.spans[str(stage)] = (round(start - self.t0, 4), round(end - self.t0, 4))
            if isinstance(stage, Stage):
                self.events(StageEnded(item, stage, end - start))


class _Slot:
    """An engine, loaded once and shared by the jobs (and threads) that hold the slot."""

    def __init__(self, engine: Backend | None = None) -> None:
        self.engine = engine
        # A batch's engine threads may all ask for the engine first thing: it must load once.
        self.lock = threading.Lock()


def hear_pieces(engine: Backend, audio: Audio, options: DecodeOptions, report: Report,
                prepared: Any = None) -> Transcript:
    """`engine`'s transcript of `audio`, heard a piece at a time (Audio.pieces: one for most
    inputs), each piece read when its turn comes and let go after: a long input never sits whole
    in memory, in the engine or here. Its times are on the audio's clock."""
    pieces = audio.pieces
    if len(pieces) == 1:
        return engine.transcribe(audio.samples, options, report, prepared)
    read = ((start / SAMPLE_RATE, audio.read(start, end)) for start, end in pieces)  # each when pulled
    heard = engine.transcribe_pieces(read, options, report, prepared)
    parts = [(start / SAMPLE_RATE, (end - start) / SAMPLE_RATE, t)
             for (start, end), t in zip(pieces, heard, strict=True)]
    return stitch(parts, audio.duration)


def decode_input(path: Path, stream: int, report: Any = None, warn: Any = None) -> Audio:
    """The input's audio; a file without sound is a normal case (no samples, no cues), a file
    that decodes only in part is told (`warn`)."""
    try:
        audio = decode_audio(path, stream, report.progress_of if report is not None else None)
    except NoAudioStream:
        info = probe(path)
        if info.audio:
            raise  # not the stream asked for: a mistake to report
        # A video without sound is a normal case, like one without speech: no samples, no cues.
        return Audio(Pcm(), 0.0, info, None)
    expected = audio.expected_duration
    # A truncated or damaged file decodes without an error up to where it breaks: say so.
    if expected and audio.duration < expected - 1.0 and warn is not None:
        warn(f"{path}: only {audio.duration:.1f} s of its {expected:.1f} s of audio could be "
             "decoded (truncated or damaged?); subtitling what was read")
    return audio


def input_source(path: Path, audio: Audio, stream: int) -> Source:
    """What belongs to the file, not to its audio (two files can share a transcript): its name,
    the audio's offset from the picture, the picture's size, the file's duration."""
    info = audio.info
    return Source(input=path.name, audio_stream=stream, offset=audio.offset,
                  media_duration=info.duration or None,  # the container's: cues may not pass it
                  width=info.video.width if info.video else None,
                  height=info.video.height if info.video else None,
                  video_duration=info.duration if info.video else None,
                  frame_rate=info.video.frame_rate if info.video else None)


def place(transcript: Transcript, source: Source) -> Transcript:
    """A transcript on its audio's own clock made the file's: its source facts set, its times
    moved by the audio's offset onto the picture's clock."""
    placed = transcript.shifted(source.offset) if source.offset else dataclasses.replace(transcript)
    task = transcript.source.task if transcript.source else None
    placed.source = dataclasses.replace(source, task=task or source.task)
    return placed


def _task(transcript: Transcript) -> str:
    return (transcript.source.task if transcript.source else None) or "transcribe"


def _track_language(transcript: Transcript) -> str | None:
    """A track's language: a translation's is English, whatever was spoken."""
    return "en" if _task(transcript) == "translate" else transcript.language


def _other_streams_hint(info: MediaInfo, chosen: int) -> str:
    """When the chosen audio stream had no speech, which others have sound (another language, a
    commentary track, a camera's silent first track)."""
    others = audible_streams(info, chosen) if len(info.audio) > 1 else []
    if not others:
        return ""
    names = ", ".join(str(n) for n in others)
    return (f" (audio stream {chosen} is used; stream{'s' if len(others) > 1 else ''} {names} "
            f"ha{'ve' if len(others) > 1 else 's'} sound: try --audio-stream {others[0]})")


def _without_path(message: str, path: Path) -> str:
    """An error's message without the path it starts with, to be told again under another name."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def single_input(path: str | Path) -> Input:
    """An Input for a file named directly (the Python API, a server's upload)."""
    path = Path(path)
    return Input(path, PurePosixPath(path.name))
