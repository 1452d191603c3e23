"""Subtitle file formats: one small writer class each, looked up by name.

Writers turn cues (layout is decided before, in cues.py) into UTF-8 text.
JSON is the exception: it saves the whole Transcript, so subtitles can be
rendered again later without transcribing.
"""

from __future__ import annotations

import datetime
from typing import ClassVar

import srt

from .cues import Cue
from .transcript import Transcript


class Format:
    name: ClassVar[str]
    extension: ClassVar[str]

    def dumps(self, transcript: Transcript, cues: list[Cue]) -> str:
        raise NotImplementedError


class SRT(Format):
    name, extension = "srt", ".srt"

    def dumps(self, transcript: Transcript, cues: list[Cue]) -> str:
        subs = [
            srt.Subtitle(i, datetime.timedelta(seconds=c.start), datetime.timedelta(seconds=c.end), c.text)
            for i, c in enumerate(cues, 1)
        ]
        return srt.compose(subs, reindex=False)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    # "&" and "<" start entities and tags in WebVTT; "-->" would end a timing line.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebVTT(Format):
    name, extension = "vtt", ".vtt"

    def dumps(self, transcript: Transcript, cues: list[Cue]) -> str:
        blocks = ["WEBVTT\n"]
        for c in cues:
            # A blank line ends a cue in WebVTT: never emit an empty line inside one.
            lines = [_vtt_escape(line) for line in c.text.split("\n") if line.strip()]
            blocks.append(f"{_vtt_time(c.start)} --> {_vtt_time(c.end)}\n" + "\n".join(lines) + "\n")
        return "\n".join(blocks)


class JSON(Format):
    name, extension = "json", ".json"

    def dumps(self, transcript: Transcript, cues: list[Cue]) -> str:
        return transcript.to_json()


FORMATS: dict[str, type[Format]] = {f.name: f for f in (SRT, WebVTT, JSON)}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown format {name!r} (choose from {', '.join(FORMATS)})") from None
