"""Helpers the tests import: the sample's paths, real ffmpeg, and the one-line error check.

The fixtures (the sample, engines loaded once, isolated caches) are in the repository's root
conftest.py, shared with each plugin's tests (plugins/*/tests). This module keeps its name so
`from .conftest import SAMPLE, ffmpeg` reads as it always did; from a plugin's tests:
`from tests.conftest import ...`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.mp4"
REFERENCE = ROOT / "samples" / "sample.reference.json"


def ffmpeg(*args: str) -> None:
    """Run real ffmpeg quietly; tests build their media with it."""
    from subtitler.media import find_tools  # Debian's ffmpeg, or the imageio-ffmpeg wheel's

    subprocess.run([find_tools().ffmpeg, "-nostdin", "-v", "error", "-y", *args], check=True)


def made(folder: Path, pattern: str = "*.srt") -> list[Path]:
    """The finished outputs under `folder` matching `pattern`. A temporary file being written
    (`.c3.x8Jk2a.part.srt`) ends in the same suffix; its leading dot tells it apart."""
    return sorted(p for p in folder.rglob(pattern) if not p.name.startswith("."))


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    """Exit `code` and one error line holding `text`, never a traceback."""
    assert proc.returncode == code, proc.stderr
    # Without a terminal an input's work is logged as it starts (README): the error is the one other line.
    lines = [line for line in proc.stderr.strip().splitlines() if not line.endswith(": started")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("subtitler: error: ") and text in lines[0], proc.stderr
