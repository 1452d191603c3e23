"""Media in: find ffmpeg, probe an input, decode one audio stream to 16 kHz mono.

Audio is decoded through a pipe (no temporary WAV) in one-second chunks, so
progress can be reported while ffmpeg works. Times are kept relative to the
picture: when the audio stream starts later (or earlier) than the video
stream, `Audio.offset` says by how much, and the pipeline shifts the
transcript by it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ffmpeg  # ffmpeg-python: builds argument lists, never a shell string
import numpy as np

from . import process
from .errors import EmptyAudio, FFmpegNotFound, InputNotFound, NoAudioStream, NotMedia

# Whisper's input: 16 kHz mono.
SAMPLE_RATE = 16000
# Bytes of s16le mono per second of audio; the pipe is read a second at a time.
_BYTES_PER_SECOND = SAMPLE_RATE * 2


@dataclass(frozen=True)
class Tools:
    ffmpeg: str
    # None when only the imageio-ffmpeg wheel's binary is there (it has no ffprobe).
    ffprobe: str | None


@lru_cache(maxsize=1)
def find_tools() -> Tools:
    """Locate ffmpeg (PATH, then imageio-ffmpeg) and ffprobe (PATH only).

    SUBTITLER_FFMPEG / SUBTITLER_FFPROBE override the search; an empty
    SUBTITLER_FFPROBE forces the ffprobe-less fallback.
    """
    ffmpeg_bin = os.environ.get("SUBTITLER_FFMPEG") or shutil.which("ffmpeg")
    if not ffmpeg_bin:
        try:
            import imageio_ffmpeg

            ffmpeg_bin = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            raise FFmpegNotFound(
                "ffmpeg not found: install it (apt install ffmpeg) or pip install imageio-ffmpeg"
            ) from None
    ffprobe_env = os.environ.get("SUBTITLER_FFPROBE")
    ffprobe_bin = shutil.which("ffprobe") if ffprobe_env is None else (ffprobe_env or None)
    return Tools(ffmpeg_bin, ffprobe_bin)


@dataclass(frozen=True)
class AudioStream:
    index: int  # stream index in the container
    codec: str
    sample_rate: int | None
    channels: int | None
    start_time: float
    language: str | None = None


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    start_time: float


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format_name: str
    duration: float | None
    start_time: float
    audio: list[AudioStream] = field(default_factory=list)
    video: VideoStream | None = None
    # Codec of each subtitle stream, in order ("mov_text", "subrip", "ass"...).
    subtitles: list[str] = field(default_factory=list)

    def audio_stream(self, n: int = 0) -> AudioStream:
        """The n-th audio stream (counting audio streams only, like ffmpeg's 0:a:n)."""
        if not self.audio:
            raise NoAudioStream(f"{self.path}: no audio stream")
        if not 0 <= n < len(self.audio):
            raise NoAudioStream(
                f"{self.path}: no audio stream {n} (it has {len(self.audio)}: 0-{len(self.audio) - 1})"
            )
        return self.audio[n]


def _check_input(path: Path) -> None:
    if not path.exists():
        raise InputNotFound(f"{path}: no such file")
    if not path.is_file():
        raise InputNotFound(f"{path}: not a file")


def _float(value: object, default: float = 0.0) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def probe(path: str | Path) -> MediaInfo:
    """Describe the streams of a media file; `NotMedia` if ffmpeg cannot read it."""
    path = Path(path)
    _check_input(path)
    tools = find_tools()
    if tools.ffprobe is None:
        return _probe_with_ffmpeg(path, tools.ffmpeg)
    try:
        data = process.ffprobe_json(tools.ffprobe, str(path))
    except ffmpeg.Error as e:
        raise NotMedia(f"{path}: not a media file ffmpeg can read ({_last_line(e.stderr)})") from None
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    if not streams:
        raise NotMedia(f"{path}: no streams found")
    audio = [
        AudioStream(
            index=s["index"],
            codec=s.get("codec_name", "?"),
            sample_rate=int(s["sample_rate"]) if s.get("sample_rate") else None,
            channels=s.get("channels"),
            start_time=_float(s.get("start_time"), _float(fmt.get("start_time"))),
            language=s.get("tags", {}).get("language"),
        )
        for s in streams
        if s.get("codec_type") == "audio"
    ]
    # Cover art in an mp3/m4a is a "video" stream of one picture: not a picture track.
    videos = [
        s for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    video = None
    if videos:
        v = videos[0]
        video = VideoStream(
            v["index"], v.get("codec_name", "?"), v.get("width", 0), v.get("height", 0),
            _float(v.get("start_time"), _float(fmt.get("start_time"))),
        )
    duration = _float(fmt.get("duration"), -1.0)
    subtitles = [s.get("codec_name", "?") for s in streams if s.get("codec_type") == "subtitle"]
    return MediaInfo(
        path, fmt.get("format_name", "?"), duration if duration >= 0 else None,
        _float(fmt.get("start_time")), audio, video, subtitles,
    )


_DURATION_RE = re.compile(r"Duration: (N/A|(\d+):(\d+):([\d.]+)), start: (-?[\d.]+)")
_STREAM_RE = re.compile(
    r"Stream #0:(\d+)(?:\[\w+\])?(?:\((\w+)\))?: (Audio|Video|Subtitle|Data|Attachment): (\w+)(.*)"
)


def _probe_with_ffmpeg(path: Path, ffmpeg_bin: str) -> MediaInfo:
    """Probe by reading `ffmpeg -i`'s report, for when there is no ffprobe.

    ffmpeg prints no per-stream start times there, so every stream is taken to
    start with the file; timing offsets between streams are not corrected.
    """
    proc = process.run(
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-i", str(path)],
        text=True, errors="replace",
    )
    report = proc.stderr
    match = _DURATION_RE.search(report)
    streams = [m.groups() for m in _STREAM_RE.finditer(report)]
    if not match or not streams:
        raise NotMedia(f"{path}: not a media file ffmpeg can read ({_last_line(report)})")
    duration = None
    if match.group(1) != "N/A":
        h, m, s = match.group(2, 3, 4)
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    start = float(match.group(5))
    audio, video, subtitles = [], None, []
    for index, lang, kind, codec, rest in streams:
        if kind == "Audio":
            rate = re.search(r"(\d+) Hz", rest)
            channels = 1 if "mono" in rest else 2 if "stereo" in rest else None
            audio.append(AudioStream(int(index), codec, int(rate.group(1)) if rate else None,
                                     channels, start, lang if lang != "und" else None))
        elif kind == "Video" and video is None and "attached pic" not in rest:
            size = re.search(r", (\d+)x(\d+)", rest)
            w, h = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
            video = VideoStream(int(index), codec, w, h, start)
        elif kind == "Subtitle":
            subtitles.append(codec)
    return MediaInfo(path, "?", duration, start, audio, video, subtitles)


def _last_line(stderr: bytes | str | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no details"


@dataclass
class Audio:
    samples: np.ndarray  # float32 mono at SAMPLE_RATE
    # Seconds to add to times in `samples` to get times on the picture's clock.
    offset: float
    info: MediaInfo
    stream: AudioStream

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode_audio(
    path: str | Path,
    stream: int = 0,
    progress: Callable[[float, float], None] | None = None,
    info: MediaInfo | None = None,
) -> Audio:
    """Decode audio stream `stream` of `path` to 16 kHz mono float32.

    `progress` is called with (seconds decoded, seconds in all), once per
    second of audio. Without `info`, the file is probed while ffmpeg already
    decodes: both are mostly process start-up, so running them side by side
    halves the fixed cost per file.
    """
    path = Path(path)
    _check_input(path)
    cmd = (
        ffmpeg.input(str(path))
        .output(
            "pipe:", map=f"0:a:{stream}", format="s16le", acodec="pcm_s16le",
            ac=1, ar=SAMPLE_RATE,
            # Fill gaps from corrupt or missing frames so later words keep their time.
            af="aresample=async=1",
        )
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0")
        .compile(cmd=find_tools().ffmpeg)
    )
    chunks: list[bytes] = []
    with tempfile.TemporaryFile() as errors:
        proc = process.popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        try:
            info = info or probe(path)
            chosen = info.audio_stream(stream)  # a clear error before ffmpeg's own
            total = info.duration or 0.0
            assert proc.stdout is not None
            decoded = 0
            while chunk := proc.stdout.read(_BYTES_PER_SECOND):
                chunks.append(chunk)
                decoded += len(chunk)
                if progress:
                    progress(decoded / _BYTES_PER_SECOND, total)
            proc.wait()
        finally:
            if proc.poll() is None:  # an error or Ctrl-C: don't leave ffmpeg running
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            detail = _last_line(errors.read())
            raise NotMedia(f"{info.path}: ffmpeg could not decode audio stream {stream} ({detail})")
    raw = b"".join(chunks)
    if len(raw) < 2:
        raise EmptyAudio(f"{info.path}: audio stream {stream} is empty (zero length)")
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], np.int16).astype(np.float32) / 32768.0
    picture_start = info.video.start_time if info.video else chosen.start_time
    return Audio(samples, chosen.start_time - picture_start, info, chosen)
