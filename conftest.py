"""Fixtures shared by every tests folder: tests/ (the core) and plugins/*/tests (each plugin's own).

pytest reads this file for all of them, so a plugin's tests get the real-speech sample, the engines
loaded once per session and the isolated caches as the core's do. Plain helpers (ffmpeg(),
assert_one_line_error, SAMPLE, the fake services) are imported from the `tests` package
(`from tests.conftest import ffmpeg`); pyproject.toml puts the repository root on sys.path.

Models are loaded once per test session (session fixtures): loading is the
slow part, and a run loads each model only once too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, SAMPLE, ffmpeg

# The tiers (README, Development). `make test` runs every test. `make test-fast` sets
# SUBTITLER_TEST_FAST=1: the tests marked `engine` (they load a speech engine) or `slow` are
# deselected, and an engine loaded anyway is refused and fails the test (tests/fast_tier).
FAST = bool(os.environ.get("SUBTITLER_TEST_FAST"))
# A test using one of these fixtures, directly or through another, loads an engine: it is marked
# `engine` without being told. The shared ones, then those of test modules (named here: pytest lets
# no mark sit on a fixture) that transcribe through load_backend or the `subtitler` command:
# test_options_reach_engines, test_require_subs, test_rerun, test_packaging.
ENGINE_FIXTURES = frozenset({"fw_backend", "whisper_backend", "backends",
                             "base_backends", "subtitled", "transcript_json", "media_repo"})
FAST_TIER_GUARD = Path(__file__).resolve().parent / "tests" / "fast_tier"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shard", metavar="K/N", help="run only the K-th of N shares of the test files "
                     "(every N-th file, from the K-th): `make test-fast` runs two at once, one per core")


def pytest_configure(config: pytest.Config) -> None:
    if not FAST:
        return
    fd, log = tempfile.mkstemp(prefix="subtitler-test-fast-", suffix=".log")
    os.close(fd)
    os.environ["SUBTITLER_TEST_FAST_LOG"] = log
    # Every Python the tests start runs the guard (as sitecustomize); this one runs it now.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{FAST_TIER_GUARD}{os.pathsep}{path}" if path else str(FAST_TIER_GUARD)
    spec = importlib.util.spec_from_file_location("fast_tier_guard", FAST_TIER_GUARD / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def pytest_unconfigure(config: pytest.Config) -> None:
    if FAST:
        Path(os.environ["SUBTITLER_TEST_FAST_LOG"]).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
    if FAST:
        _deselect(config, items, lambda item: any(item.get_closest_marker(m) for m in ("engine", "slow")))
    if config.getoption("shard"):
        k, n = map(int, config.getoption("shard").split("/"))
        files = sorted({item.path for item in items})  # whole files: their module fixtures run once
        mine = set(files[k - 1::n])
        _deselect(config, items, lambda item: item.path not in mine)


def _deselect(config: pytest.Config, items: list[pytest.Item], drop: Callable[[pytest.Item], object]) -> None:
    kept, dropped = [], []
    for item in items:
        (dropped if drop(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_engine_log_read = 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """In the fast tier, the phase (setup, call, teardown) in which an engine was loaded (in this
    process, by a fixture or in a subprocess) fails, naming the test, even where the code under test
    took the refusal for an ordinary error."""
    report = yield
    if FAST:
        global _engine_log_read
        with open(os.environ["SUBTITLER_TEST_FAST_LOG"], encoding="utf-8") as f:
            f.seek(_engine_log_read)
            loaded = f.read()
            _engine_log_read = f.tell()
        if loaded:
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid} loads a speech engine: mark it `engine` (it then runs only "
                               f"in `make test`); loaded: {loaded.strip()}\n\n{report.longrepr or ''}")
    return report


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep converted models out of the user's cache, but share them across sessions.

    A fixed folder under the system temp dir lets repeated `make test` runs
    reuse the conversion; SUBTITLER_CACHE_DIR from the caller wins.
    """
    os.environ.setdefault("SUBTITLER_CACHE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp"))
                                                     / "subtitler-test-cache"))


@pytest.fixture(scope="session", autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A config file on the machine (~/.config/subtitler, $SUBTITLER_CONFIG) must not change any test."""
    os.environ["SUBTITLER_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))
    os.environ.pop("SUBTITLER_CONFIG", None)


@pytest.fixture(scope="session", autouse=True)
def _no_transcripts_from_earlier_sessions(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Module fixtures run before a test's own cache is set (below): they share this session's, empty
    at the start, not the one under SUBTITLER_CACHE_DIR that earlier runs filled (a fresh clone has none,
    and the fast tier must see the engine they load)."""
    os.environ["SUBTITLER_TRANSCRIPTS_DIR"] = str(tmp_path_factory.mktemp("session-transcripts"))


@pytest.fixture(autouse=True)
def _fresh_transcript_cache(tmp_path_factory: pytest.TempPathFactory,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty transcript cache (subprocesses inherit it): no test sees
    another's transcripts. Tests of the cache reuse one within themselves."""
    monkeypatch.setenv("SUBTITLER_TRANSCRIPTS_DIR", str(tmp_path_factory.mktemp("transcripts")))


@pytest.fixture(scope="session")
def sample() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="session")
def sample_audio():
    from subtitler.media import decode_audio

    return decode_audio(SAMPLE)


@pytest.fixture(scope="session")
def fw_backend():
    """faster-whisper, tiny.en, its CPU default (int8)."""
    from subtitler.backends import load_backend

    return load_backend("faster-whisper", "tiny.en")


@pytest.fixture(scope="session")
def whisper_backend():
    """openai-whisper on the converted tiny.en, CPU fp32."""
    from subtitler.backends import load_backend

    return load_backend("whisper", "tiny.en")


@pytest.fixture(scope="session")
def backends(fw_backend, whisper_backend) -> dict:
    return {"faster-whisper": fw_backend, "whisper": whisper_backend}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    """The sample's first 8 s (the first LibriVox sentence) as MP4: quick to transcribe."""
    out = media_dir / "short.mp4"
    ffmpeg("-i", str(SAMPLE), "-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out))
    return out


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, with its own (empty) user config folder
    (config files are read afresh by every command: nothing is cached)."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("SUBTITLER_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SUBTITLER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
