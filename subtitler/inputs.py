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

import fnmatch
import os
import sys
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

    def __str__(self) -> str:
        return str(self.path)


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


def read_list(source: str) -> list[str]:
    """Paths from a list file (one per line; blank lines and # comments skipped), or stdin for "-"."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{source}: cannot read the list of inputs ({e})") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def find_inputs(arguments: Sequence[str], include: Sequence[str] = (), exclude: Sequence[str] = (),
                lists: Sequence[str] = ()) -> list[Input]:
    """Expand arguments (files, folders, "-" for stdin) and list files into inputs, in order, once each.

    A file named directly is always an input (if it is missing or not media,
    the run reports it); a folder contributes its media files that pass
    --include/--exclude. An unreadable list file raises InputError.
    """
    names = list(arguments)
    for source in lists:
        names.extend(read_list(source))
    if "-" in names:
        at = names.index("-")
        names[at:at + 1] = read_list("-")
    found: list[Input] = []
    seen: set[Path] = set()

    def add(item: Input) -> None:
        key = item.path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(item)

    for name in names:
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
