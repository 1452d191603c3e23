"""Shared fixtures: the real-speech sample, its reference, and engines loaded once.

Models are loaded once per test session (session fixtures): loading is the
slow part, and a run loads each model only once too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.mp4"
REFERENCE = ROOT / "samples" / "sample.reference.json"


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


def ffmpeg(*args: str) -> None:
    """Run real ffmpeg quietly; tests build their media with it."""
    from subtitler.media import find_tools  # Debian's ffmpeg, or the imageio-ffmpeg wheel's

    subprocess.run([find_tools().ffmpeg, "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    """The sample's first 8 s (the first LibriVox sentence) as MP4: quick to transcribe."""
    out = media_dir / "short.mp4"
    ffmpeg("-i", str(SAMPLE), "-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(out))
    return out


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    """Exit `code` and one error line holding `text`, never a traceback."""
    assert proc.returncode == code, proc.stderr
    # Without a terminal an input's work is logged as it starts (README): the error is the one other line.
    lines = [line for line in proc.stderr.strip().splitlines() if not line.endswith(": started")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("subtitler: error: ") and text in lines[0], proc.stderr


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, with its own (empty) user config folder
    (config files are read afresh by every command: nothing is cached)."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("SUBTITLER_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SUBTITLER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
