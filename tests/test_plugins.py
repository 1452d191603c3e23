"""Backends are found only through the `subtitler.backends` entry point group.

These tests install tiny third-party plugins the way pip would (a module and
a .dist-info folder with entry_points.txt on sys.path) and run the real CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from subtitler.errors import BackendUnavailable
from subtitler.testing import install_plugin

from .conftest import ROOT, SAMPLE

# A toy engine: one segment with one word per second of audio, "tick0", "tick1"...
PLUGIN = '''
import numpy as np
from subtitler.plugin import API_VERSION, Backend, Segment, Transcript, Word

class TickBackend(Backend):
    api_version = API_VERSION
    name = "tick"
    description = "says tick once per second"
    supported_options = frozenset({"language"})

    def transcribe(self, audio, options, report, prepared=None):
        seconds = int(len(audio) / 16000)
        words = [Word(float(i), i + 0.5, f" tick{i}", 1.0) for i in range(seconds)]
        return Transcript("en", len(audio) / 16000,
                          [Segment(0.0, float(seconds), "".join(w.text for w in words), words)],
                          {"backend": "tick"})
'''


def _install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    install_plugin(site, module, source, entry, dist)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "subtitler_tick", "subtitler_tick", PLUGIN, "tick = subtitler_tick:TickBackend")
    _install(site, "subtitler_broken", "subtitler_broken", "import no_such_module_anywhere\n",
             "broken = subtitler_broken:Nothing")
    return site


def _run(site: Path, *args: str, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **(env or {})}
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


# A plugin written for subtitler 0.2 (plugin API 1): no api_version, the old signatures.
OLD_PLUGIN = '''
from subtitler.backends import Backend

class OldBackend(Backend):
    name = "old"
    def transcribe(self, audio, options, progress=None):
        raise AssertionError("never called")
'''

# The core's fake backend, registered as a third party's would be.
FAKE = "from subtitler.testing import FakeBackend\n"

# A local engine that declares a higher priority for `auto` than the bundled ones.
EAGER = '''
from subtitler.plugin import API_VERSION
from subtitler.testing import FakeBackend

class EagerBackend(FakeBackend):
    name = "eager"
    auto_priority = 50
'''


def test_a_plugin_for_an_older_subtitler_gets_a_clear_message(site, tmp_path):
    _install(site, "subtitler_old", "subtitler_old", OLD_PLUGIN, "old = subtitler_old:OldBackend")
    listing = _run(site, "backends")
    assert "old\tunavailable: written for an older subtitler (plugin API 1; this subtitler" in listing.stdout
    assert "needs 2): upgrade the plugin" in listing.stdout
    proc = _run(site, str(SAMPLE), "-b", "old", "-o", str(tmp_path / "out"))
    assert proc.returncode == BackendUnavailable.exit_code, proc.stderr
    assert "backend 'old' is unavailable: written for an older subtitler" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_auto_follows_the_priorities_backends_declare(site):
    assert "(auto)" not in next(line for line in _run(site, "backends").stdout.splitlines()
                                if line.startswith("tick"))
    _install(site, "subtitler_eager", "subtitler_eager", EAGER, "eager = subtitler_eager:EagerBackend")
    listing = _run(site, "backends").stdout
    assert "eager (auto)\tavailable" in listing
    assert "faster-whisper\tavailable" in listing  # no longer auto


def test_a_backend_setting_that_shapes_results_is_in_the_cache_key(site, tmp_path):
    """The same audio, model and options with another value of a result-shaping setting (as
    OPENAI_BASE_URL is for the openai backend) is transcribed again, not taken from the cache."""
    _install(site, "subtitler_fake", "subtitler_fake", FAKE, "fake = subtitler_fake:FakeBackend")
    out = tmp_path / "out"
    env = {"SUBTITLER_FAKE_WORD": "alpha"}
    first = _run(site, str(SAMPLE), "-b", "fake", "-o", str(out), env=env)
    assert first.returncode == 0, first.stderr
    assert "alpha0" in (out / "sample.srt").read_text()
    again = _run(site, str(SAMPLE), "-b", "fake", "-o", str(out), env=env)
    assert "up to date" in again.stderr
    other = _run(site, str(SAMPLE), "-b", "fake", "-o", str(out), env={"SUBTITLER_FAKE_WORD": "beta"})
    assert other.returncode == 0, other.stderr
    assert "done: transcribed" in other.stderr  # not "rendered from the cached transcript"
    text = (out / "sample.srt").read_text()
    assert "beta0" in text and "alpha" not in text


def test_bundled_plugins_use_only_the_public_plugin_api():
    """Each bundled plugin imports from subtitler.plugin (and subtitler.testing in tests) only,
    as a third party's would: the core's modules can change without breaking them."""
    import ast

    offenders = []
    for source in sorted((ROOT / "plugins").glob("*/subtitler_*/*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{source.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] == "subtitler" and n not in ("subtitler.plugin",)]
    assert not offenders
