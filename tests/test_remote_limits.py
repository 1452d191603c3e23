"""Remote answers that never end or never stop: a whole-request deadline and a size limit.

Real HTTP servers on 127.0.0.1 (tests/fake_openai.py, fake_tiyaro.py) with the
"trickle" fault (the answer's body at one byte a second: every read is quick,
so httpx's per-read timeout never fires, and the run hung for ever) and the
"huge" fault (a 300 MiB answer, which took 1.25 GB of memory before the error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import subtitler_openai as openai
import subtitler_tiyaro as tiyaro

from subtitler.errors import RemoteError
from subtitler.events import Report
from subtitler.options import DecodeOptions
from subtitler.remote import wav_bytes
from subtitler.specs import EngineSpec
from subtitler.transcript import Segment, Transcript, Word

from .fake_openai import FakeOpenAI
from .fake_tiyaro import FakeTiyaro
from .remote_fixtures import *  # noqa: F403 (fixtures: audio, local, engine)
from .remote_fixtures import error_text

KEY = "sk-limits-test-0123456789"


def canned(data: bytes, fields: dict) -> Transcript:
    """A fixed answer: these tests are about how it is delivered, not what it says."""
    words = [Word(0.5, 0.9, " Hello"), Word(1.0, 1.4, " there.")]
    return Transcript("en", 2.0, [Segment(0.5, 1.4, " Hello there.", words)])


def canned_tiyaro(data: bytes, inputs: dict, model: str) -> dict:
    return {"text": "Hello there.", "language": "en",
            "segments": [{"start": 0.5, "end": 1.4, "text": " Hello there.",
                          "words": [{"word": " Hello", "start": 0.5, "end": 0.9},
                                    {"word": " there.", "start": 1.0, "end": 1.4}]}]}


@pytest.fixture
def clip(tmp_path, audio) -> Path:
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(audio[: 16000 * 2]))
    return path


def cli(*args: str | Path, env: dict[str, str],
        timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "subtitler", *map(str, args)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def error_lines(stderr: str) -> list[str]:
    """The error lines (status lines like "uploading..." aside); a traceback would show here."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if "error" in line.lower()]


# -- a trickled answer --------------------------------------------------------------


@pytest.mark.slow
def test_trickle_with_timeout_openai_cli(clip, tmp_path):
    """--timeout 3 against a server answering a byte a second: exit 25 soon after 3 s (it hung for ever)."""
    with FakeOpenAI(transcribe=canned, key=KEY) as fake:
        fake.trickle_next(100, "transcriptions")
        proc, took = cli(clip, "-b", "openai", "--timeout", "3", "-o", tmp_path / "out",
                         env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url}, timeout=90)
    assert proc.returncode == 25, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith("subtitler: error: ") and "--timeout" in line
    assert len(fake.requests("transcriptions")) == 1
    # Past the 3 s: the CLI's start (imports, decoding) and at most a second of trickle.
    assert took < 3 + 12, took


@pytest.mark.slow
def test_trickle_with_timeout_tiyaro_cli(clip, tmp_path):
    with FakeTiyaro(result=canned_tiyaro, key=KEY) as fake:
        fake.trickle_next(100, "poll")
        proc, took = cli(clip, "-b", "tiyaro", "--timeout", "3", "-o", tmp_path / "out",
                         env={"TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
                              "SUBTITLER_STATE_DIR": str(tmp_path / "state")}, timeout=90)
    assert proc.returncode == 25, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "--timeout" in line and KEY not in proc.stderr
    assert took < 3 + 12, took


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openai", "tiyaro"])
def test_timeout_setting_bounds_the_whole_answer(backend, audio, monkeypatch, tmp_path):
    """OPENAI_TIMEOUT / TIYARO_TIMEOUT = 2: each trickled answer is given up after 2 s (retried once
    here), where a byte a second kept every read under httpx's per-read timeout."""
    if backend == "openai":
        fake = FakeOpenAI(transcribe=canned, key=KEY)
        endpoint, prefix = "transcriptions", "OPENAI"
    else:
        fake = FakeTiyaro(result=canned_tiyaro, key=KEY)
        endpoint, prefix = "upload-url", "TIYARO"
        monkeypatch.setenv("SUBTITLER_STATE_DIR", str(tmp_path / "state"))
    with fake:
        monkeypatch.setenv(f"{prefix}_API_KEY", KEY)
        monkeypatch.setenv(f"{prefix}_BASE_URL", fake.base_url)
        monkeypatch.setenv(f"{prefix}_TIMEOUT", "2")
        cls = openai.OpenAIBackend if backend == "openai" else tiyaro.TiyaroBackend
        b = cls(EngineSpec(backend, "tiny.en" if backend == "tiyaro" else None))
        b.client.retries, b.client.retry_backoff = 1, 0.01
        fake.trickle_next(100, endpoint)
        started = time.monotonic()
        with pytest.raises(RemoteError, match="ReadTimeout: no whole answer within 2 s") as e:
            b.transcribe(audio[:16000], DecodeOptions(), Report())
        took = time.monotonic() - started
        b.client.close()
    assert 2 * 2 <= took < 2 * 2 + 2.5, took
    assert len(fake.requests(endpoint)) == 2 and KEY not in error_text(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_stall_mid_answer_ends_at_the_deadline(audio, monkeypatch):
    """A server that sends part of its answer then stops: the read ends at --timeout, not one whole
    read timeout after the last byte."""
    with FakeOpenAI(transcribe=canned, key=KEY) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        b = openai.OpenAIBackend(EngineSpec("openai", timeout=2.5))
        fake.trickle_next(1, "transcriptions")  # slower than the deadline: a stall, as far as it knows
        started = time.monotonic()
        with pytest.raises(RemoteError, match="--timeout"):
            b.transcribe(audio[:16000], DecodeOptions(), Report())
        assert time.monotonic() - started < 2.5 + 1.5
        b.client.close()


# -- a huge answer ------------------------------------------------------------------


def test_huge_answer_is_refused_with_bounded_memory(clip, tmp_path):
    """A 300 MiB answer without a Content-Length: refused at the 64 MiB default limit, one line,
    and the CLI's peak memory stays far below the answer's size (it took 1.25 GB)."""
    with FakeOpenAI(transcribe=canned, key=KEY) as fake:
        fake.huge_next(1, "transcriptions", 300 * 2**20, declared=False)
        env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url}
        # Measured in a fresh process whose only child is the CLI: RUSAGE_CHILDREN is then its peak.
        measure = ("import resource, subprocess, sys\n"
                   "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
                   "sys.stderr.write(p.stderr)\n"
                   "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
        proc = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "subtitler", str(clip),
                               "-b", "openai", "-o", str(tmp_path / "out")],
                              env=env, capture_output=True, text=True, timeout=300)
    code, peak_kib = map(int, proc.stdout.split())
    peak = peak_kib * 1024
    print(f"peak RSS of the CLI: {peak / 2**20:.0f} MiB")
    # Python, numpy and httpx take ~100 MiB; at most the 64 MiB limit comes on top.
    assert peak < 250 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    assert code == 20, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "over the 64 MiB limit of OPENAI_MAX_ANSWER" in line, line


@pytest.mark.parametrize("declared", [True, False])
def test_answer_size_limit_setting(declared, audio, monkeypatch, tmp_path):
    """TIYARO_MAX_ANSWER = 1 MiB: a 10 MiB poll answer fails at once with a clear error, declared or not."""
    with FakeTiyaro(result=canned_tiyaro, key=KEY) as fake:
        monkeypatch.setenv("SUBTITLER_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("TIYARO_API_KEY", KEY)
        monkeypatch.setenv("TIYARO_BASE_URL", fake.base_url)
        monkeypatch.setenv("TIYARO_MAX_ANSWER", str(2**20))
        b = tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))
        fake.huge_next(1, "poll", 10 * 2**20, declared=declared)
        got = "is 10 MiB, over" if declared else "is over"
        with pytest.raises(RemoteError, match=f"Tiyaro poll: the answer {got} the 1 MiB limit "
                                              r"of TIYARO_MAX_ANSWER \(or max-answer"):
            b.transcribe(audio[:16000], DecodeOptions(), Report())
        assert len(fake.requests("poll")) == 1  # not retried: the same answer would come again
        b.client.close()


# -- tiyaro: no false "no speech found" ----------------------------------------------


def test_tiyaro_result_without_words_is_not_no_speech(engine, audio, tmp_path):
    """Tiyaro runs openai-whisper without word_timestamps: segments without words. The run warned
    "no speech found; the subtitles are empty" while writing subtitles with cues."""
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(audio))
    with FakeTiyaro(result=engine.tiyaro, key=KEY, no_words=True) as fake:
        proc, _ = cli(clip, "-b", "tiyaro", "-o", tmp_path / "out",
                      env={"TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
                           "TIYARO_POLL_INTERVAL": "0.05", "SUBTITLER_STATE_DIR": str(tmp_path / "state")})
    assert proc.returncode == 0, proc.stderr
    srt = (tmp_path / "out" / "clip.srt").read_text()
    assert srt.count(" --> ") >= 2
    assert "no speech" not in proc.stderr, proc.stderr


def test_silence_still_warns_no_speech(tmp_path):
    """The warning stays for what it is for: a result with no segments at all."""
    clip = tmp_path / "quiet.wav"
    clip.write_bytes(wav_bytes(__import__("numpy").zeros(16000 * 2, "float32")))
    with FakeTiyaro(result=lambda data, inputs, model: {"text": "", "segments": []}, key=KEY) as fake:
        proc, _ = cli(clip, "-b", "tiyaro", "-o", tmp_path / "out",
                      env={"TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
                           "TIYARO_POLL_INTERVAL": "0.05", "SUBTITLER_STATE_DIR": str(tmp_path / "state")})
    assert proc.returncode == 0, proc.stderr
    assert "no speech found" in proc.stderr
