"""Subtitle file formats: one small writer class each, looked up by name.

Writers turn cues (layout is decided before, in cues.py) into UTF-8 text.
JSON is the exception: it saves the whole Transcript, so subtitles can be
rendered again later without transcribing. ASS carries a real style (style.py)
sized in the video's pixels.
"""

from __future__ import annotations

import datetime
from typing import ClassVar

import pysubs2
import srt

from .cues import Cue
from .highlight import highlighted, karaoke, vtt_word_timing
from .style import DEFAULT_HEIGHT, DEFAULT_WIDTH, Style, parse_colour
from .transcript import Transcript


class Format:
    name: ClassVar[str]
    extension: ClassVar[str]

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        raise NotImplementedError


class SRT(Format):
    name, extension = "srt", ".srt"

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        if style and style.highlight_words:
            cues = highlighted(cues)
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

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        blocks = ["WEBVTT\n"]
        if style and style.highlight_words:
            cues = highlighted(cues, _vtt_escape)  # escaped there: <u> is markup
        for c in cues:
            if style and style.highlight_words:
                text = c.text
            elif style and style.word_timing and c.words:
                text = vtt_word_timing(c, _vtt_time, _vtt_escape)
            else:
                text = _vtt_escape(c.text)
            # A blank line ends a cue in WebVTT: never emit an empty line inside one.
            lines = [line for line in text.split("\n") if line.strip()]
            blocks.append(f"{_vtt_time(c.start)} --> {_vtt_time(c.end)}\n" + "\n".join(lines) + "\n")
        return "\n".join(blocks)


class JSON(Format):
    name, extension = "json", ".json"

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        return transcript.to_json()


# The colour of words not sung yet, with --karaoke.
KARAOKE_UNSUNG = "#A0A0A0"


def _ass_escape(text: str) -> str:
    # Braces start override tags in ASS: escape them as plain text.
    return text.replace("\\", "\\\u2060").replace("{", "\\{").replace("}", "\\}")


def _ass_colour(text: str) -> pysubs2.Color:
    r, g, b, a = parse_colour(text)
    return pysubs2.Color(r, g, b, a)


def picture_size(transcript: Transcript) -> tuple[int, int]:
    source = transcript.source
    return ((source and source.width) or DEFAULT_WIDTH), ((source and source.height) or DEFAULT_HEIGHT)


class ASS(Format):
    """Advanced SubStation Alpha with one style, PlayRes set to the picture size."""

    name, extension = "ass", ".ass"

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        width, height = picture_size(transcript)
        st = (style or Style()).resolved(width, height)
        subs = pysubs2.SSAFile()
        subs.info.update({"PlayResX": str(width), "PlayResY": str(height),
                          "ScaledBorderAndShadow": "yes",
                          # Smart wrapping: libass breaks a line wider than the picture (between
                          # the margins) into balanced lines instead of letting it run off the edges.
                          "WrapStyle": "0"})
        subs.styles["Default"] = pysubs2.SSAStyle(
            fontname=st.font, fontsize=st.size, bold=st.bold,
            # Karaoke (\k) turns each word from the secondary colour to the primary as it is sung.
            primarycolor=_ass_colour(st.colour),
            secondarycolor=_ass_colour(KARAOKE_UNSUNG if st.karaoke else st.colour),
            outlinecolor=_ass_colour(st.outline_colour if not st.box else st.back_colour),
            backcolor=_ass_colour(st.back_colour),
            borderstyle=3 if st.box else 1, outline=st.outline, shadow=st.shadow,
            alignment=pysubs2.Alignment.TOP_CENTER if st.position == "top"
            else pysubs2.Alignment.BOTTOM_CENTER,
            marginl=st.margin_h, marginr=st.margin_h, marginv=st.margin_v,
        )
        for c in cues:
            start, end = round(c.start * 1000), round(c.end * 1000)
            if st.karaoke and c.words:
                # On ASS's centiseconds, as the \k durations that sum to the cue's.
                start, end = round(c.start * 100) * 10, round(c.end * 100) * 10
                text = karaoke(c, _ass_escape)
            else:
                text = _ass_escape(c.text)
            subs.append(pysubs2.SSAEvent(start=start, end=end, text=text.replace("\n", "\\N")))
        return subs.to_string("ass")


class Text(Format):
    """Plain text: one cue per line."""

    name, extension = "txt", ".txt"

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        return "".join(c.text.replace("\n", " ") + "\n" for c in cues)


class TSV(Format):
    """Tab-separated start, end (integer milliseconds) and text, as openai-whisper writes it."""

    name, extension = "tsv", ".tsv"

    def dumps(self, transcript: Transcript, cues: list[Cue], style: Style | None = None) -> str:
        rows = ["start\tend\ttext"]
        for c in cues:
            rows.append(f"{round(c.start * 1000)}\t{round(c.end * 1000)}\t{c.text.replace(chr(10), ' ')}")
        return "\n".join(rows) + "\n"


FORMATS: dict[str, type[Format]] = {f.name: f for f in (SRT, WebVTT, ASS, Text, TSV, JSON)}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown format {name!r} (choose from {', '.join(FORMATS)})") from None
