"""`subtitler serve` in operation: retention, webhooks, /metrics and the access log, request limits,
SIGTERM's drain, and 30 jobs at once from several keys.

Real servers on 127.0.0.1 (uvicorn in a thread with the session's tiny.en, or the real command
for the signals), real speech; a webhook receiver is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from subtitler.serve.app import ServeSettings
from subtitler.serve.auth import Keys
from subtitler.serve.retention import parse_duration
from subtitler.serve.server import Server
from subtitler.serve.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests import test_serve_tiyaro
from tests.conftest import ffmpeg
from tests.test_serve_durable import free_port, job_row, start
from tests.test_serve_tiyaro import KEY, MODEL, OTHER, auth, files, submit, upload_url, uploaded, wait

pytestmark = pytest.mark.engine
mp3 = test_serve_tiyaro.mp3  # the fixture: the sample's first 8 s as MP3

SECRET = "webhook-secret-for-tests"
THIRD = "key-c-5555555555"


@contextlib.contextmanager
def running(tmp_path: Path, engines: list | None, **settings) -> Iterator[Server]:
    """A server in a thread until the block ends (`engines`: loaded ones; None: its own)."""
    settings.setdefault("data_dir", tmp_path / "data")
    with test_serve_tiyaro.running(ServeSettings(port=0, **settings), Keys([KEY, OTHER, THIRD]),
                                   engines) as srv:
        yield srv


def until(condition, timeout: float = 30, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)
    return value


# -- retention ----------------------------------------------------------------------------------------


def test_duration_option():
    assert [parse_duration(t) for t in ("90s", "30m", "24h", "7d", "2.5")] == [90, 1800, 86400, 604800, 2.5]
    proc = subprocess.run([sys.executable, "-m", "subtitler", "serve", "--retention", "soon"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "'soon' is not a duration" in proc.stderr


def test_retention_deletes_expired_jobs_results_and_uploads(fw_backend, mp3, tmp_path):
    with running(tmp_path, [fw_backend], retention=3) as srv:
        job = submit(srv, uploaded(srv, mp3.read_bytes()), {"language": "en"}).json()["response"]
        assert wait(job["urls"]["GET"])["status"] == "success"
        unused = uploaded(srv, mp3.read_bytes())  # uploaded, never submitted
        kept = files(srv)
        assert {p.split("/")[0] for p in kept} == {"uploads", "results"} and len(kept) == 3
        # Within the retention all is served; after it, nothing is left and the poll URL is 404.
        assert httpx.get(job["urls"]["GET"], headers=auth()).status_code == 200
        until(lambda: not files(srv), timeout=10)
        assert httpx.get(job["urls"]["GET"], headers=auth()).status_code == 404
        assert httpx.get(f"{srv.url}/v1/async/results", headers=auth()).json()["jobs"] == []
        assert submit(srv, unused).status_code == 400  # its upload is gone too


# -- webhooks ------------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST, answers 500 to the first `failures`."""

    def __init__(self, port: int = 0, failures: int = 0) -> None:
        self.seen: list[tuple[float, dict[str, str], bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((time.monotonic(), dict(self.headers.items()), body))
                status = 500 if len(receiver.seen) <= receiver.failures else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/subtitler?token=t0k3n"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_signed_retried_with_backoff_and_refused_hosts(fw_backend, mp3, tmp_path):
    receiver = Receiver(failures=2)
    try:
        with running(tmp_path, [fw_backend], webhook_secret=SECRET, webhook_allow=("127.0.0.1",),
                     webhook_backoff=0.3) as srv:
            url = uploaded(srv, mp3.read_bytes())
            # Hosts not on the allow-list are refused at once: the server never posts to them.
            for bad in ("http://169.254.169.254/latest/", "http://localhost.evil.example/x", "file:///etc/x"):
                resp = httpx.post(srv.url + MODEL, headers=auth(), json={"input": {}, "URL": url,
                                                                          "callback_url": bad})
                assert resp.status_code == 400 and "callback_url" in resp.json()["message"], bad
            resp = httpx.post(srv.url + MODEL, headers=auth(), json={"input": {"language": "en"}, "URL": url,
                                                                      "callback_url": receiver.url})
            assert resp.status_code == 202
            job = resp.json()["response"]
            until(lambda: len(receiver.seen) >= 3, timeout=60)
            # A job that fails is told too.
            failing = httpx.post(srv.url + MODEL, headers=auth(), json={
                "input": {"language": "fr"}, "URL": uploaded(srv, mp3.read_bytes()),
                "callback_url": receiver.url}).json()["response"]
            until(lambda: len(receiver.seen) >= 4, timeout=60)
            # And one cancelled.
            cancelled = httpx.post(srv.url + MODEL, headers=auth(), json={
                "input": {"language": "en", "beam_size": 2}, "URL": uploaded(srv, mp3.read_bytes()),
                "callback_url": receiver.url}).json()["response"]
            assert httpx.delete(cancelled["urls"]["GET"], headers=auth()).status_code == 200
            until(lambda: len(receiver.seen) >= 5, timeout=60)
            rows = srv.store._db.execute("SELECT state, attempts FROM deliveries ORDER BY id").fetchall()
            assert [tuple(r) for r in rows] == [("delivered", 3), ("delivered", 1), ("delivered", 1)]
        times = [t for t, _, _ in receiver.seen]
        assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6  # 0.3 s, then twice that
        for _, headers, body in receiver.seen:
            assert verify(SECRET, headers[SIGNATURE_HEADER], body)
            assert not verify("another secret", headers[SIGNATURE_HEADER], body)
            assert not verify(SECRET, headers[SIGNATURE_HEADER], body[:-1] + b" }")
        assert len({h[DELIVERY_HEADER] for _, h, _ in receiver.seen[:3]}) == 1  # a retry is the same delivery
        done = json.loads(receiver.seen[2][2])
        assert done["id"] == job["id"] and done["status"] == "success" and done["event"] == "job.ended"
        assert done["result"]["text"].strip() and done["finishedAt"]
        failed = json.loads(receiver.seen[3][2])
        assert failed["id"] == failing["id"] and failed["status"] == "failed"
        assert "English-only" in failed["message"]
        gone = json.loads(receiver.seen[4][2])
        assert gone["id"] == cancelled["id"] and gone["status"] == "cancelled" and "result" not in gone
    finally:
        receiver.close()


def test_webhook_not_delivered_before_a_restart_is_delivered_after(fw_backend, mp3, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there yet: the first attempt is refused
    hook = f"http://127.0.0.1:{port}/hook"
    settings = {"webhook_secret": SECRET, "webhook_url": hook, "webhook_backoff": 0.5}
    with running(tmp_path, [fw_backend], **settings) as srv:
        job = submit(srv, uploaded(srv, mp3.read_bytes()), {"language": "en"}).json()["response"]
        assert wait(job["urls"]["GET"])["status"] == "success"
        until(lambda: srv.store._db.execute("SELECT attempts FROM deliveries").fetchone()[0] >= 1)
    receiver = Receiver(port)
    try:
        with running(tmp_path, [fw_backend], **settings):  # the same data folder
            until(lambda: receiver.seen, timeout=30)
        _, headers, body = receiver.seen[0]
        assert verify(SECRET, headers[SIGNATURE_HEADER], body) and json.loads(body)["id"] == job["id"]
    finally:
        receiver.close()


def test_webhook_url_without_a_secret_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "subtitler", "serve", "--port", "0", "--data-dir",
                           str(tmp_path / "d"), "--webhook-url", "http://127.0.0.1:9/x"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "SUBTITLER_WEBHOOK_SECRET"})
    assert proc.returncode == 30 and "--webhook-url needs a secret" in proc.stderr.splitlines()[-1]


# -- metrics and the access log -------------------------------------------------------------------------


def scrape(srv: Server) -> dict[tuple[str, tuple], float]:
    resp = httpx.get(f"{srv.url}/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_metrics_move_and_access_log_is_json_without_secrets(fw_backend, mp3, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="subtitler.serve.access")
    with running(tmp_path, [fw_backend]) as srv:
        before = scrape(srv)
        assert before[("subtitler_serve_queue_depth", ())] == 0
        url = uploaded(srv, mp3.read_bytes())
        job = submit(srv, url, {"language": "en"}).json()["response"]
        assert wait(job["urls"]["GET"])["status"] == "success"
        for _ in range(3):
            httpx.get(f"{srv.url}/health")
        after = scrape(srv)
    assert after[("subtitler_serve_jobs", (("state", "success"),))] == 1
    assert before[("subtitler_serve_jobs", (("state", "success"),))] == 0
    assert 7 < after[("subtitler_serve_worker_audio_seconds_total", (("worker", "0"),))] < 9
    assert after[("subtitler_serve_worker_busy_seconds_total", (("worker", "0"),))] > 0
    assert after[("subtitler_serve_worker_audio_seconds_per_second", (("worker", "0"),))] > 0
    health = ("subtitler_serve_request_duration_seconds_count",
              (("method", "GET"), ("route", "/health"), ("status", "200")))
    assert after[health] == 3
    polls = ("subtitler_serve_request_duration_seconds_count",
             (("method", "GET"), ("route", "/v1/async/results/{job_id}"), ("status", "200")))
    assert after[polls] >= 1  # a route's template, not its ids
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "subtitler.serve.access"]
    assert {"time", "method", "path", "route", "status", "ms", "client"} <= set(lines[0])
    put = next(line for line in lines if line["method"] == "PUT")
    assert put["status"] == 200 and put["route"] == "/v1/uploads/{name}" and "?" not in put["path"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "signature" not in text and "expires" not in text and KEY not in text


# -- request limits -------------------------------------------------------------------------------------


def raw(srv: Server, data: bytes) -> socket.socket:
    host, port = srv.sock.getsockname()[:2]
    conn = socket.create_connection((host, port), timeout=10)
    conn.sendall(data)
    return conn


def answer(conn: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    got = b""
    while chunk := conn.recv(65536):
        got += chunk
    return got


def test_header_and_body_timeouts_and_json_size_limits(fw_backend, tmp_path):
    with running(tmp_path, [fw_backend], header_timeout=0.5, body_timeout=0.5) as srv:
        # Headers that never end (slowloris): the connection is closed, nothing answered.
        start = time.monotonic()
        with raw(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n") as conn:
            assert answer(conn) == b"" and time.monotonic() - start < 3
        # The same after a first answer on a kept-alive connection.
        with raw(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\n") as conn:
            got = answer(conn)
            assert got.count(b"HTTP/1.1 200") == 1 and time.monotonic() - start < 6
        # A body that stalls: 408.
        head = (f"POST {MODEL} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"input\"").encode()
        with raw(srv, head) as conn:
            got = answer(conn)
            assert got.startswith(b"HTTP/1.1 408") and b"stalled" in got
        # Headers that go on and on: refused at h11's limit, before they end.
        with raw(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000) as conn:
            assert answer(conn).startswith(b"HTTP/1.1 400")
        # Every route but an upload's is capped at 1 MiB, before routing; a body that does not say
        # its size (chunked) is cut off at the limit where it is read.
        big = b'{"x": "' + b"a" * (2**20) + b'"}'
        for path in ("/v1/input/upload-url?extension=mp3", MODEL, "/v1/async/results", "/nowhere"):
            resp = httpx.post(srv.url + path, headers=auth(), content=big)
            assert resp.status_code == 413 and resp.json()["code"] == 413, path
        resp = httpx.post(srv.url + MODEL, headers=auth(), content=iter([big[: 2**19], big[2**19:]]))
        assert resp.status_code == 413 and "larger than 1048576 bytes" in resp.json()["message"]
        assert httpx.get(f"{srv.url}/health").status_code == 200
        assert upload_url(srv)  # small bodies pass


# -- SIGTERM -------------------------------------------------------------------------------------------


@pytest.mark.serial
def test_sigterm_requeues_past_the_grace_then_drains_a_running_job(sample, tmp_path):
    data, port, log = tmp_path / "data", free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"

    def processing(poll: str) -> bool:
        return httpx.get(poll, headers=auth(), timeout=10).json()["status"] == "processing"

    proc = start(data, port, log, "--grace", "0.2", keys=(KEY,))
    try:
        put = httpx.post(f"{base}/v1/input/upload-url?extension=mp4", headers=auth()).json()
        put = put["uploadUrl"]["PUT"]
        assert httpx.put(put, content=sample.read_bytes()).status_code == 200
        resp = httpx.post(base + MODEL, headers=auth(), json={"input": {"language": "en"}, "URL": put})
        job = resp.json()["response"]
        poll = job["urls"]["GET"]
        until(lambda: processing(poll), timeout=60, step=0.02)
        # Past the grace the job is cut off: 143, and it is left to run again.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143, log.read_text()
        assert job_row(data, job["id"]) == {"state": "processing", "attempts": 1}

        proc = start(data, port, log, keys=(KEY,))  # the default grace (30 s): the job runs again...
        until(lambda: processing(poll), timeout=60, step=0.02)
        proc.send_signal(signal.SIGTERM)  # ...and SIGTERM waits for it
        time.sleep(0.2)
        refused = httpx.post(f"{base}/v1/input/upload-url?extension=mp3", headers=auth())
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert httpx.get(f"{base}/ready").status_code == 503
        assert httpx.get(f"{base}/health").status_code == 200
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert job_row(data, job["id"]) == {"state": "success", "attempts": 2}
    assert "stopped after SIGTERM, no job cut off" in log.read_text()


PROBER = '''
import http.client, json, os, sys, time
conn, latencies = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10), []
while not os.path.exists(sys.argv[2]):
    start = time.perf_counter()
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b'{"status":"ok"}'
    latencies.append(time.perf_counter() - start)
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0.02)
print(json.dumps(latencies))
'''


# -- load -----------------------------------------------------------------------------------------------


def clips(sample: Path, folder: Path, n: int, seconds: float = 2.5) -> list[bytes]:
    """n different WAV clips of the sample (different audio: the transcript cache answers none)."""
    whole = folder / "sample.wav"
    ffmpeg("-i", str(sample), "-ac", "1", "-ar", "16000", str(whole))
    with wave.open(str(whole)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    out = []
    for k in range(n):
        start = int(k * 0.85 * 16000) * 2
        path = folder / f"clip{k}.wav"
        with wave.open(str(path), "wb") as w:
            w.setparams(params)
            w.writeframes(frames[start:start + int(seconds * 16000) * 2])
        out.append(path.read_bytes())
    return out


@pytest.mark.serial
def test_thirty_jobs_from_three_keys_two_workers(sample, tmp_path):
    keys = (KEY, OTHER, THIRD)
    media = clips(sample, tmp_path, 30, seconds=1.5)
    latencies: list[float] = []
    refusals: list[int] = []
    port, log = free_port(), tmp_path / "serve.log"
    # The real command in its own process (the clients' threads share no interpreter with it).
    proc = start(tmp_path / "data", port, log, "--workers", "2", "--max-queue", "8", keys=keys)
    srv = Server.__new__(Server)  # what the helpers use of a server: its URL
    srv.url = f"http://127.0.0.1:{port}"
    try:
        # The prober in a process of its own, as a load balancer's: the clients' threads here do not
        # hold it up.
        stop = tmp_path / "stop-probing"
        prober = subprocess.Popen([sys.executable, "-c", PROBER, str(port), str(stop)],
                                  stdout=subprocess.PIPE, text=True)

        def client(k: int) -> tuple[str, str]:
            key = keys[k % 3]
            url = upload_url(srv, key, "wav")
            # Generous timeouts: 30 uploads at once are probed one after another, at a low priority.
            assert httpx.put(url, content=media[k], timeout=60).status_code == 200
            while (resp := submit(srv, url, {"language": "en"}, key)).status_code == 429:
                refusals.append(int(resp.headers["Retry-After"]))
                time.sleep(min(refusals[-1], 2))
            assert resp.status_code == 202, resp.text
            poll = resp.json()["response"]["urls"]["GET"]
            with httpx.Client(headers=auth(key), timeout=60) as http:
                body = until(lambda: (b := http.get(poll).json())["status"] in ("success", "failed") and b,
                             timeout=240, step=0.5)
            assert body["status"] == "success", body
            return key, body["id"]

        try:
            with ThreadPoolExecutor(30) as pool:
                done = list(pool.map(client, range(30)))
        finally:
            stop.touch()
            latencies = json.loads(prober.communicate(timeout=30)[0])
        for key in keys:
            mine = httpx.get(f"{srv.url}/v1/async/results", headers=auth(key)).json()["jobs"]
            listed = {j["id"] for j in mine}
            assert listed == {job for owner, job in done if owner == key}
        busy = [s.value for f in text_string_to_metric_families(httpx.get(f"{srv.url}/metrics").text)
                for s in f.samples if s.name == "subtitler_serve_worker_busy_seconds_total"]
        assert len(busy) == 2 and all(busy)  # both workers worked
    finally:
        proc.kill()
        proc.wait(10)
    assert refusals and min(refusals) >= 1  # the queue bound said when to come back
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    assert len(latencies) > 100 and p99 < 0.05, f"/health p99 {p99 * 1000:.0f} ms over {len(latencies)}"
