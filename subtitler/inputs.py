"""Which files a run works on: files, folders (recursive), list files and stdin.

Each input keeps the path it has relative to the folder it was found in, so
outputs can mirror the input tree under `-o DIR`:

    subtitler videos/ -o subs/      # videos/a/b.mp4 -> subs/a/b.srt

In folders, a file counts as media when its extension says so or, for any
other extension, when ffprobe finds an audio or video stream in it; subtitle
and transcript files, hidden files and folders (a run's own temporary files
among them) and the files a run made (its manifest lists them: subtitled
videos) are never inputs.
"""

from __future__ import annotations

import atexit
import fnmatch
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import manifest
from .errors import SubtitlerError

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .wmv .flv .mpg .mpeg .ts .mts .m2ts .3gp .ogv .mxf .vob "
    ".wav .mp3 .m4a .aac .flac .ogg .oga .opus .wma .aiff .aif .amr .ac3 .mka .caf".split())
# Never media, whatever ffprobe would say (it reads SRT and WebVTT as subtitle "media").
NOT_MEDIA = frozenset(
    ".srt .vtt .ass .ssa .sub .json .txt .tsv .md .toml .yaml .yml .csv .py .sh .html .xml .pdf "
    ".jpg .jpeg .png .gif .webp .svg .part".split())


class InputError(SubtitlerError):
    """An input argument names nothing usable (a missing path, an unreadable list)."""

    exit_code = 3


@dataclass(frozen=True)
class Input:
    path: Path
    # Where outputs go under -o: the path relative to the folder it was found in
    # (a file named directly: just its name).
    relative: PurePosixPath
    # Media read from stdin: what messages call it instead of its temporary copy's path, and
    # where its outputs go without -o (the current folder).
    shown: str | None = None
    folder: Path | None = None

    def __str__(self) -> str:
        return self.shown or str(self.path)

    def told(self, message: str) -> str:
        """`message` naming this input as the user gave it (stdin, not its temporary copy)."""
        return message.replace(str(self.path), self.shown) if self.shown else message


def _matches(relative: PurePosixPath, patterns: Sequence[str]) -> bool:
    """A glob matches the relative path, or its file name alone ("*.mov", "raw/*", "**/draft*")."""
    text = str(relative)
    return any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(relative.name, p)
               or (p.startswith("**/") and fnmatch.fnmatch(text, p[3:])) for p in patterns)


def looks_like_media(path: Path) -> bool:
    """By extension; for unknown extensions, by probing for an audio or video stream."""
    ext = path.suffix.lower()
    if ext in MEDIA_EXTENSIONS:
        return True
    if ext in NOT_MEDIA:
        return False
    from .media import probe  # ffprobe only for the files whose name does not tell

    try:
        info = probe(path)
    except SubtitlerError:
        return False
    return bool(info.audio or info.video)


def _walk(folder: Path) -> Iterable[Path]:
    """Files under `folder`, hidden ones and the tool's own outputs (--mux videos...) left out."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        made_here = manifest.read(Path(root)) if manifest.NAME in files else {}
        for name in sorted(files):
            if not name.startswith(".") and name not in made_here:
                yield Path(root) / name


def read_list(source: str, null: bool = False, start: bytes = b"") -> list[str]:
    """Paths from a list file, or stdin for "-" (after `start`, what was read of it already).

    One per line (blank lines and # comments skipped), or with `null` separated by NUL bytes
    as `find -print0` writes them, taken exactly. Names are the file system's bytes: one that
    is not UTF-8 is kept as it is (os.fsdecode).
    """
    try:
        data = start + (sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes())
    except OSError as e:
        raise InputError(f"{source}: cannot read the list of inputs ({e.strerror or e})") from None
    if null:
        return [os.fsdecode(name) for name in data.split(b"\0") if name]
    lines = os.fsdecode(data).split("\n")  # only newlines: a name may hold \f or \x1c
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# Read from stdin before deciding what it holds: a list of paths never has a NUL byte,
# media files (MP4, MKV, WAV...) have them in their first bytes.
_SNIFF = 1 << 16


def _stdin(null: bool) -> list[str] | Input:
    """What "-" stands for: the paths listed on stdin, or (binary data) media piped in,
    copied to a temporary file: ffmpeg reads an input twice (probe, decode), a pipe only once."""
    start = sys.stdin.buffer.read(_SNIFF)
    if null or b"\0" not in start:
        return read_list("-", null, start)
    folder = Path(tempfile.mkdtemp(prefix="subtitler-stdin-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "stdin"
    try:
        with open(path, "wb") as copy:
            copy.write(start)
            shutil.copyfileobj(sys.stdin.buffer, copy)
        path = path.rename(path.with_suffix(_extension(path)))  # --mux keeps the container
    except OSError as e:
        raise InputError(f"-: cannot keep the media read from stdin ({e.strerror or e})") from None
    return Input(path, PurePosixPath("stdin"), shown="- (stdin)", folder=Path("."))


# ffprobe's format names whose usual extension is not the name itself.
_FORMAT_EXTENSIONS = {"mov": ".mp4", "matroska": ".mkv", "mpegts": ".ts", "ogg": ".ogg"}


def _extension(path: Path) -> str:
    """The extension of the container in `path` ("" if ffprobe does not know it)."""
    from .media import probe

    try:
        name = probe(path).format_name.split(",")[0]
    except SubtitlerError:
        return ""  # not media: the run says so
    ext = _FORMAT_EXTENSIONS.get(name, f".{name}")
    return ext if ext in MEDIA_EXTENSIONS else ""


def find_inputs(arguments: Sequence[str], include: Sequence[str] = (), exclude: Sequence[str] = (),
                lists: Sequence[str] = (), null: bool = False) -> list[Input]:
    """Expand arguments (files, folders, "-" for stdin) and list files into inputs, in order, once each.

    A file named directly is always an input (if it is missing or not media,
    the run reports it); a folder contributes its media files that pass
    --include/--exclude. "-" is the list of paths on stdin or, when binary
    data is piped in, that media itself (its outputs: stdin.srt... in the
    current folder, or under -o). `null`: lists are NUL-separated (-0). An
    unreadable list file raises InputError.
    """
    names: list[str | Input] = list(arguments)
    for source in lists:
        names.extend(read_list(source, null))
    if "-" in names:
        at = names.index("-")
        piped = _stdin(null)
        names[at:at + 1] = piped if isinstance(piped, list) else [piped]
    found: list[Input] = []
    seen: set[Path] = set()

    def add(item: Input) -> None:
        key = Path(os.path.realpath(item.path))  # Path.resolve raises on a symlink loop
        if key not in seen:
            seen.add(key)
            found.append(item)

    for name in names:
        if isinstance(name, Input):
            found.append(name)
            continue
        path = Path(name)
        if path.is_dir():
            for file in _walk(path):
                relative = PurePosixPath(file.relative_to(path).as_posix())
                if include and not _matches(relative, include):
                    continue
                if _matches(relative, exclude) or not looks_like_media(file):
                    continue
                add(Input(file, relative))
        else:  # a missing file is reported by the run, as that input's failure
            add(Input(path, PurePosixPath(path.name)))
    return found
