"""Burn-in fits the picture, and what cannot be written is refused before any work.

Real media made with ffmpeg; burned frames are compared with frames of the same video
re-encoded without subtitles, so only the drawn pixels differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import srt

from subtitler.media import find_tools

from .conftest import SAMPLE, ffmpeg

W, H = 640, 360
LONG = "This is a rather long subtitle line that\nwill not fit at a large font size"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def write_srt(path: Path, text: str, start: float = 1.0, end: float = 4.0) -> Path:
    import datetime

    cue = srt.Subtitle(1, datetime.timedelta(seconds=start), datetime.timedelta(seconds=end), text)
    path.write_text(srt.compose([cue]), encoding="utf-8")
    return path


def frame(path: Path, t: float) -> np.ndarray:
    out = subprocess.run([find_tools().ffmpeg, "-v", "error", "-ss", str(t), "-i", str(path),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True)
    return np.frombuffer(out.stdout, np.uint8).reshape(H, W).astype(np.int16)


def burn_and_plain(folder: Path, source: str, text: str, *options: str) -> tuple[Path, Path]:
    """A 640x360 clip from the lavfi `source`, burned with `options`, beside a plain re-encode."""
    video = folder / "v.mp4"
    spec = f"{source}{':' if '=' in source else '='}size={W}x{H}:rate=25:duration=5"
    ffmpeg("-f", "lavfi", "-i", spec, "-c:v", "libx264",
           "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", str(video))
    subs = write_srt(folder / "v.srt", text)
    proc = run("burn", str(video), str(subs), "-o", str(folder / "burned.mp4"), "--crf", "10",
               "--preset", "ultrafast", *options)
    assert proc.returncode == 0, proc.stderr
    plain = folder / "plain.mp4"
    ffmpeg("-i", str(video), "-c:v", "libx264", "-crf", "10", "-preset", "ultrafast", str(plain))
    return folder / "burned.mp4", plain


def bands(rows: np.ndarray) -> int:
    """Runs of consecutive True rows: the text lines drawn."""
    return int(np.sum(rows[1:] & ~rows[:-1]) + rows[0])


# --- 5: burn-in fits the picture -----------------------------------------------------------------

def test_long_lines_at_a_large_size_wrap_inside_the_picture(tmp_path):
    """--font-size 48 on 640x360: a 40-character line is ~1000 px wide; it ran off both edges."""
    burned, plain = burn_and_plain(tmp_path, "color=c=0x204060", LONG, "--font-size", "48")
    text = np.abs(frame(burned, 2.5) - frame(plain, 2.5)) > 40
    assert text.sum() > 2000  # the cue is drawn
    assert not text[:, :4].any() and not text[:, -4:].any(), "text touches the picture's left/right edge"
    assert bands(text.any(axis=1)) >= 3  # wrapped onto more lines than the cue's two
    gone = np.abs(frame(burned, 4.5) - frame(plain, 4.5)) > 40
    assert not gone.any()  # and nothing after the cue


def behind_text(burned: Path, plain: Path) -> tuple[np.ndarray, np.ndarray]:
    """The burned and plain pixels inside the subtitle's box, away from the (white) letters."""
    out, under = frame(burned, 2.5), frame(plain, 2.5)
    changed = np.abs(out - under) > 40
    changed[: H // 2] = False  # the subtitle is at the bottom
    rows, cols = np.nonzero(changed)
    box = np.zeros_like(changed)
    box[rows.min() + 3: rows.max() - 2, cols.min() + 3: cols.max() - 2] = True  # a few px in from its edge
    near_text = out > 180  # the white letters
    for _ in range(3):  # grow the letters by 3 px: their anti-aliased edges are neither
        near_text = near_text | np.roll(near_text, 1, 0) | np.roll(near_text, -1, 0) \
            | np.roll(near_text, 1, 1) | np.roll(near_text, -1, 1)
    background = box & ~near_text
    assert background.sum() > 2000
    return out[background], under[background]


def test_box_is_opaque(tmp_path):
    """--box hides the picture behind the text: one uniform colour, however busy the video."""
    burned, plain = burn_and_plain(tmp_path, "testsrc2", "BOXED WORDS HERE", "--font-size", "40", "--box")
    out, under = behind_text(burned, plain)
    assert under.std() > 20  # a busy picture there...
    assert out.std() < 3 and out.max() < 30  # ...covered by black


def test_back_colour_with_alpha_lets_the_picture_through(tmp_path):
    burned, plain = burn_and_plain(tmp_path, "testsrc2", "SEE THROUGH", "--font-size", "40", "--box",
                                   "--back-colour", "#00000080")
    out, under = behind_text(burned, plain)
    assert np.corrcoef(out, under)[0, 1] > 0.8  # the picture shows through


def test_uninstalled_font_is_an_error_not_a_silent_fallback(tmp_path):
    video = tmp_path / "v.mp4"
    ffmpeg("-f", "lavfi", "-i", f"color=size={W}x{H}:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
           str(video))
    subs = write_srt(tmp_path / "v.srt", "Hello")
    proc = run("burn", str(video), str(subs), "--font", "No Such Font Sans")
    assert proc.returncode == 13
    assert proc.stderr.strip().splitlines() == [
        f"subtitler: error: {video}: font 'No Such Font Sans' is not installed (libass would silently "
        "draw another one): install it, or pick one of `fc-list : family`"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4", "v.srt"]
    # An installed one, named as fontconfig knows it in any case, is fine.
    proc = run("burn", str(video), str(subs), "--font", "dejavu sans", "--preset", "ultrafast")
    assert proc.returncode == 0, proc.stderr


# --- 6: check before working -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(media_dir: Path) -> dict[str, Path]:
    """4 s of speech as H.264/AAC MP4, and its audio alone as M4A."""
    clip = media_dir / "checks.mp4"
    ffmpeg("-i", str(SAMPLE), "-t", "4", "-c", "copy", str(clip))
    audio = media_dir / "checks.m4a"
    ffmpeg("-i", str(clip), "-vn", "-c", "copy", str(audio))
    return {"mp4": clip, "m4a": audio}


def test_mux_and_burn_together_is_a_usage_error(inputs, tmp_path):
    out = tmp_path / "out"
    proc = run(str(inputs["mp4"]), "--mux", "--burn", "--model", "tiny.en", "-o", str(out))
    assert proc.returncode == 2 and "--mux and --burn cannot be used together" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("name,args,message", [
    ("mp4", ["--mux", "--video-format", "webm"], "WebM takes only VP8/VP9/AV1 video and Opus/Vorbis audio"),
    ("m4a", ["--burn"], "no video stream to burn subtitles into"),
    ("m4a", ["--mux", "--video-format", "mkv"], "no video stream to add subtitle tracks to"),
    ("mp4", ["--burn", "--encoder", "nosuchenc"], "Unknown encoder 'nosuchenc'"),
    ("mp4", ["--burn", "--preset", "nosuchpreset"], "invalid preset 'nosuchpreset'"),
    ("mp4", ["--burn", "--video-format", "webm"], "WebM takes only Opus/Vorbis audio"),
    ("mp4", ["--burn", "--font", "No Such Font Sans"], "font 'No Such Font Sans' is not installed"),
])
def test_what_cannot_be_written_is_refused_before_transcribing(inputs, tmp_path, name, args, message):
    out, report = tmp_path / "out", tmp_path / "report.json"
    proc = run(str(inputs[name]), *args, "--model", "tiny.en", "-o", str(out), "--report", str(report))
    assert proc.returncode == 13, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subtitler: error: ") and message in lines[0], lines
    assert str(inputs[name]) in lines[0] or inputs[name].name in lines[0]
    entry = json.loads(report.read_text())["inputs"][0]
    assert entry["status"] == "failed" and not entry["decoded"] and "transcribe" not in entry["timings"]
    assert not out.exists()  # nothing written, not even the subtitle files


def test_python_api_refuses_before_the_engine(inputs, tmp_path):
    from subtitler.errors import VideoError
    from subtitler.events import Stage, StageStarted
    from subtitler.pipeline import Subtitler, VideoSettings

    seen = []
    pipeline = Subtitler(backend="faster-whisper", model="tiny.en", output_dir=tmp_path,
                         video=VideoSettings("burn"), events=[seen.append])
    with pytest.raises(VideoError, match="no video stream"):
        pipeline.subtitle(inputs["m4a"])
    assert list(tmp_path.iterdir()) == []
    assert not [e for e in seen if isinstance(e, StageStarted) and e.stage == Stage.LOAD_MODEL]  # no model


@pytest.mark.engine
@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_truncated_file_warns_how_much_was_read(tmp_path, container):
    """Half the bytes of a 20 s file: ffmpeg decodes about 10 s without an error."""
    whole = tmp_path / f"whole.{container}"
    ffmpeg("-i", str(SAMPLE), "-t", "20", "-c", "copy", *(["-movflags", "+faststart"] if container == "mp4"
                                                          else []), str(whole))
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{container}"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    proc = run(str(cut), "--model", "tiny.en", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "could be decoded" in line]
    assert len(warnings) == 1, proc.stderr
    read, total = (float(w) for w in
                   warnings[0].split(": only ")[1].split(" s of audio")[0].split(" s of its "))
    assert 7 < read < 13 and 19.5 < total < 20.5
    assert warnings[0].startswith(f"subtitler: warning: {cut}: only ")
    cues = list(srt.parse((out / "cut.srt").read_text()))
    assert cues and cues[-1].end.total_seconds() <= read + 0.5  # what was read is subtitled


def test_burn_typed_overrides_mux_from_the_config_file(inputs, tmp_path):
    (tmp_path / "subtitler.toml").write_text("[run]\nmux = true\n")
    # The audio input is refused either way; the message says which mode won.
    proc = run(str(inputs["m4a"]), "--burn", "--dry-run", cwd=tmp_path)
    assert "no video stream to burn subtitles into" in proc.stdout, proc.stdout + proc.stderr
    (tmp_path / "subtitler.toml").write_text("[run]\nmux = true\nburn = true\n")
    proc = run(str(inputs["m4a"]), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2 and "--mux and --burn cannot be used together" in proc.stderr
