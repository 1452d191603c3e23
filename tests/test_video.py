"""Into the video: soft tracks and burn-in, checked with ffprobe, stream hashes and decoded frames."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import srt

from subtitler.media import find_tools

from .conftest import SAMPLE, ffmpeg

CUES = [(1.0, 2.5, "First cue, early."), (3.0, 4.4, "A second one\non two lines."), (5.0, 7.0, "Last.")]


def _srt(path: Path, cues=CUES) -> Path:
    path.write_text(srt.compose([srt.Subtitle(i, _td(a), _td(b), t) for i, (a, b, t) in enumerate(cues, 1)]),
                    encoding="utf-8")
    return path


def _td(seconds: float):
    import datetime

    return datetime.timedelta(seconds=seconds)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def ffprobe_streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"]


def stream_hashes(path: Path) -> list[str]:
    """MD5 of every video and audio packet, per stream: equal means copied, not re-encoded."""
    out = subprocess.run([find_tools().ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v", "-map", "0:a",
                          "-c", "copy", "-f", "streamhash", "-hash", "md5", "-"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def extract_cues(path: Path, index: int = 0) -> list[tuple[float, float, str]]:
    """The track's cues, read back through ffmpeg (as ASS, so styled tracks compare as plain text)."""
    import pysubs2

    out = subprocess.run([find_tools().ffmpeg, "-v", "error", "-i", str(path), "-map", f"0:s:{index}",
                          "-f", "ass", "-"], capture_output=True, text=True, check=True)
    return [(e.start / 1000, e.end / 1000, e.plaintext) for e in pysubs2.SSAFile.from_string(out.stdout)]


@pytest.fixture(scope="module")
def clips(media_dir) -> dict[str, Path]:
    """8 s of the sample as H.264/AAC MP4 and MKV, and as VP9/Opus WebM."""
    mp4 = media_dir / "v.mp4"
    ffmpeg("-i", str(SAMPLE), "-t", "8", "-c", "copy", str(mp4))
    mkv = media_dir / "v.mkv"
    ffmpeg("-i", str(mp4), "-c", "copy", str(mkv))
    webm = media_dir / "v.webm"
    ffmpeg("-i", str(mp4), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k",
           "-c:a", "libopus", str(webm))
    return {"mp4": mp4, "mkv": mkv, "webm": webm}


@pytest.mark.parametrize("container,subs_ext,codec", [
    ("mp4", "srt", "mov_text"), ("mkv", "srt", "subrip"), ("mkv", "ass", "ass"), ("webm", "srt", "webvtt"),
])
def test_mux_copies_streams_and_adds_a_tagged_track(clips, tmp_path, container, subs_ext, codec):
    source = clips[container]
    subs = _srt(tmp_path / "clip.srt")
    if subs_ext == "ass":
        import pysubs2

        pysubs2.load(str(subs)).save(str(tmp_path / "clip.fr.ass"))
        subs = tmp_path / "clip.fr.ass"
    out = tmp_path / f"out.{container}"
    proc = run("mux", str(source), str(subs), "-o", str(out), "-l", "fr", "--default-track")
    assert proc.returncode == 0, proc.stderr
    streams = ffprobe_streams(out)
    subtitle = [s for s in streams if s["codec_type"] == "subtitle"]
    assert len(subtitle) == 1 and subtitle[0]["codec_name"] == codec
    tags = {k.lower(): v for k, v in subtitle[0].get("tags", {}).items()}
    # MP4 names a track by its handler; the others have a title tag.
    assert tags["language"] == "fre" and tags.get("title", tags.get("handler_name")) == "French"
    assert subtitle[0]["disposition"]["default"] == 1
    assert stream_hashes(out) == stream_hashes(source)  # nothing re-encoded
    got = extract_cues(out)
    assert [t for _, _, t in got] == [t for _, _, t in CUES]
    for (a, b, _), (x, y, _) in zip(got, CUES, strict=True):
        assert abs(a - x) <= 0.05 and abs(b - y) <= 0.05  # MKV/WebM shift by the container start


def test_mux_keeps_existing_tracks_and_never_touches_the_input(clips, tmp_path):
    first = tmp_path / "one.mkv"
    assert run("mux", str(clips["mkv"]), str(_srt(tmp_path / "a.en.srt")), "-o", str(first)).returncode == 0
    before = first.read_bytes()
    second = tmp_path / "two.mkv"
    proc = run("mux", str(first), str(_srt(tmp_path / "b.de.srt", CUES[:1])), "-o", str(second))
    assert proc.returncode == 0, proc.stderr
    langs = [s["tags"]["language"] for s in ffprobe_streams(second) if s["codec_type"] == "subtitle"]
    assert langs == ["eng", "ger"]
    assert first.read_bytes() == before
    # An existing file that subtitler did not make is kept without --overwrite.
    theirs = tmp_path / "theirs.mkv"
    theirs.write_bytes(before)
    proc = run("mux", str(first), str(tmp_path / "b.de.srt"), "-o", str(theirs))
    assert proc.returncode == 7 and "--overwrite" in proc.stderr


def test_container_that_cannot_take_the_codec(clips, tmp_path):
    proc = run("mux", str(clips["mp4"]), str(_srt(tmp_path / "s.srt")), "-o", str(tmp_path / "x.webm"))
    assert proc.returncode == 13 and "WebM takes only VP8/VP9/AV1" in proc.stderr
    proc = run("mux", str(clips["mp4"]), str(tmp_path / "s.srt"), "-o", str(tmp_path / "x.avi"))
    assert proc.returncode == 13 and "cannot carry soft subtitles" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.srt"]


def _gray_frame(path: Path, t: float) -> np.ndarray:
    out = subprocess.run([find_tools().ffmpeg, "-v", "error", "-ss", str(t), "-i", str(path),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True)
    return np.frombuffer(out.stdout, np.uint8).reshape(180, 320).astype(np.int16)


@pytest.fixture(scope="module")
def burned(clips, tmp_path_factory):
    """The clip burned in, from a file name that breaks naive filter strings, beside a plain re-encode."""
    folder = tmp_path_factory.mktemp("burn") / "dir with space"
    folder.mkdir()
    video = folder / "it's a: clip,[1].mp4"
    video.write_bytes(clips["mp4"].read_bytes())
    subs = _srt(folder / "sub,[1]: it's.srt", [(2.0, 4.0, "BURNED IN TEXT")])
    proc = run("burn", str(video), str(subs), "--font-size", "28", "--crf", "18", "--preset", "ultrafast")
    assert proc.returncode == 0, proc.stderr
    out = folder / "it's a: clip,[1].subtitled.mp4"
    plain = folder / "plain.mp4"
    ffmpeg("-i", str(video), "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-crf", "18",
           "-preset", "ultrafast", "-c:a", "copy", str(plain))
    return video, out, plain


def test_burn_draws_text_only_in_the_subtitle_region_during_the_cue(burned):
    video, out, plain = burned
    # The audio is copied: its packets are identical (the second hash line).
    assert stream_hashes(out)[1] == stream_hashes(video)[1]
    during = np.abs(_gray_frame(out, 3.0) - _gray_frame(plain, 3.0))
    bottom, top = during[120:, :], during[:100, :]  # subtitles sit at the bottom of a 180 px picture
    assert bottom.max() > 100 and (bottom > 60).sum() > 300  # text drawn
    assert top.mean() < 2.0  # elsewhere only encoding noise
    between = np.abs(_gray_frame(out, 5.5) - _gray_frame(plain, 5.5))
    assert between.max() < 60 and between.mean() < 2.0  # no text after the cue


def test_burn_without_video_or_with_a_bad_encoder_leaves_nothing(clips, tmp_path):
    subs = _srt(tmp_path / "s.srt")
    audio_only = tmp_path / "a.m4a"
    ffmpeg("-i", str(clips["mp4"]), "-vn", "-c", "copy", str(audio_only))
    proc = run("burn", str(audio_only), str(subs))
    assert proc.returncode == 13 and "no video stream" in proc.stderr
    proc = run("burn", str(clips["mp4"]), str(subs), "-o", str(tmp_path / "o.mp4"), "--encoder", "nope264")
    assert proc.returncode == 13 and "Unknown encoder 'nope264'" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.m4a", "s.srt"]


def test_unwritable_output_folder(clips, tmp_path):
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    proc = run("mux", str(clips["mp4"]), str(_srt(tmp_path / "s.srt")), "-o", "/proc/out.mp4")
    assert proc.returncode == 12 and "cannot write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_disk_full_leaves_no_output(clips, tmp_path):
    """ffmpeg hits a file size limit (as on a full disk): the error is reported, nothing is left."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG like ENOSPC, not a kill

    subs = _srt(tmp_path / "s.srt")
    proc = run("mux", str(clips["mp4"]), str(subs), "-o", str(tmp_path / "o.mp4"), preexec_fn=limit)
    assert proc.returncode == 13 and "ffmpeg failed" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.srt"]


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    long = tmp_path / "long.mp4"
    ffmpeg("-stream_loop", "3", "-i", str(SAMPLE), "-c", "copy", str(long))
    subs = _srt(tmp_path / "s.srt")
    before = sorted(p.name for p in tmp_path.iterdir())
    # SIGINT as a terminal would deliver it: a test run in the background (make test-fast's second
    # half) inherits it ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", "burn", str(long), str(subs),
                             "--preset", "veryslow", "--crf", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not any(".part" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "burn finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.engine
def test_run_mux_with_translate_adds_an_english_track(clips, tmp_path):
    """One engine run per task: the given language's track, then an English translation."""
    proc = run(str(clips["mp4"]), "--mux", "--model", "base", "--language", "fr", "--task", "translate",
               "--beam-size", "1", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "v.subtitled.mp4"
    subtitle = [s for s in ffprobe_streams(out) if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subtitle] == ["fre", "eng"]
    assert [s["tags"]["handler_name"] for s in subtitle] == ["French", "English"]
    english = " ".join(t for _, _, t in extract_cues(out, 1))
    assert "Dashwood" in english
    assert stream_hashes(out) == stream_hashes(clips["mp4"])


def test_missing_glyphs_are_warned_about(clips, tmp_path):
    import shutil

    subs = _srt(tmp_path / "zh.srt", [(1.0, 3.0, "我们今天去公园")])
    proc = run("burn", str(clips["mp4"]), str(subs), "-o", str(tmp_path / "o.mp4"), "--preset", "ultrafast")
    assert proc.returncode == 0, proc.stderr
    has_cjk_font = bool(subprocess.run([shutil.which("fc-list") or "fc-list", ":charset=6211", "family"],
                                       capture_output=True, text=True).stdout.strip())
    warned = "no installed font has" in proc.stderr and "fonts-noto-cjk" in proc.stderr
    assert warned != has_cjk_font


@pytest.mark.engine
def test_run_mux_adds_existing_tracks_and_shows_ffmpeg_progress(clips, tmp_path):
    extra = _srt(tmp_path / "notes.de.srt", CUES[:1])
    out_dir = tmp_path / "out"
    proc = run(str(clips["mkv"]), "--mux", "--add-track", str(extra), "--default-track", "--progress",
               "-o", str(out_dir))
    assert proc.returncode == 0, proc.stderr
    out = out_dir / "v.subtitled.mkv"
    subtitle = [s for s in ffprobe_streams(out) if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subtitle] == ["eng", "ger"]
    assert [s["disposition"]["default"] for s in subtitle] == [1, 0]
    assert "v.mkv mux" in proc.stderr  # the ffmpeg pass has its own progress bar
    assert stream_hashes(out) == stream_hashes(clips["mkv"])
