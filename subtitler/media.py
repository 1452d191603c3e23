"""Media in: find ffmpeg, probe an input, decode one audio stream to 16 kHz mono.

Audio is decoded through a pipe in one-second chunks, so progress can be
reported while ffmpeg works; a long input's audio goes on to a temporary file
(`Pcm`), and is handed on a piece at a time (`Audio.pieces`). Times are kept relative to the
picture: when the audio stream starts later (or earlier) than the video
stream, `Audio.offset` says by how much, and the pipeline shifts the
transcript by it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ffmpeg  # ffmpeg-python: builds argument lists, never a shell string
import numpy as np

from . import process
from .errors import DecodeInterrupted, EmptyAudio, FFmpegNotFound, InputNotFound, NoAudioStream, NotMedia

# Whisper's input: 16 kHz mono.
SAMPLE_RATE = 16000
# Bytes of s16le mono per second of audio; the pipe is read a second at a time.
_BYTES_PER_SECOND = SAMPLE_RATE * 2
# Longer audio reaches the engines in pieces of at most this, cut in pauses: the engines' memory
# (features, VAD, batches) stays that of a 10-minute file whatever the input's length.
PIECE_SECONDS = 600.0
# Decoded audio beyond this (s16le: about 35 minutes) waits in a temporary file, not in memory.
_SPOOL_BYTES = 64 << 20


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
    # Seconds, when the container says (MP4 per stream, MKV in a DURATION tag).
    duration: float | None = None


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str
    width: int
    height: int
    start_time: float
    # Frames per second (ffprobe's average frame rate, else its base rate); None when unknown.
    frame_rate: float | None = None


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


def ffmpeg_path(path: str | Path) -> str:
    """A path as ffmpeg and ffprobe must be given it: `file:` and absolute, so that no file name
    (`-i`, `concat:a|b`, `pipe:1`, `http://...`) is read as an option or a protocol."""
    return "file:" + os.path.abspath(path)


def _check_input(path: Path) -> None:
    if not path.exists():
        raise InputNotFound(f"{path}: no such file")
    if not path.is_file():
        raise InputNotFound(f"{path}: not a file")


def _rate(text: str | None) -> float | None:
    """ffprobe's "24000/1001" as frames per second; None for "0/0" or nothing."""
    try:
        num, _, den = (text or "").partition("/")
        rate = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if 0 < rate < 1000 else None


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
    # What ffmpeg.probe runs, with its exit status kept: ffprobe killed or crashed says nothing
    # about the file, and must not be remembered as "not media".
    proc = process.run([tools.ffprobe, "-show_format", "-show_streams", "-of", "json", ffmpeg_path(path)])
    if proc.returncode < 0:
        raise DecodeInterrupted(f"{path}: ffprobe stopped ({_stopped(proc.returncode)}); run again")
    if proc.returncode != 0:
        raise NotMedia(f"{path}: not a media file ffmpeg can read ({_last_line(proc.stderr, path)})")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise NotMedia(f"{path}: ffprobe's report cannot be read ({_last_line(proc.stderr, path)})") from None
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
            duration=_stream_duration(s),
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
            _rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")),
        )
    duration = _float(fmt.get("duration"), -1.0)
    subtitles = [s.get("codec_name", "?") for s in streams if s.get("codec_type") == "subtitle"]
    return MediaInfo(
        path, fmt.get("format_name", "?"), duration if duration >= 0 else None,
        _float(fmt.get("start_time")), audio, video, subtitles,
    )


def _stream_duration(stream: dict) -> float | None:
    """A stream's duration from ffprobe: its own field, else MKV's DURATION tag (HH:MM:SS.fff...)."""
    seconds = _float(stream.get("duration"), -1.0)
    if seconds >= 0:
        return seconds
    tag = next((v for k, v in stream.get("tags", {}).items() if k.upper() == "DURATION"), "")
    h, _, rest = str(tag).partition(":")
    m, _, sec = rest.partition(":")
    try:
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


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
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-i", ffmpeg_path(path)],
        text=True, errors="replace",
    )
    report = proc.stderr
    match = _DURATION_RE.search(report)
    streams = [m.groups() for m in _STREAM_RE.finditer(report)]
    if not match or not streams:
        raise NotMedia(f"{path}: not a media file ffmpeg can read ({_last_line(report, path)})")
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


def _last_line(stderr: bytes | str | None, path: Path | None = None) -> str:
    """ffmpeg's last words, without the `file:` name it was given for `path` (the error names
    the path the user gave)."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "surrogateescape")  # as file names are: the prefix matches
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    line = lines[-1] if lines else "no details"
    return line.removeprefix(f"{ffmpeg_path(path)}: ") if path is not None else line


def _stopped(returncode: int) -> str:
    """Why ffmpeg stopped: the signal that killed it, or one it exited on."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return "exit status 255: a signal"


class Pcm:
    """16 kHz mono samples as s16le: in memory while short, in a temporary file beyond, read back
    a span at a time as float32. Its `hash` is that of the float32 samples (the cache's key),
    taken as they are written: nothing ever holds a long input whole."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
        self._hash = hashlib.sha256()
        self._odd = b""  # a pipe read can end inside a sample
        self.count = 0

    @classmethod
    def of(cls, samples: np.ndarray) -> Pcm:
        pcm = cls()
        pcm.write(np.rint(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes())
        return pcm

    def write(self, data: bytes) -> None:
        data = self._odd + data
        whole = len(data) // 2 * 2
        data, self._odd = data[:whole], data[whole:]
        self._file.write(data)
        self._hash.update(_float32(data).tobytes())
        self.count += whole // 2

    def read(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples `start` to `end` as float32."""
        end = self.count if end is None else min(end, self.count)
        if end <= start:
            return np.zeros(0, np.float32)
        self._file.seek(start * 2)
        return _float32(self._file.read((end - start) * 2))

    @property
    def hash(self) -> str:
        return self._hash.hexdigest()


def _float32(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


@dataclass
class Audio:
    """One input's decoded audio: read it a piece at a time (`pieces`, `read`); `samples` is all
    of it at once, for short audio."""

    pcm: Pcm
    # Seconds to add to times in the audio to get times on the picture's clock.
    offset: float
    info: MediaInfo
    stream: AudioStream | None  # None: the file has no audio stream (no samples)

    @property
    def samples(self) -> np.ndarray:
        return self.pcm.read()

    def read(self, start: int, end: int) -> np.ndarray:
        return self.pcm.read(start, end)

    @property
    def count(self) -> int:
        return self.pcm.count

    @property
    def duration(self) -> float:
        return self.pcm.count / SAMPLE_RATE

    @property
    def hash(self) -> str:
        """What the transcript cache knows this audio by: sha256 of its float32 samples."""
        return self.pcm.hash

    @functools.cached_property
    def pieces(self) -> list[tuple[int, int]]:
        """(start, end) sample ranges of at most PIECE_SECONDS each, cut in pauses: the pieces
        engines hear a long input in, so that nothing holds all of it."""
        from .splitting import piece_bounds  # here: splitting.py imports this module

        return piece_bounds(self.pcm.read, self.pcm.count, PIECE_SECONDS)

    @property
    def expected_duration(self) -> float | None:
        """Seconds of audio the container announces (the stream's, else the file's from the stream's
        start); more than `duration` when the file is cut short."""
        if self.stream.duration is not None:
            return self.stream.duration
        if self.info.duration is None:
            return None
        return self.info.duration - max(0.0, self.stream.start_time - self.info.start_time)


def _decode_command(path: Path, stream: int) -> list[str]:
    """ffmpeg's arguments to decode audio stream `stream` of `path` to 16 kHz mono s16le on stdout."""
    # ffmpeg-python builds the list (never a shell string). It hashes each node's arguments as
    # UTF-8, which a file name that is not UTF-8 (os.fsdecode's surrogates) cannot be: the graph
    # gets a stand-in, swapped for the real name afterwards.
    stand_in = "file:input"
    cmd = (
        ffmpeg.input(stand_in)
        .output(
            "pipe:", map=f"0:a:{stream}", format="s16le", acodec="pcm_s16le",
            ac=1, ar=SAMPLE_RATE,
            # Fill gaps from corrupt or missing frames so later words keep their time.
            af="aresample=async=1",
        )
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0")
        .compile(cmd=find_tools().ffmpeg)
    )
    return [ffmpeg_path(path) if arg == stand_in else arg for arg in cmd]


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
    cmd = _decode_command(path, stream)
    pcm = Pcm()
    with tempfile.TemporaryFile() as errors:
        proc = process.popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        try:
            info = info or probe(path)
            chosen = info.audio_stream(stream)  # a clear error before ffmpeg's own
            total = info.duration or 0.0
            assert proc.stdout is not None
            decoded = 0
            while chunk := proc.stdout.read(_BYTES_PER_SECOND):
                pcm.write(chunk)
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
            report = errors.read()
            detail = _last_line(report, path)
            # Killed or crashed (a signal), or stopped by SIGTERM/SIGINT (ffmpeg then exits 255 and,
            # at -loglevel error, says nothing): not the file's fault.
            if proc.returncode < 0 or (proc.returncode == 255 and not report.strip()):
                why = _stopped(proc.returncode)
                raise DecodeInterrupted(f"{info.path}: ffmpeg stopped while decoding ({why}); run again")
            raise NotMedia(f"{info.path}: ffmpeg could not decode audio stream {stream} ({detail})")
    if pcm.count == 0:
        raise EmptyAudio(f"{info.path}: audio stream {stream} is empty (zero length)")
    picture_start = info.video.start_time if info.video else chosen.start_time
    return Audio(pcm, chosen.start_time - picture_start, info, chosen)


# A stream whose loudest sample is quieter than this carries no sound worth transcribing.
_AUDIBLE_DB = -40.0
_LOUDNESS_RE = re.compile(r"max_volume: (-?[\d.]+|-inf) dB")


def audible_streams(info: MediaInfo, besides: int, seconds: float = 600.0) -> list[int]:
    """The audio streams other than `besides` with sound in their first `seconds` (a hint for
    --audio-stream when the chosen stream has no speech). ffmpeg's volumedetect: a decode, no model."""
    found = []
    for n in range(len(info.audio)):
        if n == besides:
            continue
        proc = process.run([find_tools().ffmpeg, "-nostdin", "-hide_banner", "-t", str(seconds),
                            "-i", ffmpeg_path(info.path), "-map", f"0:a:{n}", "-af", "volumedetect",
                            "-f", "null", "-"], text=True, errors="replace")
        match = _LOUDNESS_RE.search(proc.stderr)
        if match and match.group(1) != "-inf" and float(match.group(1)) > _AUDIBLE_DB:
            found.append(n)
    return found
