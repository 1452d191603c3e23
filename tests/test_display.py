"""What a run shows: on a terminal (a real pseudo-terminal, the real CLI) bars that never swallow a
message and leave nothing stale behind, the stages, the detected language and a summary line; in a log
the start and end lines the README promises; -v after the command; help for every option."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from subtitler.cli import cli

from .conftest import SAMPLE, ffmpeg

WIDTH = 120
BAR = re.compile(r"\d+%\||files.*\||█")


def in_terminal(*args: str | Path, timeout: float = 300) -> tuple[str, int]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it wrote, and its exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, WIDTH, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    os.close(master)
    proc.wait(timeout=10)
    return out.decode("utf-8", "replace"), proc.returncode


def screen(stream: str) -> list[str]:
    """What the terminal shows at the end: the stream played on a minimal VT100 (text, CR, LF,
    cursor up/down, erase line), lines wrapped at WIDTH."""
    rows: list[list[str]] = [[]]
    r = c = 0
    for tok in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", stream):
        if tok == "\r":
            c = 0
        elif tok == "\n":
            r += 1
        elif tok.startswith("\x1b["):
            n = int(tok[2:-1]) if tok[2:-1].isdigit() else 1
            if tok[-1] == "A":
                r = max(0, r - n)
            elif tok[-1] == "B":
                r += n
            elif tok[-1] == "K":
                del rows[r][c:]
        else:
            if c >= WIDTH:
                r, c = r + 1, 0
            while len(rows) <= r:
                rows.append([])
            line = rows[r]
            line.extend(" " * (c + 1 - len(line)))
            line[c] = tok
            c += 1
        while len(rows) <= r:
            rows.append([])
    return ["".join(line).rstrip() for line in rows]


def unwrapped(lines: list[str]) -> list[str]:
    """Screen lines joined back where a long line wrapped."""
    out: list[str] = []
    for line in lines:
        if out and len(out[-1]) == WIDTH:
            out[-1] += line
        else:
            out.append(line)
    return [line for line in out if line]


def clip(source_start: float, seconds: float, out: Path) -> Path:
    ffmpeg("-ss", str(source_start), "-i", str(SAMPLE), "-t", str(seconds), "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", str(out))
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two speech clips, a silent one (a warning: no speech) and a file that is not media (an error)."""
    folder = tmp_path_factory.mktemp("display")
    silent = folder / "silent.m4a"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3", "-c:a", "aac", str(silent))
    (folder / "broken.mp4").write_text("not a video\n")
    return [clip(0, 4, folder / "a.mp4"), clip(4, 4, folder / "b.mp4"), silent, folder / "broken.mp4"]


@pytest.mark.engine
def test_terminal_display_with_several_inputs(inputs, tmp_path):
    stream, code = in_terminal(*inputs, "-o", tmp_path, "--backend", "faster-whisper", "--model", "tiny.en")
    assert code == 1, stream  # one input failed
    shown = unwrapped(screen(stream))
    outputs = [str(tmp_path / f"{name}.srt") for name in ("a", "b", "silent")]
    # Every message and path is a whole line of its own, never inside a bar's line...
    for text in [*outputs, "subtitler: warning: ", "subtitler: error: "]:
        lines = [line for line in shown if text in line]
        assert len(lines) == 1 and lines[0].startswith(text.split(":")[0]), (text, shown)
        assert not BAR.search(lines[0]), lines[0]
    assert any(line.startswith(f"subtitler: warning: {inputs[2]}: no speech found") for line in shown), shown
    for start in re.finditer(r"subtitler: (warning|error): |" + "|".join(map(re.escape, outputs)), stream):
        before = re.sub(r"(\x1b\[[0-9;]*[A-Za-z])+$", "", stream[:start.start()])  # cursor moves aside
        assert before[-1] in "\r\n", repr(stream[start.start() - 80:start.end()])  # at column 0
    # ...and no bar is left on the screen when the run ends.
    assert not [line for line in shown if BAR.search(line)], shown
    # Each input says how it ended, with the language the engine detected; the run ends with a summary.
    assert any(re.fullmatch(rf"subtitler: \[1/4\] {re.escape(str(inputs[0]))}: done: transcribed 4\.0 s of "
                            r"media in [\d.]+ s \(decode [\d.]+ s\), language English \(detected\)", line)
               for line in shown), shown
    summary = r"subtitler: 4 files: 3 done, 1 failed; 11\.\d s of media in [\d.]+ s"
    assert re.fullmatch(summary, shown[-1]), shown
    # The stages while nothing else moves: the model loading, voice activity detection.
    assert "\rloading model... " in stream and "a.mp4 vad:" in stream
    assert "a.mp4 transcribe:" in stream


@pytest.mark.engine
def test_single_input_without_terminal_logs_start_and_end(inputs, tmp_path):
    """README: in scripts and CI, one log line per input as it starts and as it ends."""
    proc = subprocess.run([sys.executable, "-m", "subtitler", "run", str(inputs[0]), "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"subtitler: {inputs[0]}: started"
    assert re.fullmatch(rf"subtitler: {re.escape(str(inputs[0]))}: done: transcribed 4\.0 s of media in "
                        r"[\d.]+ s \(decode [\d.]+ s\), language English \(detected\)", lines[1]), lines
    assert len(lines) == 2 and proc.stdout == f"{tmp_path / 'a.srt'}\n"


def test_verbose_after_the_command(tmp_path):
    from subtitler.transcript import Segment, Transcript, Word

    saved = tmp_path / "clip.json"
    Transcript("en", 2.0, [Segment(0.0, 1.0, " Hello.", [Word(0.0, 1.0, " Hello.")])]).save(saved)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        root.setLevel(logging.WARNING)
        root.handlers[:] = []  # as in a fresh process (pytest's own handlers would stop basicConfig)
        result = CliRunner().invoke(cli, ["render", str(saved), "-v", "-o", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        assert root.level == logging.DEBUG  # as `subtitler -v render ...` sets it
        assert "-v, --verbose" in CliRunner().invoke(cli, ["run", "--help"]).stdout
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def test_every_option_has_help():
    missing = []

    def walk(command: click.Command, name: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{name} {'/'.join(param.opts)}")
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{name} {sub_name}")

    walk(cli, "subtitler")
    assert not missing, missing
