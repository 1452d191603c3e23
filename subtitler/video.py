"""Subtitles into the video: soft tracks (mux, nothing re-encoded) or burned into the picture.

Every ffmpeg run writes to a temporary file beside the output and renames it
only when ffmpeg succeeded; on failure or Ctrl-C the temporary file is removed
and the input is never touched. No shell is involved: ffmpeg gets an argument
list, and burn-in side-steps filter escaping by reading the subtitles from a
file with a plain name in a private temporary folder.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pysubs2

from . import process
from .cues import Cue
from .errors import OutputError, OutputExists, VideoError
from .files import atomic_path
from .formats import ASS
from .languages import LANGUAGES, iso639_2, language_code
from .media import MediaInfo, VideoStream, ffmpeg_path, find_tools, probe
from .mp4 import set_subtitles_enabled
from .style import Style
from .transcript import Source, Transcript

# Text subtitle codec each container takes (MKV: srt, or ass to keep styling).
_CONTAINER_CODEC = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".mkv": "srt",
                    ".webm": "webvtt"}
# Text subtitle codecs ffmpeg can convert between.
_TEXT_CODECS = {"mov_text", "srt", "subrip", "ass", "ssa", "webvtt", "text"}
_WEBM_VIDEO = {"vp8", "vp9", "av1"}
_WEBM_AUDIO = {"opus", "vorbis"}

# Called with (seconds done, seconds in all).
OnProgress = Callable[[float, float], None]


@dataclass(frozen=True)
class SubtitleTrack:
    path: Path  # an SRT, WebVTT or ASS file
    language: str | None = None  # code or name; tagged as ISO 639-2 ("eng")
    title: str | None = None
    default: bool = False


def default_output(video: Path) -> Path:
    """clip.mp4 -> clip.subtitled.mp4, beside the input."""
    return video.with_name(f"{video.stem}.subtitled{video.suffix}")


def _check_output(video: Path, output: Path, overwrite: bool) -> None:
    if output.resolve() == video.resolve():
        raise OutputError(f"{output}: output would overwrite the input")
    if output.exists() and not overwrite:
        raise OutputExists(f"{output}: already exists (use --overwrite to replace it)")
    if not output.parent.is_dir():
        raise OutputError(f"{output}: cannot write (no such folder {output.parent})")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"{output}: cannot write (folder {output.parent} is not writable)")


def run_ffmpeg(args: Sequence[str], output: Path, duration: float | None,
               on_progress: OnProgress | None = None, finish: Callable[[Path], None] | None = None) -> None:
    """Run ffmpeg with `args` (inputs and options) writing `output` atomically, reporting progress;
    `finish` gets the written file before it takes the output's name."""
    try:
        with atomic_path(output) as tmp:
            detail = _ffmpeg(args, tmp, duration, on_progress)
            if detail is not None:
                raise VideoError(f"{output}: ffmpeg failed ({detail})")
            if finish is not None:
                finish(tmp)
    except OSError as e:
        raise OutputError(f"{output}: cannot write ({e.strerror or e})") from None


def _ffmpeg(args: Sequence[str], target: Path, duration: float | None,
            on_progress: OnProgress | None) -> str | None:
    """Run ffmpeg writing `target`; None on success, else the last line of its errors."""
    cmd = [find_tools().ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-progress", "pipe:1", "-nostats", *args, ffmpeg_path(target)]
    with tempfile.TemporaryFile() as errors:
        proc = process.popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
                             text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # "key=value" lines; out_time_us is the position written
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and on_progress and value.lstrip("-").isdigit():
                    on_progress(max(0, int(value)) / 1e6, duration or 0.0)
            proc.wait()
        finally:
            if proc.poll() is None:  # Ctrl-C or an error here: stop ffmpeg before cleaning up
                proc.kill()
                proc.wait()
        if proc.returncode == 0:
            return None
        errors.seek(0)
        lines = [s.strip() for s in errors.read().decode("utf-8", "replace").splitlines() if s.strip()]
        return lines[-1] if lines else f"exit status {proc.returncode}"


def mux(video: Path, tracks: Sequence[SubtitleTrack], output: Path | None = None, *,
        overwrite: bool = False, on_progress: OnProgress | None = None) -> Path:
    """Add subtitle tracks to `video` without re-encoding; every existing stream is copied."""
    video = Path(video)
    info = probe(video)
    output = Path(output) if output else default_output(video)
    _check_output(video, output, overwrite)
    check_can_write(info, output, "mux")
    ext = output.suffix.lower()
    codec = _CONTAINER_CODEC[ext]
    existing = info.subtitles
    args: list[str] = ["-i", ffmpeg_path(video)]
    for t in tracks:
        args += _track_input(t)
    args += ["-map", "0:v?", "-map", "0:a?", "-map", "0:s?"]
    if ext == ".mkv":
        args += ["-map", "0:t?"]  # attachments (fonts for ASS tracks)
    for n in range(len(tracks)):
        args += ["-map", f"{n + 1}:0"]
    args += ["-c", "copy"]
    for k, old in enumerate(existing):  # keep old tracks; convert text ones the container can't hold
        if ext != ".mkv" and old != codec:  # check_can_write refused those it cannot convert
            args += [f"-c:s:{k}", codec]
        elif ext == ".mkv" and old == "mov_text":
            args += [f"-c:s:{k}", "srt"]
    for n, t in enumerate(tracks):
        index = len(existing) + n
        track_codec = "ass" if ext == ".mkv" and t.path.suffix.lower() in (".ass", ".ssa") else codec
        lang = language_code(t.language) if t.language else None
        title = t.title or _default_title(lang)
        args += [f"-c:s:{index}", track_codec,
                 f"-metadata:s:s:{index}", f"language={iso639_2(lang)}",
                 f"-metadata:s:s:{index}", f"title={title}",
                 f"-disposition:s:{index}", "default" if t.default else "0"]
        if ext in (".mp4", ".m4v", ".mov"):  # MP4 has no title tag: players show the handler name
            args += [f"-metadata:s:s:{index}", f"handler_name={title}"]
    finish = None
    if ext in (".mp4", ".m4v", ".mov"):
        args += ["-movflags", "+faststart"]
        # ffmpeg enables (makes default) the first subtitle track when none is: as in MKV, a new
        # track is the default only when asked.
        finish = functools.partial(set_subtitles_enabled, enabled=[t.default for t in tracks])
    run_ffmpeg(args, output, info.duration, on_progress, finish)
    return output


def check_can_write(info: MediaInfo, output: Path, mode: str, *, encoder: str = "libx264",
                    crf: int | None = 23, preset: str | None = "medium", font: str | None = None) -> None:
    """Refuse, from the probe alone, a video `mode` ("mux" or "burn") cannot make: the input has no
    picture, the container cannot take its streams, or (burn) the encoder, its preset or `font` is
    not there. Quick (ffmpeg encodes one tiny frame, once per setting), so it runs before any
    transcribing, and a refused input leaves nothing behind."""
    ext = output.suffix.lower()
    if info.video is None:
        into = "burn subtitles into" if mode == "burn" else "add subtitle tracks to"
        raise VideoError(f"{info.path}: no video stream to {into} (write subtitle files only)")
    audio_codecs = {a.codec for a in info.audio}
    if mode == "mux":
        if ext not in _CONTAINER_CODEC:
            raise VideoError(f"{output}: cannot carry soft subtitles in {ext or 'this'} files; "
                             "use .mkv, .mp4, .mov or .webm")
        if ext == ".webm" and (info.video.codec not in _WEBM_VIDEO or audio_codecs - _WEBM_AUDIO):
            raise VideoError(f"{output}: WebM takes only VP8/VP9/AV1 video and Opus/Vorbis audio; "
                             f"{info.path} has {info.video.codec} and "
                             f"{', '.join(sorted(audio_codecs)) or 'no audio'}: write .mkv instead")
        for k, old in enumerate(info.subtitles):  # kept tracks are converted to the container's codec
            if ext != ".mkv" and old != _CONTAINER_CODEC[ext] and old not in _TEXT_CODECS:
                raise VideoError(f"{output}: existing subtitle track {k} ({old}) of {info.path} cannot "
                                 f"go into {ext}: write .mkv instead")
        return
    if ext == ".webm" and audio_codecs - _WEBM_AUDIO:  # burn copies the audio as it is
        raise VideoError(f"{output}: WebM takes only Opus/Vorbis audio; {info.path} has "
                         f"{', '.join(sorted(audio_codecs))}, which burning copies: write .mkv or .mp4")
    problem = _encoder_problem(encoder, crf, preset, ext)
    if problem:
        raise VideoError(f"{info.path}: cannot burn into {ext or 'this'} files with --encoder {encoder}"
                         f"{f' --preset {preset}' if _takes_preset(encoder) and preset else ''} ({problem})")
    if font and not font_installed(font):
        raise VideoError(f"{info.path}: font {font!r} is not installed (libass would silently draw "
                         "another one): install it, or pick one of `fc-list : family`")


def _takes_preset(encoder: str) -> bool:
    return encoder.startswith("libx26")  # x264/x265 speed presets


def _encoder_args(encoder: str, crf: int | None, preset: str | None) -> list[str]:
    args = ["-c:v", encoder]
    if crf is not None:
        args += ["-crf", str(crf)]
    if preset and _takes_preset(encoder):
        args += ["-preset", preset]
    return args


@functools.lru_cache(maxsize=32)
def _encoder_problem(encoder: str, crf: int | None, preset: str | None, ext: str) -> str | None:
    """None if ffmpeg encodes a frame with these settings into a file of type `ext`, else why not.

    A real trial, so every encoder, option and container ffmpeg knows is judged as it will be."""
    with tempfile.TemporaryDirectory(prefix="subtitler-") as folder:
        cmd = [find_tools().ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
               "-i", "color=size=64x64:rate=25:duration=0.04", "-frames:v", "1",
               *_encoder_args(encoder, crf, preset), str(Path(folder) / f"trial{ext}")]
        try:
            proc = process.run(cmd, text=True, errors="replace", timeout=60)
        except subprocess.TimeoutExpired:
            return None  # a slow encoder, not a refusal: the real run will tell
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    # The first line is the cause ("Unknown encoder", "invalid preset"); later ones are consequences.
    first = lines[0] if lines else f"exit status {proc.returncode}"
    return re.sub(r"^\[[\w-]+ @ 0x[0-9a-f]+\] ", "", first)


@functools.lru_cache(maxsize=32)
def font_installed(font: str) -> bool:
    """Whether fontconfig (which libass uses) has `font` as a family, full or PostScript name;
    True when it cannot tell (no fc-list)."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return True
    name = re.sub(r"([\\:,=-])", r"\\\1", font)  # fontconfig pattern syntax
    for key in ("family", "fullname", "postscriptname"):
        out = subprocess.run([fc_list, f":{key}={name}", "family"], capture_output=True, text=True)
        if out.stdout.strip():
            return True
    return False


# ffmpeg reads no subtitle file without cues (media without speech: an empty SRT); an empty
# WebVTT given inline makes an empty track instead.
_EMPTY_TRACK = ["-f", "webvtt", "-i", "data:text/vtt;base64," + base64.b64encode(b"WEBVTT\n\n").decode()]


def _track_input(track: SubtitleTrack) -> list[str]:
    """ffmpeg's input arguments for a subtitle file: the file, or an empty track when it has no text."""
    try:
        empty = not Path(track.path).read_bytes().lstrip(b"\xef\xbb\xbf").strip()
    except OSError:
        empty = False  # ffmpeg names the problem
    return _EMPTY_TRACK if empty else ["-i", ffmpeg_path(track.path)]


def mux_format(output: Path, formats: Sequence[str] = ()) -> str:
    """The subtitle file format to feed the muxer for this output container."""
    ext = output.suffix.lower()
    if ext == ".webm":
        return "vtt"
    if ext == ".mkv" and "ass" in formats:
        return "ass"  # MKV keeps ASS styling
    return "srt"


def _default_title(code: str | None) -> str:
    return LANGUAGES.get(code or "", "Subtitles").title()


def _styled_ass(subs: pysubs2.SSAFile, suffix: str, video: VideoStream, style: Style) -> str:
    """The subtitles as ASS sized to the video: our style for SRT/VTT, an ASS file's own styles kept."""
    if suffix.lower() in (".ass", ".ssa"):
        return subs.to_string("ass")
    cues = [Cue(e.start / 1000, e.end / 1000, e.plaintext) for e in subs if not e.is_comment]
    source = Source(width=video.width, height=video.height)
    return ASS().dumps(Transcript(None, 0.0, [], source=source), cues, style)


def missing_glyphs(text: str, limit: int = 200) -> list[str]:
    """Characters of `text` that no installed font can draw (libass would show boxes)."""
    fc_list = shutil.which("fc-list")
    chars = sorted({c for c in text if not c.isspace() and ord(c) > 0x7E})[:limit]
    if not fc_list or not chars:
        return []

    def covered(cs: Sequence[str]) -> bool:
        pattern = ":charset=" + " ".join(f"{ord(c):x}" for c in cs)
        out = subprocess.run([fc_list, pattern, "family"], capture_output=True, text=True)
        return bool(out.stdout.strip())

    if covered(chars):
        return []
    return [c for c in chars if not covered([c])]


def burn(video: Path, subtitles: Path, output: Path | None = None, *, style: Style | None = None,
         encoder: str = "libx264", crf: int | None = 23, preset: str | None = "medium",
         overwrite: bool = False, on_progress: OnProgress | None = None,
         warn: Callable[[str], None] | None = None) -> Path:
    """Draw `subtitles` into the picture with libass; the video is re-encoded, audio copied."""
    video = Path(video)
    info = probe(video)
    output = Path(output) if output else default_output(video)
    _check_output(video, output, overwrite)
    own_styles = Path(subtitles).suffix.lower() in (".ass", ".ssa")  # its fonts are its own business
    check_can_write(info, output, "burn", encoder=encoder, crf=crf, preset=preset,
                    font=None if own_styles else (style or Style()).font)
    subs = pysubs2.load(str(subtitles), encoding="utf-8")
    ass_text = _styled_ass(subs, Path(subtitles).suffix, info.video, style or Style())
    if warn:
        missing = missing_glyphs("".join(e.plaintext for e in subs))
        if missing:
            warn(f"no installed font has {len(missing)} character(s) of these subtitles "
                 f"(e.g. {''.join(missing[:5])}): they will show as boxes; install a font that has "
                 "them (CJK: fonts-noto-cjk) and pass --font")
    with tempfile.TemporaryDirectory(prefix="subtitler-") as folder:
        # A plain name in a private folder: nothing in the filter argument needs escaping.
        ass_path = Path(folder) / "subtitles.ass"
        ass_path.write_text(ass_text, encoding="utf-8")
        args = ["-i", ffmpeg_path(video), "-map", "0:v:0", "-map", "0:a?",
                "-vf", f"ass={escape_filter_path(ass_path)}", *_encoder_args(encoder, crf, preset),
                "-c:a", "copy"]
        if output.suffix.lower() in (".mp4", ".m4v", ".mov"):
            args += ["-movflags", "+faststart"]
        run_ffmpeg(args, output, info.duration, on_progress)
    return output


def escape_filter_path(path: Path) -> str:
    r"""Escape a path for a filter argument: once for the option value, once for the filtergraph."""
    value = str(path)
    for ch in ("\\", "'", ":"):
        value = value.replace(ch, "\\" + ch)
    for ch in ("\\", "'", "[", "]", ",", ";"):
        value = value.replace(ch, "\\" + ch)
    return value
