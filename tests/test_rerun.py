"""Every output right, every re-run clean.

- A transcript cached for one file never brings that file's clock (or picture)
  into another file with the same audio.
- Every way of writing outputs records them in the manifest, so running the
  same command (or calling subtitle()) twice is never an error, and a killed
  run resumes.
- Two runs writing one output folder at once lose no manifest entry, and the
  temporary files of killed writers are removed, never those of live ones.

Everything runs for real: media made by ffmpeg, the command line in
subprocesses, SIGKILL, two processes racing.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import srt

from subtitler.errors import OutputExists
from subtitler.transcript import Transcript

from .conftest import SAMPLE, ffmpeg, made


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def starts(path: Path) -> list[float]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".vtt":  # srt parses WebVTT cues once the header and the dots are gone
        text = text.split("\n\n", 1)[1].replace(".", ",")
    return [c.start.total_seconds() for c in srt.parse(text)]


def play_res(path: Path) -> tuple[str, str]:
    info = dict(line.split(": ", 1) for line in path.read_text().splitlines() if line.startswith("PlayRes"))
    return info["PlayResX"], info["PlayResY"]


def summary(report: Path) -> dict:
    return json.loads(report.read_text())["summary"]


def manifest_entries(folder: Path) -> dict:
    return json.loads((folder / ".subtitler.json").read_text())["outputs"]


def parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture(scope="module")
def same_audio(tmp_path_factory) -> dict[str, Path]:
    """The sample's first 8 s of speech three times, the audio stream copied bit for bit: as it
    is, muxed to start 2 s after the picture (-itsoffset 2), and under a 640x360 picture."""
    root = tmp_path_factory.mktemp("same-audio")
    plain, late, big = root / "plain.mkv", root / "late.mkv", root / "big.mkv"
    ffmpeg("-i", str(SAMPLE), "-t", "8", "-map", "0:v", "-map", "0:a", "-c", "copy", str(plain))
    ffmpeg("-i", str(plain), "-itsoffset", "2", "-i", str(plain), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(late))
    ffmpeg("-i", str(plain), "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "copy", str(big))
    return {"plain": plain, "late": late, "big": big}


@pytest.mark.engine
def test_a_cached_transcript_takes_each_files_own_clock_and_picture(same_audio, tmp_path):
    """A, then B (same audio, 2 s later), then A again from the cache: A must not come out 2 s late."""
    out = tmp_path / "subs"
    for name in ("plain", "late", "big"):  # one at a time: each file stores the shared transcript
        proc = run(same_audio[name], "-o", out, "-f", "srt")
        assert proc.returncode == 0, proc.stderr
    plain = starts(out / "plain.srt")
    assert plain and starts(out / "late.srt") == pytest.approx([t + 2 for t in plain], abs=0.01)
    assert starts(out / "big.srt") == pytest.approx(plain, abs=0.01)

    # A layout change: each file renders from the one cached transcript of their common audio.
    again = run(*same_audio.values(), "-o", out, "-f", "vtt,ass,json", "--report", tmp_path / "r.json")
    assert again.returncode == 0, again.stderr
    assert summary(tmp_path / "r.json")["rendered"] == 3
    assert summary(tmp_path / "r.json")["decoded"] == 0
    assert starts(out / "plain.vtt") == pytest.approx(plain, abs=0.01)
    assert starts(out / "late.vtt") == pytest.approx([t + 2 for t in plain], abs=0.01)
    assert starts(out / "big.vtt") == pytest.approx(plain, abs=0.01)
    assert play_res(out / "plain.ass") == play_res(out / "late.ass") == ("320", "180")
    assert play_res(out / "big.ass") == ("640", "360")
    for name in ("plain", "late", "big"):
        source = Transcript.load(out / f"{name}.json").source
        assert source.input == f"{name}.mkv"
    assert Transcript.load(out / "late.json").source.offset == pytest.approx(
        Transcript.load(out / "plain.json").source.offset + 2, abs=0.01)
    assert Transcript.load(out / "late.json").source.video_duration > 9.9  # its own duration


def test_old_transcript_json_with_shifted_times_renders_the_same(tmp_path):
    """A transcript saved before (times on the picture's clock, meta.offset) loads and renders as then."""
    old = {"schema": "subtitler.transcript", "version": 1, "language": "en", "duration": 8.0,
           "meta": {"input": "late.mkv", "offset": 2.0,
                    "video": {"width": 640, "height": 360, "duration": 10}},
           "segments": [{"start": 2.5, "end": 4.0, "text": " Hello there.",
                         "words": [{"start": 2.5, "end": 3.0, "text": " Hello"},
                                   {"start": 3.1, "end": 4.0, "text": " there."}]}]}
    (tmp_path / "late.json").write_text(json.dumps(old))
    proc = run("render", tmp_path / "late.json", "-f", "srt,ass", "-o", tmp_path / "subs")
    assert proc.returncode == 0, proc.stderr
    assert starts(tmp_path / "subs/late.srt") == [2.5]
    assert play_res(tmp_path / "subs/late.ass") == ("640", "360")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Ten 3 s clips of speech (audio only: quick to decode)."""
    root = tmp_path_factory.mktemp("clips")
    for n in range(10):
        ffmpeg("-ss", str(n * 2.1), "-t", "3", "-i", str(SAMPLE), "-vn", "-c:a", "copy",
               str(root / f"c{n}.m4a"))
    return root


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.engine
def test_no_cache_runs_twice_and_resumes_after_a_kill(clips, tmp_path):
    out = tmp_path / "subs"
    one = clips / "c0.m4a"
    assert run(one, "-o", out, "--no-cache").returncode == 0
    second = run(one, "-o", out, "--no-cache", "--report", tmp_path / "r0.json")
    assert second.returncode == 0, second.stderr  # was exit 7: its own output "already exists"
    assert summary(tmp_path / "r0.json")["up-to-date"] == 1

    proc = subprocess.Popen([sys.executable, "-m", "subtitler", str(clips), "-o", str(out), "--no-cache"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(made(out)) >= 4)
    finished = len(made(out))
    assert 4 <= finished < 10, "the run ended before it could be killed"
    again = run(clips, "-o", out, "--no-cache", "--report", tmp_path / "r.json")
    assert again.returncode == 0, again.stderr
    assert summary(tmp_path / "r.json")["up-to-date"] >= finished - 1
    assert all(list(srt.parse((out / f"c{n}.srt").read_text())) for n in range(10))
    assert not parts(out)
    assert len(manifest_entries(out)) == 10
    assert not any(e.get("pending") for e in manifest_entries(out).values())


@pytest.fixture(scope="module")
def transcript_json(tmp_path_factory, clips) -> Path:
    root = tmp_path_factory.mktemp("json")
    assert run(clips / "c1.m4a", "-f", "json", "-o", root).returncode == 0
    return root / "c1.json"


def copies(transcript: Path, folder: Path, count: int) -> list[Path]:
    """`count` copies of a transcript in `folder`: t000.json, t001.json..."""
    folder.mkdir()
    names = [folder / f"t{n:03}.json" for n in range(count)]
    for name in names:
        shutil.copy(transcript, name)
    return names


def test_transcript_inputs_and_render_run_twice(transcript_json, tmp_path):
    commands = ([transcript_json, "-f", "srt,vtt"], ["render", transcript_json, "-f", "srt,vtt"])
    for n, command in enumerate(commands):
        out = tmp_path / f"subs{n}"
        first = run(*command, "-o", out)
        assert first.returncode == 0, first.stderr
        second = run(*command, "-o", out)
        assert second.returncode == 0, second.stderr  # was exit 7
        assert set(manifest_entries(out)) == {"c1.srt", "c1.vtt"}
        changed = run(*command, "-o", out, "--max-line-chars", "20")  # its own files: replaced
        assert changed.returncode == 0, changed.stderr


def test_render_killed_mid_run_then_rerun_finishes(transcript_json, tmp_path):
    names = copies(transcript_json, tmp_path / "in", 150)
    out = tmp_path / "subs"
    command = ["render", *names, "-f", "srt,vtt,ass,tsv,txt", "-o", out]
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", *map(str, command)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: len(made(out)) >= 20)
    finished = len(made(out))
    assert 20 <= finished < 150, "the run ended before it could be killed"
    again = run(*command)
    assert again.returncode == 0, again.stderr  # was exit 7 on the first file written
    assert not parts(out)  # the killed run's temporary files are gone
    assert len(manifest_entries(out)) == 5 * 150
    assert not any(e.get("pending") for e in manifest_entries(out).values())
    assert all(list(srt.parse(p.read_text())) for p in out.glob("*.srt"))


def test_python_subtitle_called_twice(transcript_json, clips, tmp_path):
    import subtitler

    saved = shutil.copy(transcript_json, tmp_path / "t.json")
    for _ in range(2):  # a transcript: no engine
        result = subtitler.subtitle(saved, formats=["srt", "vtt"], output_dir=tmp_path / "a")
    assert [p.name for p in result.outputs] == ["t.srt", "t.vtt"]
    clip = shutil.copy(clips / "c2.m4a", tmp_path / "c2.m4a")
    first = subtitler.subtitle(clip, backend="faster-whisper", model="tiny.en")
    second = subtitler.subtitle(clip, backend="faster-whisper", model="tiny.en")  # raised OutputExists
    assert first.outputs == second.outputs == [tmp_path / "c2.srt"]
    assert manifest_entries(tmp_path)["c2.srt"]["source"] == "c2.m4a"
    # A run of the command sees the files as its own, up to date.
    proc = run(clip, "-m", "tiny.en", "--backend", "faster-whisper", "--dry-run")
    assert proc.stdout.startswith("up-to-date\t"), proc.stdout + proc.stderr
    # Opting out: nothing recorded, so an existing file is refused as before.
    with pytest.raises(OutputExists):
        subtitler.subtitle(saved, formats=["srt"], output_dir=tmp_path / "b", record=False)
        subtitler.subtitle(saved, formats=["srt"], output_dir=tmp_path / "b", record=False)
    assert not (tmp_path / "b/.subtitler.json").exists()


def test_two_runs_writing_one_folder_at_once_lose_nothing(transcript_json, tmp_path):
    names = copies(transcript_json, tmp_path / "in", 80)
    out = tmp_path / "subs"
    runs = [subprocess.Popen([sys.executable, "-m", "subtitler", "render", *map(str, order), "-f", "srt,vtt",
                              "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for order in (names, names[::-1])]
    for proc in runs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    entries = manifest_entries(out)
    assert len(entries) == 160 and not any(e.get("pending") for e in entries.values())
    assert not parts(out)
    third = run("render", *names, "-f", "srt,vtt", "-o", out)
    assert third.returncode == 0, third.stderr


HOLD = """
import sys, time
from pathlib import Path
from subtitler import files
with files.atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_text("being written")
    print(tmp, flush=True)
    sys.stdin.readline()
"""


def test_killed_writers_temporary_files_go_live_ones_stay(transcript_json, tmp_path):
    out = tmp_path / "subs"
    assert run("render", transcript_json, "-o", out).returncode == 0
    # A writer of the manifest killed mid-write (SIGKILL), and a live writer of the subtitles.
    dead = subprocess.Popen([sys.executable, "-c", HOLD, str(out / ".subtitler.json")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dead_tmp = Path(dead.stdout.readline().strip())
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", HOLD, str(out / "c1.srt")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    live_tmp = Path(live.stdout.readline().strip())
    assert dead_tmp.name.startswith("..subtitler.") and dead_tmp.exists() and live_tmp.exists()

    proc = run("render", transcript_json, "-o", out, "--max-line-chars", "20")  # rewrites both
    assert proc.returncode == 0, proc.stderr
    assert not dead_tmp.exists()  # a killed run's: removed
    assert live_tmp.exists()  # a live process's: kept, and it finishes its file
    live.communicate("\n", timeout=30)
    assert live.returncode == 0 and (out / "c1.srt").read_text() == "being written"
    assert parts(out) == []


@pytest.mark.parametrize("command", ["mux", "burn"])
def test_mux_and_burn_commands_run_twice(command, tmp_path):
    """`subtitler mux|burn clip subs` again: up to date (nothing rewritten), exit 0; changed
    subtitles replace the video it made; a video it did not make is still refused."""
    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=2", "-i", str(SAMPLE), "-t", "2",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))
    subs = tmp_path / "clip.srt"
    subs.write_text("1\n00:00:00,200 --> 00:00:01,500\nFirst words\n")
    out = tmp_path / "clip.subtitled.mp4"
    first = run(command, clip, subs)
    assert first.returncode == 0 and first.stdout.strip() == str(out), first.stderr
    stamp = out.stat().st_mtime_ns
    again = run(command, clip, subs)
    assert again.returncode == 0 and again.stdout.strip() == str(out), again.stderr
    assert out.stat().st_mtime_ns == stamp  # up to date: not written again
    subs.write_text("1\n00:00:00,200 --> 00:00:01,500\nOther words\n")
    changed = run(command, clip, subs)
    assert changed.returncode == 0 and out.stat().st_mtime_ns != stamp, changed.stderr
    recorded = manifest_entries(tmp_path)[out.name]
    assert not recorded.get("pending")
    if command == "burn":  # refused (from the probe): the video and its entry stay as they were
        before = out.read_bytes()
        assert run(command, clip, subs, "--encoder", "nosuchenc").returncode == 13
        assert out.read_bytes() == before and manifest_entries(tmp_path)[out.name] == recorded
    theirs = tmp_path / "theirs.mp4"
    theirs.write_bytes(b"someone else's file")
    refused = run(command, clip, subs, "-o", theirs)
    assert refused.returncode == 7 and theirs.read_bytes() == b"someone else's file"
    assert theirs.name not in manifest_entries(tmp_path)
