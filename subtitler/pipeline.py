"""The whole job, callable from Python: media -> audio -> transcript -> cues -> files.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])

For many files, make one `Subtitler` and call it per file: the model loads
once, on the first file that needs it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import manifest
from .backends import Backend, get_backend_class, load_backend
from .cache import digest
from .cleanup import collapse_repetitions
from .cues import build_cues
from .errors import NoAudioStream, OutputError, OutputExists
from .files import atomic_write, remove_leftovers, sha256
from .formats import get_format
from .languages import language_code
from .media import SAMPLE_RATE, Audio, MediaInfo, audible_streams, decode_audio, probe
from .options import DecodeOptions
from .profiles import Profile
from .style import Style
from .transcript import Transcript
from .video import SubtitleTrack, burn, check_can_write, default_output, mux, mux_format

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


def output_paths(path: Path, formats: Sequence[str], output_dir: Path | None = None) -> list[Path]:
    """Where each format's file goes: beside the input, or in `output_dir`."""
    folder = output_dir if output_dir is not None else path.parent
    return [folder / (path.stem + get_format(f).extension) for f in formats]


def is_transcript_file(path: Path) -> bool:
    return path.suffix.lower() == ".json"


@dataclass
class VideoSettings:
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
    extra_tracks: Sequence[SubtitleTrack] = ()


@dataclass
class Subtitler:
    """A configured pipeline; the backend loads lazily, once, and is reused."""

    backend: str = "auto"
    model: str | None = None
    options: DecodeOptions = field(default_factory=DecodeOptions)
    formats: Sequence[str] = ("srt",)
    # Outputs go here instead of beside each input (a str is taken too).
    output_dir: Path | None = None
    overwrite: bool = False
    audio_stream: int = 0
    device: str = "auto"
    compute_type: str = "auto"
    threads: int | None = None
    # Overall deadline per file in seconds, for backends that wait on a service.
    timeout: float | None = None
    # Cue layout rules; None: netflix, or cjk for Chinese, Japanese and Korean.
    profile: Profile | None = None
    style: Style = field(default_factory=Style)
    video: VideoSettings | None = None
    # Called with warnings meant for the user (no speech found, missing glyphs...).
    warn: Callable[[str], None] = field(default=lambda message: warnings.warn(message, stacklevel=3))
    # Record each output in its folder's .subtitler.json manifest (subtitle()), as a run of the
    # command does: a later call or run then replaces these files as its own. False writes no
    # manifest, and an existing output is then refused unless `overwrite`.
    record: bool = True
    _engine: Backend | None = field(default=None, init=False, repr=False)
    # A batch's engine threads may all ask for the engine first thing: it must load once.
    _engine_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for f in self.formats:
            get_format(f)  # fail on a bad format before any work
        if self.output_dir is not None:
            self.output_dir = Path(self.output_dir)

    @property
    def engine(self) -> Backend:
        with self._engine_lock:
            return self._load_engine()

    def _load_engine(self) -> Backend:
        if self._engine is None:
            # timeout only when given: plugins written before it existed keep working.
            extra = {"timeout": self.timeout} if self.timeout is not None else {}
            self._engine = load_backend(self.backend, self.model, device=self.device,
                                        compute_type=self.compute_type, threads=self.threads, **extra)
        return self._engine

    def transcribe(self, path: str | Path, on_progress: OnProgress | None = None) -> Transcript:
        """Transcribe a media file; times are on the picture's clock."""
        path = Path(path)
        self.check_options([self.options])
        return self.transcribe_audio(path, self.decode(path, on_progress), [self.options], on_progress)[0]

    def transcription_settings(self) -> dict[str, object]:
        """What shapes the transcripts (a cache key): as configured, so nothing is loaded to know it."""
        return {"backend": self.backend, "model": self.model, "compute_type": self.compute_type,
                "audio_stream": self.audio_stream, "tasks": [t.to_dict() for t in self.tasks()]}

    def render_settings(self) -> dict[str, object]:
        """What shapes the files made from the transcripts."""
        video = None
        if self.video:
            video = {**dataclasses.asdict(self.video),
                     "extra_tracks": [[str(t.path), t.language] for t in self.video.extra_tracks]}
        return {"formats": list(self.formats), "style": dataclasses.asdict(self.style), "video": video,
                "profile": dataclasses.asdict(self.profile) if self.profile else None}

    def settings_summary(self) -> dict[str, dict[str, object]]:
        """Everything that shapes the outputs, as the manifest records it."""
        return {"transcription": self.transcription_settings(), "render": self.render_settings()}

    def tasks(self) -> list[DecodeOptions]:
        """The engine runs per input: one, or two when a translation is muxed beside the original."""
        if self.video and self.video.mode == "mux" and self.options.task == "translate":
            if self.options.language and language_code(self.options.language) == "en":
                return [dataclasses.replace(self.options, task="transcribe")]  # one English track
            return [dataclasses.replace(self.options, task="transcribe"), self.options]
        return [self.options]

    def check_options(self, tasks: list[DecodeOptions]) -> None:
        """Refuse options the engine would ignore, before any work (no model is loaded for it)."""
        backend_class = type(self._engine) if self._engine else get_backend_class(self.backend)
        for options in tasks:
            backend_class.check_options(options)

    def decode(self, path: Path, on_progress: OnProgress | None = None) -> Audio:
        decoding = (lambda done, total: on_progress("decode", done, total)) if on_progress else None
        try:
            audio = decode_audio(path, self.audio_stream, decoding)
        except NoAudioStream:
            info = probe(path)
            if info.audio:
                raise  # not the stream asked for: a mistake to report
            # A video without sound is a normal case, like one without speech: no samples, no cues.
            return Audio(np.zeros(0, np.float32), 0.0, info, None)
        expected = audio.expected_duration
        # A truncated or damaged file decodes without an error up to where it breaks: say so.
        if expected and audio.duration < expected - 1.0:
            self.warn(f"{path}: only {audio.duration:.1f} s of its {expected:.1f} s of audio could be "
                      "decoded (truncated or damaged?); subtitling what was read")
        return audio

    def transcribe_audio(self, path: Path, audio: Audio, tasks: list[DecodeOptions],
                         on_progress: OnProgress | None = None) -> list[Transcript]:
        """Run the engine once per set of options on decoded audio; times on the picture's clock."""
        facts = input_facts(path, audio, self.audio_stream)
        return [place(t, facts) for t in self.hear(path, audio, tasks, on_progress)]

    def hear(self, path: Path, audio: Audio, tasks: list[DecodeOptions],
             on_progress: OnProgress | None = None) -> list[Transcript]:
        """Run the engine once per set of options on decoded audio: times on the audio's own clock,
        nothing of the file it came from (what the cache keeps: `place` makes them the file's)."""
        results = []
        for options in tasks:
            if options.task == "translate" and any(t.language == "en" for t in results):
                continue  # English speech: its transcript is the English track already, not a second one
            stage = "translate" if options.task == "translate" else "transcribe"
            report = (lambda s, stage=stage: on_progress(stage, s, audio.duration)) if on_progress else None
            if not len(audio.samples):  # no audio stream: nothing for the engine
                transcript = Transcript(None, 0.0, meta={"options": options.to_dict()})
            else:
                if on_progress and options.vad and "vad" in type(self.engine).supported_options:
                    # Voice activity detection runs inside the engine first: shown until its first
                    # progress.
                    on_progress("vad", 0.0, audio.duration)
                # Repetition loops are Whisper's classic failure: collapse them whatever the engine.
                transcript = collapse_repetitions(self.engine.transcribe(audio.samples, options, report))
            removed = transcript.meta.get("repetitions_removed")
            if removed:
                self.warn(f"{path}: removed a repetition loop ({removed['words']} words, "
                          f"{removed['segments']} repeated segments)")
            transcript.duration = len(audio.samples) / SAMPLE_RATE
            results.append(transcript)
        if audio.stream is None:
            self.warn(f"{path}: no audio stream; the subtitles are empty")
        # What becomes cues: words, or a segment's text (build_cues estimates its words).
        elif not any(s.words or s.text.strip() for t in results for s in t.segments):
            hint = _other_streams_hint(audio.info, self.audio_stream)
            self.warn(f"{path}: no speech found; the subtitles are empty{hint}")
        return results

    def video_output(self, path: Path, folder: Path | None = None) -> Path:
        """clip.mp4 -> clip.subtitled.mp4 (or .mkv...), in the output folder or beside the input."""
        assert self.video is not None
        target = default_output(path).with_suffix(self.video.container or path.suffix)
        folder = folder if folder is not None else self.output_dir
        return (folder / target.name) if folder is not None else target

    def targets(self, path: Path, folder: Path | None = None) -> list[Path]:
        """Every file subtitling `path` writes: the subtitle files, then the video if asked.

        `folder` overrides the output folder (a batch mirrors the input tree in it).
        """
        outputs = output_paths(path, self.formats, folder if folder is not None else self.output_dir)
        if self.video:
            if is_transcript_file(path):
                raise OutputError(f"{path}: --{self.video.mode} needs the video, not a transcript")
            outputs.append(self.video_output(path, folder))
        return outputs

    def check_video(self, path: Path, target: Path) -> None:
        """Refuse a video --mux/--burn cannot make of `path` (see video.check_can_write): from its
        probe, before any decoding or transcribing."""
        if self.video is None or is_transcript_file(path):
            return
        v = self.video
        check_can_write(probe(path), target, v.mode, encoder=v.encoder, crf=v.crf, preset=v.preset,
                        font=self.style.font)

    def check_targets(self, path: Path, targets: list[Path], replaceable: Iterable[Path] = ()) -> None:
        """Refuse to overwrite the input, or an existing file unless --overwrite or `replaceable`."""
        mine = {p.resolve() for p in replaceable}
        for target in targets:
            if target.resolve() == path.resolve():
                raise OutputError(f"{target}: output would overwrite the input")
            if target.exists() and not self.overwrite and target.resolve() not in mine:
                raise OutputExists(f"{target}: already exists (use --overwrite to replace it)")

    def subtitle(self, path: str | Path, on_progress: OnProgress | None = None) -> Result:
        """Write subtitle files (and the subtitled video, if asked) for one input.

        The input is media, or a saved transcript .json (then no engine runs).
        With `record` the outputs are recorded in the manifest, so calling it
        again replaces them.
        """
        path = Path(path)
        targets = self.targets(path)
        self.check_targets(path, targets, self.recorded(targets) if self.record else ())
        self.check_video(path, targets[-1])
        if is_transcript_file(path) and path.is_file():
            transcripts = [Transcript.load(path)]
        else:
            tasks = self.tasks()
            self.check_options(tasks)
            transcripts = self.transcribe_audio(path, self.decode(path, on_progress), tasks, on_progress)
        if not self.record:
            return self.write(path, transcripts, targets, on_progress)
        return self.write_recorded(path, transcripts, targets, sha256(path), on_progress)

    @staticmethod
    def recorded(targets: Iterable[Path]) -> list[Path]:
        """The targets a manifest says subtitler made: its own to replace."""
        return [t for t in targets if manifest.entry_for(t) is not None]

    def write_recorded(self, path: Path, transcripts: list[Transcript], targets: list[Path],
                       source_sha256: str, on_progress: OnProgress | None = None,
                       summary: dict[str, dict[str, object]] | None = None) -> Result:
        """`write`, with each output's manifest entry pending first and complete after: a run
        killed in between leaves files the next one knows are its own (and redoes).

        `source_sha256` is the input's; `summary` the settings_summary(), when known already.
        """
        ours = self.recorded(targets)
        self.check_targets(path, targets, replaceable=ours)
        for target in ours:
            remove_leftovers(target)  # a killed run's temporary files
        summary = summary or self.settings_summary()
        settings = settings_digest(summary)

        def entries(pending: bool) -> dict[Path, manifest.Entry | None]:
            return {t: manifest.Entry(manifest.source_path(t, path), source_sha256, settings, pending,
                                      summary) for t in targets}

        manifest.update(entries(pending=True))
        result = self.write(path, transcripts, targets, on_progress, replace=True)
        manifest.update(entries(pending=False))
        return result

    def write(self, path: Path, transcripts: list[Transcript], targets: list[Path],
              on_progress: OnProgress | None = None, replace: bool = False) -> Result:
        """Write the subtitle files (and the video) from finished transcripts.

        `replace`: the targets were checked (check_targets) and may be replaced.
        """
        files = targets[: len(self.formats)]
        transcript = transcripts[-1]
        write_outputs(transcript, zip(self.formats, files, strict=True), self.profile, self.style)
        video = None
        if self.video:
            video = self._write_video(path, transcripts, targets[-1], on_progress, replace or self.overwrite)
        return Result(path, files, transcript, video)

    def _write_video(self, path: Path, transcripts: list[Transcript], target: Path,
                     on_progress: OnProgress | None, overwrite: bool) -> Path:
        assert self.video is not None
        settings = self.video
        report = (lambda done, total: on_progress(settings.mode, done, total)) if on_progress else None
        with tempfile.TemporaryDirectory(prefix="subtitler-") as folder:
            if settings.mode == "burn":
                subs = Path(folder) / "subtitles.ass"
                write_outputs(transcripts[-1], [("ass", subs)], self.profile, self.style)
                return burn(path, subs, target, style=self.style, encoder=settings.encoder,
                            crf=settings.crf, preset=settings.preset, overwrite=overwrite,
                            on_progress=report, warn=self.warn)
            fmt = mux_format(target, self.formats)
            tracks = []
            for n, t in enumerate(transcripts):
                language = "en" if t.meta.get("options", {}).get("task") == "translate" else t.language
                subs = Path(folder) / f"track{n}.{fmt}"
                write_outputs(t, [(fmt, subs)], self.profile, self.style)
                tracks.append(SubtitleTrack(subs, language, default=settings.default_track and n == 0))
            return mux(path, [*tracks, *settings.extra_tracks], target, overwrite=overwrite,
                       on_progress=report)


def _other_streams_hint(info: MediaInfo, chosen: int) -> str:
    """When the chosen audio stream had no speech, which others have sound (another language, a
    commentary track, a camera's silent first track)."""
    others = audible_streams(info, chosen) if len(info.audio) > 1 else []
    if not others:
        return ""
    names = ", ".join(str(n) for n in others)
    return (f" (audio stream {chosen} is used; stream{'s' if len(others) > 1 else ''} {names} "
            f"ha{'ve' if len(others) > 1 else 's'} sound: try --audio-stream {others[0]})")


def settings_digest(summary: dict[str, dict[str, object]]) -> str:
    """The settings as a manifest entry records them (check --require-subs compares with it)."""
    return digest([summary["transcription"], summary["render"]])


def input_facts(path: Path, audio: Audio, stream: int) -> dict[str, object]:
    """What belongs to the file, not to its audio (two files can share a transcript): its name,
    the audio's offset from the picture, the picture's size, the file's duration."""
    facts: dict[str, object] = {"input": path.name, "audio_stream": stream, "offset": audio.offset}
    info = audio.info
    if info.duration:  # the container's: decoded audio can run past it (AAC padding); cues may not
        facts["media_duration"] = info.duration
    if info.video:  # the picture size sizes ASS styles and burn-in
        facts["video"] = {"width": info.video.width, "height": info.video.height, "duration": info.duration}
    return facts


def place(transcript: Transcript, facts: dict[str, object]) -> Transcript:
    """A transcript on its audio's own clock made the file's: its facts in meta, its times moved
    by the audio's offset onto the picture's clock."""
    offset = float(facts.get("offset") or 0.0)  # type: ignore[arg-type]
    placed = transcript.shifted(offset) if offset else dataclasses.replace(transcript)
    placed.meta = {**transcript.meta, **facts}
    return placed


def write_outputs(transcript: Transcript, targets: Iterable[tuple[str, Path]],
                  profile: Profile | None = None, style: Style | None = None) -> None:
    """Lay out cues once and write each (format, path) atomically."""
    cues = build_cues(transcript, profile)
    for fmt, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            text = get_format(fmt).dumps(transcript, cues, style)
            # An input name that is not UTF-8 (the JSON's meta "input") as JSON's \udce9 escape.
            atomic_write(target, text.encode("utf-8", "backslashreplace"))
        except OSError as e:
            raise OutputError(f"{target}: cannot write ({e.strerror or e})") from None


def subtitle(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Result:
    """Subtitle one file; `settings` are `Subtitler`'s fields (backend, model, formats...)."""
    return Subtitler(**settings).subtitle(path, on_progress)  # type: ignore[arg-type]


def transcribe(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Transcript:
    """Transcribe one media file into a Transcript."""
    return Subtitler(**settings).transcribe(path, on_progress)  # type: ignore[arg-type]
