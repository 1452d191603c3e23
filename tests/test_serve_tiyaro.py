"""`subtitler serve` speaking Tiyaro's async protocol: a real server on 127.0.0.1, the real engine.

One server for the module (uvicorn in a thread, the session's faster-whisper tiny.en as its
engine), two API keys. Clients: our own `tiyaro` backend, the Tiyaro post's sample client, and
plain httpx for what the protocol adds and for bad input.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jiwer
import pytest

from subtitler.config import Config
from subtitler.serve.app import ServeSettings
from subtitler.serve.auth import Keys, Signer
from subtitler.serve.server import Server
from subtitler.specs import EngineSpec, JobSpec, TranscriptionSpec
from tests import tiyaro_sample_client as sample_client
from tests.accuracy import normalize
from tests.conftest import ffmpeg

pytestmark = pytest.mark.engine

KEY, OTHER = "key-a-0123456789", "key-b-9876543210"
SPEC = JobSpec(TranscriptionSpec(EngineSpec("faster-whisper", "tiny.en")))
MAX_UPLOAD = 2 * 2**20
MODEL = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny.en"


@contextlib.contextmanager
def running(settings: ServeSettings, keys: Keys, engines: list | None = None, spec: JobSpec = SPEC,
            timeout: float = 60) -> Iterator[Server]:
    """A server in a thread, its engines ready, until the block ends (`engines`: loaded ones to use;
    None: it loads its own)."""
    srv = Server(settings, spec, keys, config=Config(()), engines=engines)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not srv.workers.ready.is_set():
            assert time.monotonic() < deadline and srv.workers.error is None
            time.sleep(0.05)
        yield srv
    finally:
        srv.stop()
        thread.join(15)


@pytest.fixture(scope="module")
def server(fw_backend, tmp_path_factory):
    settings = ServeSettings(port=0, data_dir=tmp_path_factory.mktemp("serve-data"), max_queue=2,
                             max_upload=MAX_UPLOAD)
    with running(settings, Keys([KEY, OTHER]), [fw_backend], timeout=30) as srv:
        yield srv


@pytest.fixture(scope="module")
def mp3(short_clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve-media") / "short.mp3"
    ffmpeg("-i", str(short_clip), "-vn", "-c:a", "libmp3lame", "-b:a", "64k", str(out))
    return out


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload_url(server: Server, key: str = KEY, ext: str = "mp3") -> str:
    resp = httpx.post(f"{server.url}/v1/input/upload-url", params={"extension": ext}, json={},
                      headers=auth(key))
    assert resp.status_code == 201, resp.text
    return resp.json()["uploadUrl"]["PUT"]


def uploaded(server: Server, data: bytes, key: str = KEY) -> str:
    url = upload_url(server, key)
    assert httpx.put(url, content=data).status_code == 200
    return url


def submit(server: Server, url: str, inputs: dict | None = None, key: str = KEY,
           headers: dict[str, str] | None = None) -> httpx.Response:
    headers = auth(key) if headers is None else headers
    return httpx.post(server.url + MODEL, params={"serviceTier": "cpuflex"},
                      json={"input": inputs or {}, "URL": url}, headers=headers)


def wait(poll_url: str, key: str = KEY, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(poll_url, headers=auth(key)).json()
        if body["status"] not in ("accepted", "pending", "processing"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def files(server: Server) -> set[str]:
    """What the server keeps on disk: uploads, results, half-written files."""
    store = server.store
    return {str(p.relative_to(store.folder)) for d in (store.uploads, store.results, store.tmp)
            for p in d.iterdir()}


def clip_wer(reference: dict, text: str) -> float:
    """The word error rate of `text` against what the sample says in the clip's 8 s."""
    said = " ".join(w["text"] for w in reference["words"] if w["end"] <= 8.0)
    return jiwer.wer(normalize(said), normalize(text))


def test_our_tiyaro_backend_subtitles_through_the_server(server, short_clip, reference, tmp_path,
                                                         monkeypatch):
    from subtitler.pipeline import Subtitler

    monkeypatch.setenv("TIYARO_API_KEY", KEY)
    monkeypatch.setenv("TIYARO_BASE_URL", server.url)
    monkeypatch.setenv("TIYARO_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("SUBTITLER_STATE_DIR", str(tmp_path / "state"))
    result = Subtitler(backend="tiyaro", model="tiny.en", output_dir=tmp_path, record=False,
                       formats=["srt"]).subtitle(short_clip)
    srt = (tmp_path / "short.srt").read_text()
    assert clip_wer(reference, result.transcript.text) < 0.1
    assert "-->" in srt and all(w.text for w in result.transcript.words)
    # Word times came through: each word of the result inside the clip, in order.
    starts = [w.start for w in result.transcript.words]
    assert starts == sorted(starts) and 0 <= starts[0] and result.transcript.words[-1].end <= 8.1


def test_the_posts_sample_client_unchanged_but_for_the_base_url(server, mp3, reference):
    text = sample_client.async_infer(server.url, KEY, str(mp3))
    assert clip_wer(reference, text) < 0.1


def test_result_is_openai_whispers_dict_with_words(server, mp3):
    resp = submit(server, uploaded(server, mp3.read_bytes()), {"language": "en", "beam_size": 1})
    assert resp.status_code == 202
    job = resp.json()["response"]
    assert job["status"] == "accepted" and job["acceptedAt"] and job["id"]
    body = wait(job["urls"]["GET"])
    assert body["status"] == "success"
    result = body["result"]
    assert result["language"] == "en" and result["text"].strip()
    segment = result["segments"][0]
    for key in ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                "compression_ratio", "no_speech_prob", "words"):
        assert key in segment
    assert {"word", "start", "end", "probability"} <= set(segment["words"][0])


def test_same_audio_and_options_answered_from_the_transcript_cache(server, mp3):
    inputs = {"language": "en", "beam_size": 4}
    first = wait(submit(server, uploaded(server, mp3.read_bytes()), inputs).json()["response"]["urls"]["GET"])
    assert first["status"] == "success" and "message" not in first
    again = wait(submit(server, uploaded(server, mp3.read_bytes()), inputs).json()["response"]["urls"]["GET"])
    assert again["message"] == "answered from the transcript cache"
    assert again["result"] == first["result"]


def test_a_job_the_engine_refuses_fails_with_the_reason(server, mp3):
    job = submit(server, uploaded(server, mp3.read_bytes()), {"language": "fr"}).json()["response"]
    body = wait(job["urls"]["GET"])
    assert body["status"] == "failed" and "result" not in body
    assert "English-only" in body["message"] and str(server.store.folder) not in body["message"]


def test_idempotency_key_listing_and_owners(server, mp3):
    url = uploaded(server, mp3.read_bytes())
    first = submit(server, url, {"language": "en"}, headers={**auth(), "Idempotency-Key": "abc"})
    again = submit(server, url, {"language": "en"}, headers={**auth(), "Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 202
    job = first.json()["response"]
    assert again.json()["response"]["id"] == job["id"]
    assert wait(job["urls"]["GET"])["status"] == "success"
    mine = httpx.get(f"{server.url}/v1/async/results", headers=auth()).json()["jobs"]
    assert [j["id"] for j in mine].count(job["id"]) == 1
    theirs = httpx.get(f"{server.url}/v1/async/results", headers=auth(OTHER)).json()["jobs"]
    assert job["id"] not in [j["id"] for j in theirs]
    # Another key neither sees nor cancels it, nor submits my upload.
    assert httpx.get(job["urls"]["GET"], headers=auth(OTHER)).status_code == 404
    assert httpx.delete(job["urls"]["GET"], headers=auth(OTHER)).status_code == 404
    other_url = uploaded(server, mp3.read_bytes())
    assert submit(server, other_url, key=OTHER).status_code == 400
    # Ended: cancelling it is a conflict, and it stays a success.
    assert httpx.delete(job["urls"]["GET"], headers=auth()).status_code == 409


@pytest.mark.serial
def test_busy_worker_health_fast_queue_bound_and_cancel(server, sample, mp3, tmp_path):
    before = files(server)
    # Uploaded first, so that submitting them takes no time while the worker is busy.
    urls = [uploaded(server, mp3.read_bytes()) for _ in range(3)]
    # The sample six times over (long: on a quiet machine too), with options not used before (no
    # cache): the only worker is busy with it.
    long = tmp_path / "long.mp3"
    ffmpeg("-stream_loop", "5", "-i", str(sample), "-vn", "-ac", "1", "-b:a", "32k", str(long))
    busy = submit(server, uploaded(server, long.read_bytes()), {"beam_size": 2, "best_of": 2}).json()
    poll = busy["response"]["urls"]["GET"]
    deadline = time.monotonic() + 30
    while httpx.get(poll, headers=auth()).json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Two may wait (--max-queue 2); the third is told when to come back.
    waiting = [submit(server, url, {"beam_size": 3}) for url in urls[:2]]
    assert [r.status_code for r in waiting] == [202, 202]
    full = submit(server, urls[2], {"beam_size": 3})
    assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1
    assert full.json()["code"] == 429
    # /health answers fast while the worker transcribes.
    latencies: list[float] = []
    with httpx.Client() as client:  # one kept-alive connection, as a prober's
        while len(latencies) < 100 and server.workers.running:
            start = time.perf_counter()
            assert client.get(f"{server.url}/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.01)
    assert len(latencies) >= 20, ("the job ended too soon to tell", httpx.get(poll, headers=auth()).json())
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    assert p99 < 0.05, f"/health p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    # Typically a few ms: a kept-alive connection's answers are not held back 40 ms (TCP_NODELAY).
    assert statistics.median(latencies) < 0.02, f"/health median {statistics.median(latencies) * 1000:.0f} ms"
    # Cancel them all: the waiting ones never run, the running one's result will be dropped (its
    # upload goes at once: it ends as soon as it misses it, or at its end).
    for job in [*(r.json() for r in waiting), busy]:
        gone = httpx.delete(job["response"]["urls"]["GET"], headers=auth())
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    while server.workers.running:
        time.sleep(0.1)
    assert all(httpx.get(j["response"]["urls"]["GET"], headers=auth()).json()["status"] == "cancelled"
               for j in [busy, *(r.json() for r in waiting)])
    # Their uploads are gone at once; the refused one's upload is kept for a retry.
    left = files(server) - before
    assert len(left) == 1 and left.pop().startswith("uploads/")


@pytest.mark.parametrize("data, status, text", [
    (b"", 400, "empty"),
    (b"this is not media at all\n" * 40, 415, "not media"),
    (b"\0" * (MAX_UPLOAD + 1), 413, "larger than"),
])
def test_bad_uploads(server, data, status, text):
    before = files(server)
    url = upload_url(server)
    resp = httpx.put(url, content=data)
    assert resp.status_code == status and text in resp.json()["message"]
    assert files(server) == before
    # Nothing was uploaded: a job on that URL is refused.
    assert submit(server, url).status_code == 400


def test_tampered_expired_and_unsigned_upload_urls(server, mp3):
    before = files(server)
    url = upload_url(server)
    path, _, query = url.partition("?")
    expires, signature = (kv.split("=")[1] for kv in query.split("&"))
    forged = {
        "signature": f"{path}?expires={expires}&signature={'01'[signature[0] == '0']}{signature[1:]}",
        "later expiry": f"{path}?expires={int(expires) + 3600}&signature={signature}",
        "other upload": f"{path[:-36]}{'f' * 32}.mp3?{query}",
        "unsigned": path,
    }
    signer = Signer.for_folder(server.store.folder)  # the server's own secret, a past expiry
    rel = "/" + path.split("/", 3)[3]
    forged["expired"] = f"{path}?{signer.sign('PUT', rel, -10)}"
    for what, bad in forged.items():
        resp = httpx.put(bad, content=mp3.read_bytes())
        assert resp.status_code == 403, what
        assert "Forbidden" in resp.json()["message"], what
    assert files(server) == before
    assert httpx.put(url, content=mp3.read_bytes()).status_code == 200  # the real one works


def test_foreign_and_bad_job_requests(server, mp3):
    before = files(server)
    url = uploaded(server, mp3.read_bytes())
    upload_path = url.split("?")[0].split(str(server.url))[1]
    for foreign in ("http://169.254.169.254/latest/meta-data/", f"http://evil.example{upload_path}",
                    f"http://evil.example{url.split(str(server.url))[1]}", "file:///etc/passwd"):
        resp = submit(server, foreign)
        assert resp.status_code == 400 and "fetches nothing else" in resp.json()["message"], foreign
    bad = submit(server, url, {"beam_size": "five", "frobnicate": 1, "vad": False})
    assert bad.status_code == 400
    message = bad.json()["message"]
    assert "frobnicate" in message and "vad" in message and "beam_size" in message
    assert submit(server, url, {"temperature": 3}).status_code == 400
    assert submit(server, url, {"language": "klingon"}).status_code == 400
    resp = httpx.post(server.url + MODEL, params={"serviceTier": "turbo"}, headers=auth(),
                      json={"input": {}, "URL": url})
    assert resp.status_code == 400 and "serviceTier" in resp.json()["message"]
    resp = httpx.post(server.url + MODEL, headers=auth(), content=b"{not json")
    assert resp.status_code == 400
    resp = httpx.post(server.url + MODEL, headers=auth(), content=iter([b" " * 2**20, b"{}"]))  # chunked
    assert resp.status_code == 413
    assert httpx.get(f"{server.url}/v1/async/results/{'0' * 32}", headers=auth()).status_code == 404
    # An upload named as a transcript would be read as one by the job path: refused up front.
    resp = httpx.post(f"{server.url}/v1/input/upload-url?extension=json", headers=auth())
    assert resp.status_code == 400 and "not a media file" in resp.json()["message"]
    # Keys: none, wrong, or another scheme.
    for headers in ({}, auth("wrong"), {"Authorization": f"Basic {KEY}"}):
        resp = httpx.post(f"{server.url}/v1/input/upload-url?extension=mp3", headers=headers)
        assert resp.status_code == 401
        assert submit(server, url, headers=headers).status_code == 401
    # Nothing new on disk but the one good upload, still unused.
    assert len(files(server) - before) == 1


def test_health_ready_and_docs(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json()["ready"] is True
    assert httpx.get(f"{server.url}/docs").status_code == 200
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/v1/input/upload-url" in paths and "/v1/async/results/{job_id}" in paths


def test_two_workers_two_engines_two_jobs_at_once(mp3, tmp_path):
    with running(ServeSettings(port=0, data_dir=tmp_path / "data", workers=2), Keys([KEY])) as srv:
        assert httpx.get(f"{srv.url}/ready").status_code == 200  # loaded at start-up, before any job
        first, second = srv.workers.loaded
        assert first is not second  # a local engine is not shared between threads
        jobs = [submit(srv, uploaded(srv, mp3.read_bytes()), {"beam_size": n}).json()["response"]
                for n in (1, 2)]
        assert all(wait(j["urls"]["GET"])["status"] == "success" for j in jobs)
        a, b = (srv.store.job(j["id"]) for j in jobs)
        assert a["started"] < b["finished"] and b["started"] < a["finished"]  # they overlapped
