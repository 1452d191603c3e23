"""`subtitler serve` speaking whisper-asr-webservice's API, as Bazarr's Whisper provider calls it.

The server is test_serve_tiyaro's (tiny.en, two keys). The client does what Bazarr's
`whisperai` provider does, with `requests` as it does: ffmpeg to headerless s16le mono 16 kHz,
POST /detect-language?encode=false, then /asr?task=transcribe&language=en&output=srt&encode=false
with the bytes as `audio_file`, and the body saved as the SRT whatever the status.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import openai
import pytest
import requests
import srt

from subtitler.serve.auth import Keys
from tests import test_serve_tiyaro as tiyaro
from tests.conftest import ffmpeg
from tests.test_serve_tiyaro import KEY, auth, clip_wer, files

pytestmark = pytest.mark.engine
server, mp3 = tiyaro.server, tiyaro.mp3  # its fixtures: a server for this module, the clip as MP3


@pytest.fixture(scope="module")
def pcm(short_clip) -> bytes:
    """The clip as Bazarr's encode_audio_stream makes it: ffmpeg's s16le on stdout."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "0", "-i", str(short_clip),
                           "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000",
                           "-af", "aresample=async=1", "-"], capture_output=True, check=True).stdout


def endpoint(server, key: str | None = KEY) -> str:
    """Bazarr's endpoint setting: the key as the URL's password (requests sends it as Basic auth)."""
    return server.url.replace("http://", f"http://bazarr:{key}@") if key else server.url


def test_bazarrs_calls(server, pcm, reference, tmp_path):
    session = requests.Session()
    session.headers["User-Agent"] = "Subliminal/2.1.0"
    base = endpoint(server)
    r = session.post(f"{base}/detect-language", params={"encode": "false"}, files={"audio_file": pcm},
                     timeout=(5, 120))
    assert r.status_code == 200
    # tiny.en knows one language: sure of it.
    assert r.json() == {"detected_language": "english", "language_code": "en", "confidence": 1.0}
    r = session.post(f"{base}/asr", params={"task": "transcribe", "language": "en", "output": "srt",
                                            "encode": "false"},
                     files={"audio_file": pcm}, timeout=(5, 120))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="audio_file.srt"'
    subs = list(srt.parse(r.content.decode()))
    assert len(subs) >= 2 and clip_wer(reference, " ".join(s.content for s in subs)) < 0.1
    assert subs[0].start.total_seconds() == pytest.approx(reference["words"][0]["start"], abs=0.3)
    saved = tmp_path / "episode.en.srt"
    saved.write_bytes(r.content)  # what Bazarr does with it
    proc = subprocess.run([sys.executable, "-m", "subtitler", "check", str(saved)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_encoded_media_and_every_output(server, mp3, reference):
    texts = {}
    for output in ("vtt", "txt", "tsv", "json"):
        with open(mp3, "rb") as f:
            r = requests.post(f"{server.url}/asr", params={"output": output, "language": "en"},
                              files={"audio_file": ("clip.mp3", f)}, headers=auth())
        assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["content-disposition"] == f'attachment; filename="clip.mp3.{output}"'
        texts[output] = r.text
    assert texts["vtt"].startswith("WEBVTT\n") and "-->" in texts["vtt"]
    assert texts["tsv"].startswith("start\tend\ttext\n")
    result = json.loads(texts["json"])  # openai-whisper's result dict, with words
    assert result["language"] == "en" and result["segments"][0]["words"]
    assert clip_wer(reference, texts["txt"]) < 0.1 and clip_wer(reference, result["text"]) < 0.1
    with open(mp3, "rb") as f:  # any media, its first 30 s heard
        r = requests.post(f"{server.url}/detect-language", files={"audio_file": ("clip.mp3", f)},
                          headers=auth())
    assert r.status_code == 200 and r.json()["language_code"] == "en"


def _bazarr_post(server, path: str, params: dict, data: bytes, key: str | None = KEY) -> requests.Response:
    return requests.post(f"{endpoint(server, key)}{path}", params=params, files={"audio_file": data},
                         timeout=(5, 60))


@pytest.mark.parametrize("path, params, data, status, text", [
    ("/asr", {"encode": "true", "output": "srt"}, b"this is not media at all\n" * 40, 415, "not media"),
    ("/asr", {"encode": "false", "output": "srt"}, b"", 400, "empty"),
    ("/asr", {"encode": "false", "output": "srt"}, b"\x01\x02\x03", 400, "odd number"),
    ("/asr", {"encode": "false", "output": "srt"}, "mp3", 400, "encode=true"),
    ("/asr", {"encode": "false", "output": "docx"}, "pcm", 422, "output"),
    ("/asr", {"encode": "false", "task": "summarize"}, "pcm", 422, "task"),
    ("/asr", {"encode": "maybe"}, "pcm", 422, "encode"),
    ("/asr", {"encode": "false", "language": "klingon"}, "pcm", 400, "klingon"),
    ("/asr", {"encode": "false", "language": "fr"}, "pcm", 400, "English-only"),
    ("/detect-language", {"encode": "true"}, b"not media", 415, "not media"),
])
def test_errors_are_never_a_200_nor_look_like_subtitles(server, mp3, pcm, path, params, data, status, text):
    before = files(server)
    body = {"mp3": mp3.read_bytes(), "pcm": pcm}.get(data, data) if isinstance(data, str) else data
    r = _bazarr_post(server, path, params, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and "-->" not in r.text
    assert text in r.json()["detail"]
    assert files(server) == before


def test_keys(server, pcm):
    for key in (None, "wrong"):
        r = _bazarr_post(server, "/asr", {"encode": "false", "output": "srt"}, pcm, key=key)
        assert r.status_code == 401 and "API key" in r.json()["detail"] and "-->" not in r.text
    r = requests.post(f"{server.url}/detect-language", params={"encode": "false"}, files={"audio_file": pcm},
                      headers=auth())  # a bearer key works too
    assert r.status_code == 200 and r.json()["language_code"] == "en"
    paths = requests.get(f"{server.url}/openapi.json").json()["paths"]
    params = {p["name"] for p in paths["/asr"]["post"]["parameters"]}
    assert {"encode", "task", "language", "initial_prompt", "vad_filter", "word_timestamps", "output"} \
        <= params
    assert "audio_file" in str(paths["/detect-language"]["post"]["requestBody"])


@pytest.mark.serial
def test_busy_queue_a_full_queue_and_a_client_that_leaves(server, sample, mp3, pcm, tmp_path):
    """The requests wait in the server's one queue: past --max-queue (2 here) both APIs answer 429
    with Retry-After, each in its shape; a client that goes away cancels its job."""
    before = files(server)
    # Uploaded first, so that submitting them takes no time while the worker is busy.
    urls = [tiyaro.uploaded(server, mp3.read_bytes()) for _ in range(2)]
    long = tmp_path / "long.mp3"  # the sample 4 times: the worker stays busy through the test, loaded too
    ffmpeg("-stream_loop", "3", "-i", str(sample), "-vn", "-ac", "1", "-b:a", "32k", str(long))
    busy = tiyaro.submit(server, tiyaro.uploaded(server, long.read_bytes()), {"beam_size": 2, "best_of": 3})
    poll = busy.json()["response"]["urls"]["GET"]
    deadline = time.monotonic() + 30
    while requests.get(poll, headers=auth()).json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    waiting = [tiyaro.submit(server, url, {"beam_size": 3}) for url in urls]
    assert [r.status_code for r in waiting] == [202, 202]
    r = _bazarr_post(server, "/asr", {"encode": "false", "output": "srt"}, pcm)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "queue is full" in r.json()["detail"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as client, \
            open(mp3, "rb") as f:
        with pytest.raises(openai.RateLimitError) as refused:
            client.audio.transcriptions.create(model="whisper-1", file=f)
    assert refused.value.response.headers["Retry-After"] and refused.value.body["code"] == "queue_full"
    for job in waiting:
        assert requests.delete(job.json()["response"]["urls"]["GET"], headers=auth()).status_code == 200
    # Room again: this request's job waits behind the busy worker; its client gives up after 1 s.
    with pytest.raises(requests.Timeout):
        requests.post(f"{server.url}/asr", params={"encode": "false", "initial_prompt": "Dashwood"},
                      files={"audio_file": pcm}, headers=auth(), timeout=(5, 1))
    owner = Keys([KEY]).hashes[0]
    deadline = time.monotonic() + 10
    while (left := server.store.jobs(owner)[-1])["state"] != "cancelled":
        assert time.monotonic() < deadline and left["tier"] == "asr", left
        time.sleep(0.05)
    assert requests.get(poll, headers=auth()).json()["status"] == "processing"  # busy all along
    assert requests.delete(poll, headers=auth()).status_code == 200
    assert not {f for f in files(server) - before if f.startswith("uploads/")}  # nothing of them kept


def test_serve_profile_lays_out_the_subtitles(pcm, tmp_path):
    """`subtitler serve --profile ... --max-line-chars 24`: the answers' cues keep those rules."""
    env = {**os.environ, "SUBTITLER_SERVE_KEYS": KEY}
    args = ["--port", "0", "--data-dir", str(tmp_path / "data"), "-m", "tiny.en", "--profile", "bbc",
            "--max-line-chars", "24"]
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", "serve", *args], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = re.search(r"serving on (http://\S+)", line).group(1)
        deadline = time.monotonic() + 60
        while requests.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        r = requests.post(f"{url}/asr", params={"encode": "false", "output": "srt", "language": "en"},
                          files={"audio_file": pcm}, headers=auth())
        assert r.status_code == 200
        lines = [t for s in srt.parse(r.text) for t in s.content.splitlines()]
        assert max(len(t) for t in lines) <= 24 < max(len(t) for t in lines) + 8
        (tmp_path / "clip.srt").write_text(r.text)
        check = subprocess.run([sys.executable, "-m", "subtitler", "check", str(tmp_path / "clip.srt"),
                                "--profile", "bbc", "--max-line-chars", "24"], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    finally:
        proc.terminate()
        proc.wait(10)
