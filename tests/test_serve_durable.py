"""`subtitler serve` as a process: jobs survive SIGKILL, and setups it must refuse are refused.

The durable test runs the real command (it loads its own tiny.en) on one port, kills it with
SIGKILL while the job runs, and starts it again on the same data folder and port: the job runs
again, ends once, and the poll URL the client holds serves its result.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jiwer
import pytest

from tests.accuracy import normalize
from tests.conftest import assert_one_line_error

KEY = "durable-key-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path, port: int, log: Path, *args: str, keys: tuple[str, ...] = (KEY,)) -> subprocess.Popen:
    """`subtitler serve` with `args`, once it answers."""
    env = {**os.environ, "SUBTITLER_SERVE_KEYS": ",".join(keys)}
    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "subtitler", "serve", "--port", str(port),
                                 "--data-dir", str(data), "-b", "faster-whisper", "-m", "tiny.en", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def job_row(data: Path, job_id: str) -> dict:
    with sqlite3.connect(data / "serve.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone())


def status(poll_url: str) -> dict:
    return httpx.get(poll_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()


@pytest.mark.engine
def test_sigkill_mid_job_then_restart_finishes_it_once(sample, reference, tmp_path):
    data, port, log = tmp_path / "data", free_port(), tmp_path / "serve.log"
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
    proc = start(data, port, log)
    try:
        url = httpx.post(f"{base}/v1/input/upload-url?extension=mp4", headers=auth, json={}).json()
        put = url["uploadUrl"]["PUT"]
        assert httpx.put(put, content=sample.read_bytes()).status_code == 200
        resp = httpx.post(f"{base}/v1/async/ent/tiyarofs/1/openai/whisper-tiny.en", headers=auth,
                          json={"input": {"language": "en"}, "URL": put})
        assert resp.status_code == 202
        job = resp.json()["response"]
        poll = job["urls"]["GET"]
        deadline = time.monotonic() + 60
        while status(poll)["status"] != "processing":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        time.sleep(0.3)  # into the decoding
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert job_row(data, job["id"]) == {"state": "processing", "attempts": 1}

        proc = start(data, port, log)  # the same folder, the same port: the same poll URL
        deadline = time.monotonic() + 120
        while (body := status(poll))["status"] in ("pending", "processing"):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert body["status"] == "success", body
        assert jiwer.wer(normalize(reference["text"]), normalize(body["result"]["text"])) < 0.2
        assert job_row(data, job["id"]) == {"state": "success", "attempts": 2}
        listed = httpx.get(f"{base}/v1/async/results", headers=auth).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]

        # Killed again after it finished: the result is served at once, the job is not run again.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start(data, port, log)
        assert status(poll) == body
        assert job_row(data, job["id"]) == {"state": "success", "attempts": 2}
        assert not list((data / "tmp").iterdir())  # nothing half-written
    finally:
        proc.kill()
        proc.wait(10)
    assert "signature=" not in log.read_text() and KEY not in log.read_text()


def serve(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SUBTITLER_SERVE_KEYS"}
    return subprocess.run([sys.executable, "-m", "subtitler", "serve", "-b", "faster-whisper", *args],
                          env={**environ, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_refuses_a_reachable_address_without_a_key(tmp_path):
    proc = serve("--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(proc, 31, "refusing to listen on 0.0.0.0 with no API key")
    assert not (tmp_path / "d").exists()  # refused before anything was made


def test_host_from_the_config_files_serve_table(tmp_path):
    (tmp_path / "subtitler.toml").write_text('[serve]\nhost = "0.0.0.0"\nport = 0\n')
    proc = serve("--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert_one_line_error(proc, 31, "refusing to listen on 0.0.0.0")


def test_an_engine_that_cannot_load_stops_the_server_with_its_error(tmp_path):
    proc = serve("--port", "0", "--data-dir", str(tmp_path / "d"), "-m", str(tmp_path / "no-model"))
    assert proc.returncode == 8, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("subtitler: error: unknown model")
    assert "Traceback" not in proc.stderr


def test_busy_port_and_unreadable_keys_file(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve("--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(proc, 30, f"cannot listen on 127.0.0.1:{port}")
    proc = serve("--keys-file", str(tmp_path / "missing.txt"), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(proc, 30, "missing.txt: cannot read the keys file")


def test_other_commands_do_not_import_the_server_stack():
    code = ("import sys; from subtitler import cli; cli.cli(['backends'], standalone_mode=False); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
