"""Stopping the real CLI with real signals: SIGTERM as Ctrl-C, no ffmpeg outliving it, no temporary
folder left in $TMPDIR.

Each test runs `python -m subtitler` in a subprocess with TMPDIR set to a fresh
folder, and finds the ffmpeg it started through /proc (Linux).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SAMPLE, ffmpeg, made
from .test_batch import srt_cues, template, tree  # noqa: F401 (fixtures: the batch test tree)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """60 s of picture (slow to burn) with the sample's first 8 s of speech (quick to transcribe)."""
    out = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-t", "8", "-i", str(SAMPLE),
           "-map", "0:v", "-map", "1:a", "-t", "60", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", str(out))
    return out


def start(*args: str | Path, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "subtitler", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"))
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for_burn(proc: subprocess.Popen, timeout: float = 240) -> int:
    """The pid of the burn's ffmpeg once it has encoded a while."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        burning = [pid for pid in children(proc.pid) if "-progress" in command_line(pid)]
        if burning:
            time.sleep(1.0)  # well into the encoding
            return burning[0]
        time.sleep(0.05)
    raise AssertionError(f"no burn started: {proc.communicate()[1]}")


def kill_and_expect_child_gone(proc: subprocess.Popen, child: int) -> None:
    """SIGKILL the CLI; its ffmpeg `child` must be gone within 2 s."""
    proc.kill()
    proc.wait()
    deadline = time.time() + 2
    while alive(child) and time.time() < deadline:
        time.sleep(0.05)
    gone = not alive(child)
    if not gone:
        os.kill(child, signal.SIGKILL)  # don't leave it encoding after a failed test
    assert gone, "ffmpeg outlived the killed CLI by over 2 s"


@pytest.mark.engine
def test_sigkill_during_a_burn_kills_its_ffmpeg(long_clip, tmp_path):
    """SIGKILL of the CLI: its ffmpeg encoded on for over a minute; now the kernel kills it with the CLI."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    proc = start(long_clip, "--burn", "--preset", "slow", "-o", out, tmpdir=tmpdir)
    kill_and_expect_child_gone(proc, wait_for_burn(proc))
    # Only SIGKILL leaves the run's private temporary folder; the next run removes it.
    (left,) = tmpdir.iterdir()
    assert left.name.startswith(f"subtitler-run-{proc.pid}-")
    subprocess.run([sys.executable, "-m", "subtitler", "--version"], check=True, capture_output=True,
                   env={**os.environ, "TMPDIR": str(tmpdir)})
    assert list(tmpdir.iterdir()) == []


def test_sigkill_during_the_burn_command_kills_its_ffmpeg(long_clip, tmp_path):
    """The same for `subtitler burn`, whose ffmpeg is started from the main thread."""
    subs = tmp_path / "long.srt"
    subs.write_text("1\n00:00:01,000 --> 00:00:50,000\nHello there\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start("burn", long_clip, subs, "--preset", "slow", "-o", tmp_path / "out.mp4", tmpdir=tmpdir)
    kill_and_expect_child_gone(proc, wait_for_burn(proc))


@pytest.mark.engine
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopped_during_a_burn_leaves_nothing(long_clip, tmp_path, sig, code):
    """SIGTERM (or Ctrl-C to the CLI alone) mid-burn: its exit code, one line, the report written,
    no .part file, no ffmpeg left running, no temporary folder left in $TMPDIR."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out"
    proc = start(long_clip, "--burn", "--preset", "slow", "-o", out, "--report", tmp_path / "r.json",
                 tmpdir=tmpdir)
    child = wait_for_burn(proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert json.loads((tmp_path / "r.json").read_text())["interrupted"] is True
    deadline = time.time() + 2
    while alive(child) and time.time() < deadline:
        time.sleep(0.05)
    if alive(child):
        os.kill(child, signal.SIGKILL)
        raise AssertionError("ffmpeg outlived the stopped CLI")
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    assert not list(out.glob("*.subtitled.mp4"))
    assert list(tmpdir.iterdir()) == []


@pytest.mark.engine
def test_a_finished_burn_leaves_no_temporary_folder(short_clip, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start(short_clip, "--burn", "--preset", "ultrafast", "-o", tmp_path / "out", tmpdir=tmpdir)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert (tmp_path / "out" / "short.subtitled.mp4").exists()
    assert list(tmpdir.iterdir()) == []


@pytest.mark.engine
def test_sigterm_mid_batch_stops_cleanly_reports_and_a_rerun_finishes(tree, tmp_path):  # noqa: F811
    """As test_batch's Ctrl-C test, with SIGTERM (what `timeout`, systemd and `docker stop` send):
    it killed the run on the spot, with no report and temporary files left behind."""
    out = tmp_path / "subs"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = start(tree / "raw", tree / "a", "-o", out, "--report", tmp_path / "r.json", tmpdir=tmpdir)
    deadline = time.time() + 120
    while time.time() < deadline and len(made(out)) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    written = made(out)
    assert report["interrupted"] and len(written) - 1 <= report["summary"].get("done", 0) < 13
    for subs in written:
        assert srt_cues(subs)
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    assert list(tmpdir.iterdir()) == []
    again = start(tree / "raw", tree / "a", "-o", out, "--report", tmp_path / "r2.json", tmpdir=tmpdir)
    _, stderr = again.communicate(timeout=600)
    summary = json.loads((tmp_path / "r2.json").read_text())["summary"]
    assert again.returncode == 0, stderr
    assert summary["up-to-date"] + summary.get("rendered", 0) >= len(written)
    assert summary["up-to-date"] + summary.get("rendered", 0) + summary.get("done", 0) == 13
    assert list(tmpdir.iterdir()) == []
