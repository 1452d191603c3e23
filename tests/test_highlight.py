"""Word-level timing in the files (issue 16): --highlight-words (SRT, WebVTT), --karaoke (ASS),
--word-timing (WebVTT), --max-words-per-line. Each output parses back with a library that
does not share subtitler's code and carries every word once, in order, with its time.

The words are the sample's forced alignment (real speech, 71 words): no engine needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pysubs2
import pytest
import srt
import webvtt

from subtitler.cues import build_cues
from subtitler.formats import get_format
from subtitler.highlight import word_times
from subtitler.profiles import get_profile
from subtitler.style import Style
from subtitler.transcript import Segment, Source, Transcript, Word

from .conftest import REFERENCE


@pytest.fixture(scope="module")
def transcript() -> Transcript:
    ref = json.loads(REFERENCE.read_text())
    words = [Word(w["start"], w["end"], " " + w["text"]) for w in ref["words"]]
    return Transcript("en", ref["duration"], [Segment(words[0].start, words[-1].end, ref["text"], words)],
                      source=Source(input="sample.mp4", width=320, height=180, video_duration=ref["duration"],
                                    media_duration=ref["duration"], frame_rate=15.0))


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return round(int(h) * 3600 + int(m) * 60 + float(s), 3)


def _expected(cues):
    """(word, when it becomes the current one) for every word of every cue, in order."""
    return [(w.text.strip(), round(start, 3)) for c in cues for w, (start, _) in zip(c.words, word_times(c),
                                                                                    strict=True)]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_highlight_words(transcript, fmt):
    cues = build_cues(transcript)
    text = get_format(fmt).dumps(transcript, cues, Style(highlight_words=True))
    if fmt == "srt":
        parsed = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in srt.parse(text)]
    else:
        parsed = [(_seconds(c.start), _seconds(c.end), c.raw_text) for c in webvtt.from_string(text)]
    got = []
    for start, end, content in parsed:
        underlined = re.findall(r"<u>(.*?)</u>", content)
        assert len(underlined) == 1, content
        assert end > start
        got.append((underlined[0], round(start, 3)))
    assert got == _expected(cues)
    assert len(got) == len(transcript.words) == 71
    # Within each cue the word cues follow each other without a gap and cover the cue's time.
    assert parsed[0][0] == cues[0].start and parsed[-1][1] == cues[-1].end


def test_vtt_word_timing(transcript):
    cues = build_cues(transcript)
    text = get_format("vtt").dumps(transcript, cues, Style(word_timing=True))
    parsed = list(webvtt.from_string(text))
    assert len(parsed) == len(cues)
    got = []
    for cue, c in zip(parsed, cues, strict=True):
        # "Word <00:00:01.250>word ...": the first word at the cue's start, the others at their stamp.
        pieces = re.split(r"<(\d\d:\d\d:\d\d\.\d\d\d)>", cue.raw_text.replace("\n", " "))
        got.append((pieces[0].split()[0], round(c.start, 3)))
        for stamp, word in zip(pieces[1::2], pieces[2::2], strict=True):
            got.append((word.split()[0], _seconds(stamp)))
        assert re.sub(r"<[^>]*>", "", cue.raw_text) == c.text
    assert got == _expected(cues)


def test_ass_karaoke(transcript):
    cues = build_cues(transcript)
    subs = pysubs2.SSAFile.from_string(get_format("ass").dumps(transcript, cues, Style(karaoke=True)))
    events = [e for e in subs.events if not e.is_comment]
    assert len(events) == len(cues)
    assert subs.styles["Default"].secondarycolor != subs.styles["Default"].primarycolor
    got = []
    for event, cue in zip(events, cues, strict=True):
        tags = re.findall(r"\{\\k(\d+)\}([^{]*)", event.text)
        assert sum(int(k) for k, _ in tags) * 10 == event.end - event.start  # durations sum to the cue's
        at = event.start / 1000
        for k, word in tags:
            got.append((word.replace("\\N", " ").split()[0], round(at, 2)))
            at += int(k) / 100
        assert event.plaintext.replace("\n", " ") == cue.text.replace("\n", " ")
    assert [(w, round(t, 2)) for w, t in _expected(cues)] == got


def test_max_words_per_line(transcript):
    cues = build_cues(transcript, get_profile("netflix").replace(max_words_per_line=3, max_lines=1))
    assert all(len(c.text.split()) <= 3 and "\n" not in c.text for c in cues)
    assert " ".join(c.text for c in cues).split() == [w.text.strip() for w in transcript.words]
    two = build_cues(transcript, get_profile("netflix").replace(max_words_per_line=4))
    assert all(len(line.split()) <= 4 for c in two for line in c.text.split("\n"))


def test_cli_word_options(tmp_path, transcript):
    """The options on the command line, from a saved transcript (no engine). In WebVTT,
    --highlight-words (a cue per word) wins over --word-timing."""
    saved = tmp_path / "sample.json"
    saved.write_text(transcript.to_json())

    def run(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "subtitler", str(saved), "--overwrite", "-o",
                               str(tmp_path / "out"), *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    run("-f", "srt,ass", "--highlight-words", "--karaoke", "--max-words-per-line", "5")
    subs = list(srt.parse((tmp_path / "out" / "sample.srt").read_text()))
    assert len(subs) == 71 and all(s.content.count("<u>") == 1 for s in subs)
    assert all(len(line.split()) <= 5 for s in subs for line in s.content.split("\n"))
    assert "{\\k" in (tmp_path / "out" / "sample.ass").read_text()
    run("-f", "vtt", "--word-timing")
    assert "<00:00:01.130>john" in (tmp_path / "out" / "sample.vtt").read_text()


def test_openai_whisper_spellings(tmp_path, transcript):
    """`--highlight_words True --max_words_per_line 2 --max_line_count 1`, as openai-whisper has them."""
    saved = tmp_path / "sample.json"
    saved.write_text(transcript.to_json())
    proc = subprocess.run([sys.executable, "-m", "subtitler", str(saved), "-f", "srt", "-o",
                           str(tmp_path / "out"), "--highlight_words", "True", "--max_words_per_line", "2",
                           "--max_line_count", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subs = list(srt.parse((tmp_path / "out" / "sample.srt").read_text()))
    assert len(subs) == 71
    assert all(s.content.count("<u>") == 1 and len(s.content.split()) <= 2 and "\n" not in s.content
               for s in subs)
