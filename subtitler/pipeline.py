"""The whole job, callable from Python: media -> audio -> transcript -> cues -> files.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])

For many files, make one `Subtitler` and call it per file: the model loads
once, on the first file that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .backends import Backend, load_backend
from .cues import build_cues
from .errors import OutputError, OutputExists
from .files import atomic_write
from .formats import get_format
from .media import SAMPLE_RATE, decode_audio, probe
from .options import DecodeOptions
from .profiles import Profile
from .style import Style
from .transcript import Transcript

# Called with (stage, seconds done, seconds in all); stage is "decode" or "transcribe".
OnProgress = Callable[[str, float, float], None]


@dataclass
class Result:
    input: Path
    outputs: list[Path]
    transcript: Transcript


def output_paths(path: Path, formats: Sequence[str], output_dir: Path | None = None) -> list[Path]:
    """Where each format's file goes: beside the input, or in `output_dir`."""
    folder = output_dir if output_dir is not None else path.parent
    return [folder / (path.stem + get_format(f).extension) for f in formats]


def is_transcript_file(path: Path) -> bool:
    return path.suffix.lower() == ".json"


@dataclass
class Subtitler:
    """A configured pipeline; the backend loads lazily, once, and is reused."""

    backend: str = "auto"
    model: str | None = None
    options: DecodeOptions = field(default_factory=DecodeOptions)
    formats: Sequence[str] = ("srt",)
    output_dir: Path | None = None
    overwrite: bool = False
    audio_stream: int = 0
    device: str = "auto"
    compute_type: str = "auto"
    threads: int | None = None
    # Cue layout rules; None: netflix, or cjk for Chinese, Japanese and Korean.
    profile: Profile | None = None
    style: Style = field(default_factory=Style)
    _engine: Backend | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for f in self.formats:
            get_format(f)  # fail on a bad format before any work

    @property
    def engine(self) -> Backend:
        if self._engine is None:
            self._engine = load_backend(self.backend, self.model, device=self.device,
                                        compute_type=self.compute_type, threads=self.threads)
        return self._engine

    def transcribe(self, path: str | Path, on_progress: OnProgress | None = None) -> Transcript:
        """Transcribe a media file; times are on the picture's clock."""
        path = Path(path)
        info = probe(path)
        # The core enforces it, so no backend can silently drop an option.
        self.engine.check_options(self.options)
        total = info.duration or 0.0

        def report(stage: str) -> Callable[[float], None] | None:
            return (lambda s: on_progress(stage, s, total)) if on_progress else None

        audio = decode_audio(path, self.audio_stream, report("decode"), info)
        total = audio.duration
        transcript = self.engine.transcribe(audio.samples, self.options, report("transcribe"))
        transcript.duration = len(audio.samples) / SAMPLE_RATE
        transcript.meta.update({"input": path.name, "audio_stream": self.audio_stream,
                                "offset": audio.offset})
        if info.video:  # the picture size sizes ASS styles and burn-in later
            transcript.meta["video"] = {"width": info.video.width, "height": info.video.height,
                                        "duration": info.duration}
        return transcript.shifted(audio.offset) if audio.offset else transcript

    def subtitle(self, path: str | Path, on_progress: OnProgress | None = None) -> Result:
        """Write subtitle files for one input (media, or a saved transcript .json)."""
        path = Path(path)
        targets = output_paths(path, self.formats, self.output_dir)
        for target in targets:
            if target.resolve() == path.resolve():
                raise OutputError(f"{target}: output would overwrite the input")
        if not self.overwrite:
            existing = [str(t) for t in targets if t.exists()]
            if existing:
                raise OutputExists(f"{existing[0]}: already exists (use --overwrite to replace it)")
        if is_transcript_file(path) and path.is_file():
            transcript = Transcript.load(path)
        else:
            transcript = self.transcribe(path, on_progress)
        write_outputs(transcript, zip(self.formats, targets, strict=True), self.profile, self.style)
        return Result(path, targets, transcript)


def write_outputs(transcript: Transcript, targets: Iterable[tuple[str, Path]],
                  profile: Profile | None = None, style: Style | None = None) -> None:
    """Lay out cues once and write each (format, path) atomically."""
    cues = build_cues(transcript, profile)
    for fmt, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, get_format(fmt).dumps(transcript, cues, style).encode("utf-8"))
        except OSError as e:
            raise OutputError(f"{target}: cannot write ({e.strerror or e})") from None


def subtitle(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Result:
    """Subtitle one file; `settings` are `Subtitler`'s fields (backend, model, formats...)."""
    return Subtitler(**settings).subtitle(path, on_progress)  # type: ignore[arg-type]


def transcribe(path: str | Path, on_progress: OnProgress | None = None, **settings: object) -> Transcript:
    """Transcribe one media file into a Transcript."""
    return Subtitler(**settings).transcribe(path, on_progress)  # type: ignore[arg-type]
