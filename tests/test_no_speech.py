"""Media without speech, or without audio, is a normal case: empty subtitles are valid, --mux works,
check --require-subs asks nothing of a video without audio, and a silent first audio stream beside
one with sound gets a hint to use --audio-stream. All media is made with ffmpeg."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from subtitler.media import probe

from .conftest import SAMPLE, ffmpeg

ENGINE = ("-b", "faster-whisper", "-m", "tiny.en")


def subtitler(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def picture(out: Path, *audio: str) -> Path:
    """3 s of test picture, with the given ffmpeg audio inputs as streams (none: no audio stream)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=10"]
    maps = ["-map", "0:v"]
    for n, source in enumerate(audio, 1):
        inputs += ["-f", "lavfi", "-i", source] if source.startswith("anullsrc") else ["-i", source]
        maps += ["-map", f"{n}:a"]
    ffmpeg(*inputs, *maps, "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out))
    return out


SILENCE = "anullsrc=r=16000:cl=mono"


def test_silent_video_mux_exits_zero_with_an_empty_track(tmp_path):
    video = picture(tmp_path / "silent.mp4", SILENCE)
    proc = subtitler(str(video), "-f", "srt,vtt,ass", "--mux", *ENGINE)
    assert proc.returncode == 0, proc.stderr  # was 13: ffmpeg cannot read an SRT without cues
    assert "no speech found" in proc.stderr
    muxed = tmp_path / "silent.subtitled.mp4"
    assert probe(muxed).subtitles == ["mov_text"]  # an empty track
    subs = [tmp_path / f"silent.{ext}" for ext in ("srt", "vtt", "ass")]
    assert subs[0].read_text() == ""
    checked = subtitler("check", *map(str, subs), "--video", str(video))
    assert checked.returncode == 0, checked.stdout  # was 2 for the SRT: "not a subtitle file"
    assert checked.stdout.splitlines() == [f"{p}: ok (0 cues)" for p in subs]
    # The mux command takes an empty file too; MKV gets an empty SRT track.
    made = subtitler("mux", str(video), str(subs[0]), "-o", str(tmp_path / "again.mkv"))
    assert made.returncode == 0, made.stderr
    assert probe(tmp_path / "again.mkv").subtitles == ["subrip"]


def test_require_subs_needs_nothing_for_a_video_without_audio(tmp_path):
    picture(tmp_path / "videos" / "mute.mp4")
    (tmp_path / "subtitler.toml").write_text('format = ["srt"]\n')
    run = subtitler("videos", "--no-progress", *ENGINE, cwd=tmp_path)
    assert run.returncode == 1 and "no audio stream" in run.stderr  # nothing to transcribe, nothing written
    assert not (tmp_path / "videos" / "mute.srt").exists()
    for _ in range(2):  # the same however often run has been
        proc = subtitler("check", "--require-subs", "videos", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout  # was 1: "missing", forever
        assert proc.stdout.splitlines() == ["videos/mute.mp4: ok (no audio stream: needs no subtitles)"]
        assert subtitler("videos", "--no-progress", *ENGINE, cwd=tmp_path).returncode == 1
    report = json.loads(subtitler("check", "--require-subs", "videos", "--json", cwd=tmp_path).stdout)
    assert [(f["path"], f["note"], f["violations"]) for f in report["files"]] == [
        ("videos/mute.mp4", "no audio stream: needs no subtitles", [])]


@pytest.fixture(scope="module")
def job(fw_backend, tmp_path_factory):
    from subtitler import Subtitler

    warnings: list[str] = []
    pipeline = Subtitler(backend="faster-whisper", formats=["srt"], output_dir=tmp_path_factory.mktemp("out"),
                         overwrite=True, warn=warnings.append)
    pipeline._engine = fw_backend
    return pipeline, warnings


def test_silent_first_audio_stream_hints_at_another(job, tmp_path):
    pipeline, warnings = job
    two = picture(tmp_path / "two.mp4", SILENCE, str(SAMPLE))  # stream 0 silent, stream 1 the reader
    warnings.clear()
    assert pipeline.subtitle(two).transcript.words == []
    assert len(warnings) == 1
    assert "no speech found" in warnings[0] and "try --audio-stream 1" in warnings[0]
    # One silent stream: nothing to hint at.
    warnings.clear()
    pipeline.subtitle(picture(tmp_path / "one.mp4", SILENCE))
    assert len(warnings) == 1 and "--audio-stream" not in warnings[0]
