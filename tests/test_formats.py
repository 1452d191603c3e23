"""Transcript JSON round trip, and SRT/VTT that parse back to the same cues."""

from __future__ import annotations

import io

import pytest
import srt
import webvtt

from subtitler.cues import Cue, build_cues
from subtitler.errors import BadTranscript
from subtitler.events import Report
from subtitler.formats import get_format
from subtitler.transcript import Segment, Transcript, Word


def _transcript() -> Transcript:
    words = [Word(0.5, 0.9, " Hello", 0.91), Word(0.9, 1.3333333333333333, " <world>", 0.5),
             Word(1.4, 2.0, " & café", 0.73)]
    more = [Word(61.25, 62.0, " Über", 0.99), Word(3600.5, 3601.75, " «ok»", 0.42)]
    return Transcript("en", 3602.0, [
        Segment(0.5, 2.0, " Hello <world> & café", words, -0.2, 0.01, 1.1, 0.0),
        Segment(61.25, 3601.75, " Über «ok»", more),
    ], {"backend": "test", "options": {"beam_size": 5}})


def test_json_round_trip_is_lossless(tmp_path):
    t = _transcript()
    path = tmp_path / "t.json"
    t.save(path)
    assert Transcript.load(path) == t
    assert path.read_text(encoding="utf-8").count("café") == 2  # UTF-8, not \\u escapes


def test_real_transcript_round_trip(fw_backend, sample_audio, tmp_path):
    from subtitler.options import DecodeOptions

    t = fw_backend.transcribe(sample_audio.samples[: 16000 * 8], DecodeOptions(), Report())
    assert t.words, "engine returned no words"
    t.save(tmp_path / "real.json")
    assert Transcript.load(tmp_path / "real.json") == t


@pytest.mark.parametrize("text,message", [
    ("not json", "invalid JSON"),
    ("[1, 2]", "not a subtitler transcript"),
    ('{"schema": "subtitler.transcript", "version": 99}', "unsupported transcript version"),
    ('{"schema": "subtitler.transcript", "version": 1, "segments": [{"start": 1}]}', "malformed"),
])
def test_bad_transcript_json(text, message):
    with pytest.raises(BadTranscript, match=message):
        Transcript.from_json(text)


def _expected_cues() -> list[Cue]:
    return build_cues(_transcript())


def test_srt_parses_back_to_same_cues():
    cues = _expected_cues()
    text = get_format("srt").dumps(_transcript(), cues)
    parsed = list(srt.parse(text))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in parsed] == [
        (round(c.start, 3), round(c.end, 3), c.text) for c in cues
    ]


def test_vtt_parses_back_to_same_cues():
    cues = _expected_cues()
    text = get_format("vtt").dumps(_transcript(), cues)
    assert text.startswith("WEBVTT\n\n")
    parsed = webvtt.from_buffer(io.StringIO(text))
    assert [(_secs(c.start), _secs(c.end), c.text) for c in parsed] == [
        (round(c.start, 3), round(c.end, 3), c.text.replace("&", "&amp;").replace("<", "&lt;")
         .replace(">", "&gt;")) for c in cues
    ]
    assert "\n01:00:00.500 --> 01:00:01.750\n" in text  # hours are written


def _secs(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return round(int(h) * 3600 + int(m) * 60 + float(s), 3)


def test_cues_use_word_times_and_never_overlap():
    cues = _expected_cues()
    assert cues[0].start == 0.5 and cues[0].end >= 2.0
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start
    assert all(len(line) <= 42 for c in cues for line in c.text.split("\n"))
