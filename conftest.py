"""Fixtures shared by every tests folder: tests/ (the core) and plugins/*/tests (each plugin's own).

pytest reads this file for all of them, so a plugin's tests get the real-speech sample, the engines
loaded once per session and the isolated caches as the core's do. Plain helpers (ffmpeg(),
assert_one_line_error, SAMPLE, the fake services) are imported from the `tests` package
(`from tests.conftest import ffmpeg`); pyproject.toml puts the repository root on sys.path.

Models are loaded once per test session (session fixtures): loading is the
slow part, and a run loads each model only once too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, SAMPLE, ffmpeg


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
    """An empty project folder as the working directory, with its own (empty) user config folder;
    config files are read afresh."""
    from subtitler import config

    (tmp_path / "home").mkdir()
    monkeypatch.setenv("SUBTITLER_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SUBTITLER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    config.reset()
    yield tmp_path
    config.reset()  # later tests must not see this test's files
