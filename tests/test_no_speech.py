"""Media without speech, or without audio, is a normal case: empty subtitles are valid, --mux works,
check --require-subs asks nothing of a video without audio, and a silent first audio stream beside
one with sound gets a hint to use --audio-stream. All media is made with ffmpeg."""

from __future__ import annotations

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


@pytest.mark.engine
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


@pytest.mark.engine
def test_video_without_audio_gets_empty_subtitles_that_require_subs_accepts(tmp_path):
    picture(tmp_path / "videos" / "mute.mp4")  # no audio stream at all
    (tmp_path / "subtitler.toml").write_text('format = ["srt", "vtt"]\nbackend = "faster-whisper"\n'
                                             'model = "tiny.en"\n')
    run = subtitler("videos", "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr  # was 5: "no audio stream", nothing written, every run
    assert "videos/mute.mp4: no audio stream; the subtitles are empty" in run.stderr
    srt = tmp_path / "videos" / "mute.srt"
    assert srt.read_text() == "" and (tmp_path / "videos" / ".subtitler.json").is_file()  # recorded
    proc = subtitler("check", "--require-subs", "videos", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout  # was 1: "missing", forever
    assert proc.stdout.splitlines() == ["videos/mute.srt: ok (0 cues)", "videos/mute.vtt: ok (0 cues)"]
    again = subtitler("videos", "--no-progress", "--dry-run", cwd=tmp_path)
    assert again.stdout.startswith("up-to-date\t"), again.stdout + again.stderr
    # --mux: the copy gets an empty track; an audio stream that is not there is still an error.
    muxed = subtitler(str(tmp_path / "videos" / "mute.mp4"), "-o", str(tmp_path / "out"), "--mux", *ENGINE)
    assert muxed.returncode == 0, muxed.stderr
    assert probe(tmp_path / "out" / "mute.subtitled.mp4").subtitles == ["mov_text"]
    wrong = subtitler(str(SAMPLE), "-o", str(tmp_path / "out"), "--audio-stream", "1", *ENGINE)
    assert wrong.returncode == 5 and "no audio stream 1" in wrong.stderr


@pytest.fixture(scope="module")
def job(fw_backend, tmp_path_factory):
    from subtitler import Subtitler

    warnings: list[str] = []
    pipeline = Subtitler(backend="faster-whisper", formats=["srt"], output_dir=tmp_path_factory.mktemp("out"),
                         overwrite=True, warn=warnings.append, engine=fw_backend,
                         cache=False)  # each test hears its input: the warnings come from hearing
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
