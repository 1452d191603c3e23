"""Backends are found only through the `subtitler.backends` entry point group.

These tests install tiny third-party plugins the way pip would (a module and
a .dist-info folder with entry_points.txt on sys.path) and run the real CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT, SAMPLE

# A toy engine: one segment with one word per second of audio, "tick0", "tick1"...
PLUGIN = '''
import numpy as np
from subtitler.backends import Backend
from subtitler.transcript import Segment, Transcript, Word

class TickBackend(Backend):
    name = "tick"
    description = "says tick once per second"
    supported_options = frozenset({"language"})

    def transcribe(self, audio, options, progress=None):
        seconds = int(len(audio) / 16000)
        words = [Word(float(i), i + 0.5, f" tick{i}", 1.0) for i in range(seconds)]
        return Transcript("en", len(audio) / 16000,
                          [Segment(0.0, float(seconds), "".join(w.text for w in words), words)],
                          {"backend": "tick"})
'''


def _install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[subtitler.backends]\n{entry}\n")


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "subtitler_tick", "subtitler_tick", PLUGIN, "tick = subtitler_tick:TickBackend")
    _install(site, "subtitler_broken", "subtitler_broken", "import no_such_module_anywhere\n",
             "broken = subtitler_broken:Nothing")
    return site


def _run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


def test_third_party_backend_is_listed_and_runs(site, tmp_path):
    listing = _run(site, "backends")
    assert listing.returncode == 0
    assert "tick\tavailable\tsays tick once per second" in listing.stdout
    # The broken plugin is reported with its reason; the others still work.
    assert "broken\tunavailable: failed to load: No module named 'no_such_module_anywhere'" in listing.stdout
    assert "backend plugin 'broken' failed to load" in listing.stderr

    out = tmp_path / "out"
    proc = _run(site, str(SAMPLE), "-b", "tick", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    srt_text = (out / "sample.srt").read_text()
    assert srt_text.count("tick") == 29 and "tick28" in srt_text  # 29.4 s of audio


def test_unsupported_option_is_refused_not_dropped(site, tmp_path):
    out = tmp_path / "out"
    proc = _run(site, str(SAMPLE), "-b", "tick", "--beam-size", "2", "-o", str(out))
    assert proc.returncode == 9
    assert "backend 'tick' does not support option(s): beam_size" in proc.stderr
    assert not out.exists()
