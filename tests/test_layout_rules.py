"""The tool's output passes its own `check`: hard rules never break, fast speech is only a warning.

Seen before the fix: cues ran past the media's end (bbc, cjk), a cue crowded by the next one
lasted less than the minimum (cjk), and reading-speed overruns failed `check` like broken rules.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subtitler.check import WARNING_RULES, check_file
from subtitler.cues import build_cues
from subtitler.formats import get_format
from subtitler.media import probe
from subtitler.profiles import PROFILES
from subtitler.transcript import Segment, Transcript, Word

from .conftest import SAMPLE, ffmpeg

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _problems(transcript: Transcript, name: str, folder: Path, media_end: float) -> tuple[list, list]:
    """build_cues under profile `name`, written as SRT and checked: (violations, warnings)."""
    profile = PROFILES[name]
    path = folder / f"{name}.srt"
    cues = build_cues(transcript, profile)
    path.write_text(get_format("srt").dumps(transcript, cues, None), encoding="utf-8")
    report = check_file(path, profile, media_end)
    assert report.error is None
    return report.violations, report.warnings


@st.composite
def fast_transcripts(draw) -> Transcript:
    """Speech from slow to too fast for any profile (up to 30 characters a second, an auctioneer's
    pace), with pauses or none, and media that ends soon after the last word."""
    n = draw(st.integers(1, 120))
    t = draw(st.floats(1.0, 3.0))
    words = []
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.1, 0.3, 0.7, 1.5]))
        text = draw(st.text(_LETTERS, min_size=1, max_size=12)) + draw(st.sampled_from(["", "", ",", "."]))
        length = max(0.05, len(text) / draw(st.floats(8.0, 30.0)))
        words.append(Word(round(t, 3), round(t + length, 3), " " + text, 0.9))
        t += length
    duration = round(t + draw(st.floats(0.0, 0.6)), 3)
    segment = Segment(words[0].start, words[-1].end, "".join(w.text for w in words), words)
    return Transcript("en", duration, [segment], {})


@settings(max_examples=300, deadline=None)
@given(transcript=fast_transcripts(), name=st.sampled_from(sorted(PROFILES)))
def test_no_hard_rule_breaks_on_any_speech(tmp_path_factory, transcript, name):
    violations, warnings = _problems(transcript, name, tmp_path_factory.mktemp("p"), transcript.duration)
    assert violations == []
    assert {w.rule for w in warnings} <= WARNING_RULES


@pytest.fixture(scope="module")
def real_transcripts(fw_backend, tmp_path_factory) -> dict[str, tuple[Transcript, float]]:
    """The sample as read, and sped up 1.3x and 1.6x (faster than netflix's and bbc's reading
    speeds allow), transcribed by faster-whisper tiny.en; with each file's probed duration."""
    from subtitler import Subtitler

    folder = tmp_path_factory.mktemp("fast")
    job = Subtitler(backend="faster-whisper", formats=["json"], output_dir=folder, engine=fw_backend)
    media = {"sample": SAMPLE}
    for tempo in ("1.3", "1.6"):
        media[tempo] = folder / f"fast{tempo}.mp4"
        ffmpeg("-i", str(SAMPLE), "-filter:a", f"atempo={tempo}", "-filter:v", f"setpts=PTS/{tempo}",
               "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(media[tempo]))
    return {name: (job.transcribe(path), probe(path).duration) for name, path in media.items()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_real_transcripts_pass_check(real_transcripts, tmp_path, name):
    for clip, (transcript, duration) in real_transcripts.items():
        violations, warnings = _problems(transcript, name, tmp_path, duration)
        assert violations == [], (clip, [v.message for v in violations])
        assert {w.rule for w in warnings} <= WARNING_RULES
    if name == "netflix":  # the sample as read is within every rule, reading speed included
        transcript, duration = real_transcripts["sample"]
        assert _problems(transcript, name, tmp_path, duration) == ([], [])


@pytest.mark.engine
def test_bbc_subtitles_of_fast_speech_pass_check_end_to_end(tmp_path):
    clip = tmp_path / "clip.mp4"  # speech until 0.4 s before the end, faster than bbc's 15 CPS
    ffmpeg("-i", str(SAMPLE), "-filter:a", "atempo=1.3", "-filter:v", "setpts=PTS/1.3",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                              timeout=300)

    made = run(str(clip), "-f", "srt", "--profile", "bbc", "-b", "faster-whisper", "-m", "tiny.en")
    assert made.returncode == 0, made.stderr
    checked = run("check", str(tmp_path / "clip.srt"), "--profile", "bbc", "--video", str(clip))
    assert checked.returncode == 0, checked.stdout
    assert "[beyond-video]" not in checked.stdout
    assert "warning:" in checked.stdout and "[reading-speed]" in checked.stdout  # shown, not failing
    strict = run("check", str(tmp_path / "clip.srt"), "--profile", "bbc", "--video", str(clip), "--strict")
    assert strict.returncode == 1


def test_audio_cut_mid_speech_ends_with_its_cues(fw_backend, tmp_path):
    """An AAC file decodes to more audio than its container says it lasts (7.36 s for 7.30 s):
    cues end by the duration `check --video` reads, speech running to the very end."""
    from subtitler import Subtitler

    audio = tmp_path / "cut.m4a"
    ffmpeg("-i", str(SAMPLE), "-t", "7.3", "-vn", str(audio))  # mid-word: "...do for them."
    job = Subtitler(backend="faster-whisper", formats=["srt"], output_dir=tmp_path, profile=PROFILES["bbc"],
                    engine=fw_backend)
    result = job.subtitle(audio)
    report = check_file(result.outputs[0], PROFILES["bbc"], probe(audio).duration)
    assert report.violations == [], [v.message for v in report.violations]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_word_longer_than_a_line_is_wrapped(tmp_path, name):
    url = "https://example.org/" + "very-long-path/" * 6  # 110 characters, one "word"
    words = [Word(1.0, 1.4, " See"), Word(1.4, 3.5, " " + url), Word(3.5, 3.9, " today.")]
    transcript = Transcript("en", 9.0, [Segment(1.0, 3.9, "".join(w.text for w in words), words)])
    violations, _ = _problems(transcript, name, tmp_path, 9.0)
    assert violations == []
    text = "".join(e.plaintext for e in pysubs2.load(str(tmp_path / f"{name}.srt")))
    assert "".join(text.split()) == f"See{url}today."  # every character kept, in order
