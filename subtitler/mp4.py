"""A fix-up ffmpeg cannot be asked for: MP4/MOV subtitle tracks that are not the default.

A track's "default" in MP4 is the enabled bit of its track header (`tkhd`).
ffmpeg's MP4 muxer sets it on the first subtitle track whenever no subtitle
track is marked default, so `-disposition:s 0` alone still gives players a
track they show by default. `set_subtitles_enabled` rewrites that bit in
place (one byte per track; the file's size and layout do not change).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_CONTAINERS = {b"moov", b"trak", b"mdia", b"tref", b"edts"}
_SUBTITLE_HANDLERS = {b"sbtl", b"text", b"subt"}
_ENABLED = 0x1


@dataclass
class _Track:
    track_id: int = 0
    flags_at: int = -1  # file offset of the last byte of tkhd's flags (holds the enabled bit)
    handler: bytes = b""


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between start and end."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return  # not a box: stop rather than guess
        yield kind, pos + header, pos + size
        pos += size


def _subtitle_tracks(path: Path) -> list[_Track]:
    """The subtitle tracks in file order, chapter tracks (referenced by `tref/chap`) left out."""
    tracks: list[_Track] = []
    chapters: set[int] = set()
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        for kind, start, end in _boxes(f, 0, size):
            if kind != b"moov":
                continue
            for trak_kind, trak_start, trak_end in _boxes(f, start, end):
                if trak_kind != b"trak":
                    continue
                track = _Track()
                for box, box_start, box_end in _boxes(f, trak_start, trak_end):
                    if box == b"tkhd":
                        f.seek(box_start)
                        version = f.read(1)[0]
                        f.seek(box_start + (20 if version == 1 else 12))
                        track.track_id = struct.unpack(">I", f.read(4))[0]
                        track.flags_at = box_start + 3
                    elif box == b"tref":
                        for ref, ref_start, ref_end in _boxes(f, box_start, box_end):
                            if ref == b"chap":
                                f.seek(ref_start)
                                count = (ref_end - ref_start) // 4
                                chapters.update(struct.unpack(f">{count}I", f.read(count * 4)))
                    elif box == b"mdia":
                        for sub, sub_start, _ in _boxes(f, box_start, box_end):
                            if sub == b"hdlr":
                                f.seek(sub_start + 8)  # version/flags, pre_defined
                                track.handler = f.read(4)
                tracks.append(track)
    return [t for t in tracks if t.handler in _SUBTITLE_HANDLERS and t.track_id not in chapters
            and t.flags_at >= 0]


def set_subtitles_enabled(path: Path, enabled: Sequence[bool]) -> None:
    """Set the default (enabled) bit of the last len(enabled) subtitle tracks of an MP4/MOV file,
    in order: the tracks a mux just added."""
    tracks = _subtitle_tracks(path)[-len(enabled):] if enabled else []
    with path.open("r+b") as f:
        for track, on in zip(tracks, enabled, strict=False):
            f.seek(track.flags_at)
            flags = f.read(1)[0]
            f.seek(track.flags_at)
            f.write(bytes([flags | _ENABLED if on else flags & ~_ENABLED]))
