"""`subtitler check --video MEDIA --speech-offset MS` (issue 16): cues that start off the speech they
carry. The speech is voices.mp4's (real, under a noise floor); the cues are placed from its forced
alignment (samples/voices.reference.json), then some moved off it."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import srt

from subtitler.check import check_file, speech_of
from subtitler.profiles import get_profile

from .conftest import ROOT

VOICES = ROOT / "samples" / "voices.mp4"


def _srt(path, shifts: dict[int, float]) -> None:
    """One cue per utterance, from its first word's start to its last word's end (+0.3 s), cue n
    (1-based) moved by shifts[n] seconds."""
    ref = json.loads(VOICES.with_suffix(".reference.json").read_text())
    subs = []
    for n, clip in enumerate(ref["clips"], 1):
        words = [w for w in ref["words"] if clip["start"] <= w["start"] < clip["end"]]
        start = words[0]["start"] + shifts.get(n, 0.0)
        subs.append(srt.Subtitle(n, datetime.timedelta(seconds=start),
                                 datetime.timedelta(seconds=min(words[-1]["end"] + 0.3, ref["duration"])),
                                 clip["text"]))
    path.write_text(srt.compose(subs))


def test_speech_start_rule(tmp_path):
    speech = speech_of(VOICES)
    profile = get_profile("relaxed")
    on_time = tmp_path / "on-time.srt"
    _srt(on_time, {})
    assert check_file(on_time, profile, speech=speech, speech_offset=0.1).violations == []
    off = tmp_path / "off.srt"
    _srt(off, {2: 0.25, 4: -0.3})
    found = check_file(off, profile, speech=speech, speech_offset=0.1).violations
    assert [(v.rule, v.cue) for v in found] == [("speech-start", 2), ("speech-start", 4)]
    assert "after its speech" in found[0].message and "before its speech" in found[1].message
    assert check_file(off, profile, speech=speech, speech_offset=0.35).violations == []
    assert check_file(off, profile).violations == []  # without the media: not checked


def test_cli_speech_offset(tmp_path):
    off = tmp_path / "off.srt"
    _srt(off, {3: 0.2})
    run = [sys.executable, "-m", "subtitler", "check", str(off), "--profile", "relaxed"]
    proc = subprocess.run([*run, "--video", str(VOICES), "--speech-offset", "100"], capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cue 3 at 00:00:08.986: starts 0.1" in proc.stdout  # 0.2 s after the aligned start
    assert proc.stdout.count("s after its speech") == 1 and "[speech-start]" in proc.stdout
    ignored = subprocess.run([*run, "--video", str(VOICES), "--speech-offset", "100", "--ignore",
                              "speech-start"], capture_output=True, text=True)
    assert ignored.returncode == 0, ignored.stdout
    alone = subprocess.run([*run, "--speech-offset", "100"], capture_output=True, text=True)
    assert alone.returncode == 2 and "--speech-offset needs --video" in alone.stderr
