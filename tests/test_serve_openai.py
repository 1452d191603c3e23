"""`subtitler serve` speaking OpenAI's audio API: a real server on 127.0.0.1, the real engine.

The server is test_serve_tiyaro's (tiny.en, two keys); the clients are the official `openai`
SDK and our own `openai` backend. Every request is a job of the server's queue.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import httpx
import openai
import pytest

from subtitler.config import Config
from subtitler.options import DecodeOptions
from subtitler.pipeline import Subtitler
from subtitler.serve.app import ServeSettings
from subtitler.serve.auth import Keys
from subtitler.specs import EngineSpec, JobSpec, TranscriptionSpec
from tests import test_serve_tiyaro as tiyaro
from tests.test_serve_tiyaro import KEY, OTHER, auth, clip_wer, files

pytestmark = pytest.mark.engine
server, mp3 = tiyaro.server, tiyaro.mp3  # its fixtures: a server for this module, the clip as MP3


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as c:
        yield c


def test_sdk_verbose_json_with_words_and_segments(client, mp3, reference):
    with open(mp3, "rb") as f:
        t = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                               timestamp_granularities=["word", "segment"], language="en")
    assert t.language == "english" and 7.5 < t.duration < 8.5
    assert clip_wer(reference, t.text) < 0.1
    assert t.segments and t.segments[0].start < t.segments[0].end
    words = t.words
    assert len(words) >= 15 and all(w.word == w.word.strip() and w.start <= w.end for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words) and words[-1].end <= 8.1
    # The words are where the sample says them: its first word, "and", starts at 0.70 s.
    first = reference["words"][0]
    assert words[0].word.lower() == first["text"] and abs(words[0].start - first["start"]) < 0.3


def test_sdk_srt_vtt_text_json_from_one_transcription(client, server, mp3, reference, tmp_path, fw_backend):
    answers = {}
    for fmt in ("srt", "vtt", "text", "json"):
        with open(mp3, "rb") as f:
            answers[fmt] = client.audio.transcriptions.create(model="tiny.en", file=f, response_format=fmt,
                                                              prompt="LibriVox", temperature=0.0)
    srt, vtt = answers["srt"], answers["vtt"]
    assert isinstance(srt, str) and srt.startswith("1\n00:00:0") and " --> " in srt
    assert vtt.startswith("WEBVTT\n") and "-->" in vtt
    assert clip_wer(reference, answers["text"]) < 0.1
    assert answers["json"].text.strip() == answers["text"].strip()
    # subtitler's own layout: the files pass `subtitler check` (netflix: 42 characters, 2 lines...).
    for fmt in ("srt", "vtt"):
        (tmp_path / f"clip.{fmt}").write_text(answers[fmt])
    proc = subprocess.run([sys.executable, "-m", "subtitler", "check", str(tmp_path / "clip.srt"),
                           str(tmp_path / "clip.vtt")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(len(line) <= 42 for line in srt.splitlines())
    # Byte for byte what the command line's own path writes for the same audio and options.
    options = DecodeOptions(initial_prompt="LibriVox", temperature=0.0)
    local = Subtitler(backend="faster-whisper", model="tiny.en", engine=fw_backend, formats=["srt", "vtt"],
                      options=options, output_dir=tmp_path / "cli", record=False, config=Config(()))
    local = local.subtitle(mp3)
    assert [p.read_text() for p in local.outputs] == [srt, vtt]
    # One engine run: the three later requests (same audio, same settings) came from the transcript cache.
    jobs = server.store.jobs(Keys([KEY]).hashes[0])[-4:]
    assert [j["state"] for j in jobs] == ["success"] * 4
    assert [j["message"] for j in jobs] == [None] + ["answered from the transcript cache"] * 3


def test_our_openai_backend_through_the_server(server, short_clip, reference, tmp_path, monkeypatch):

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    result = Subtitler(backend="openai", output_dir=tmp_path, record=False, formats=["srt"],
                       options=DecodeOptions(language="en")).subtitle(short_clip)
    assert clip_wer(reference, result.transcript.text) < 0.1
    words = result.transcript.words
    assert len(words) >= 15 and words[0].start < 1.2 and words[-1].end <= 8.1
    assert (tmp_path / "short.srt").read_text().startswith("1\n")


def test_models(client, server):
    assert [m.id for m in client.models.list()] == ["whisper-1", "tiny.en", "whisper-tiny.en"]
    assert client.models.retrieve("tiny.en").id == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("large-v3")
    # /docs shows the routes and their forms.
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    form = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    fields = set(form["schema"]["properties"])
    assert {"file", "model", "response_format", "timestamp_granularities[]"} <= fields
    assert "/v1/audio/translations" in paths and "/v1/models" in paths


def _post(server, data: dict, content: bytes | None, key: str | None = KEY, name: str = "clip.mp3",
          path: str = "transcriptions") -> httpx.Response:
    files = {"file": (name, content, "audio/mpeg")} if content is not None else None
    return httpx.post(f"{server.url}/v1/audio/{path}", data=data, files=files,
                      headers=auth(key) if key else {})


@pytest.mark.parametrize("data, content, status, param, text", [
    ({"model": "whisper-1"}, b"this is not media at all\n" * 40, 400, "file", "not media"),
    ({"model": "whisper-1"}, b"", 400, "file", "empty"),
    ({"model": "whisper-1"}, None, 400, None, "multipart/form-data"),
    ({"model": "whisper-1", "response_format": "docx"}, "mp3", 400, "response_format", "response_format"),
    ({"model": "whisper-1", "timestamp_granularities[]": "char"}, "mp3", 400, "timestamp_granularities[]",
     "word and/or segment"),
    ({}, "mp3", 400, "model", "model"),
    ({"model": "large-v3"}, "mp3", 404, "model", "does not exist"),
    ({"model": "whisper-1", "language": "klingon"}, "mp3", 400, "language", "klingon"),
    ({"model": "whisper-1", "temperature": "hot"}, "mp3", 400, "temperature", "number"),
    ({"model": "whisper-1", "temperature": "3"}, "mp3", 400, "temperature", "temperature"),
])
def test_bad_requests_in_openais_shape(server, mp3, data, content, status, param, text):
    before = files(server)
    resp = _post(server, data, mp3.read_bytes() if content == "mp3" else content)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and text in error["message"] and error["type"] == "invalid_request_error"
    assert files(server) == before  # nothing kept


def test_keys(server, mp3, client):
    before = files(server)
    for key in (None, "wrong"):
        resp = _post(server, {"model": "whisper-1"}, mp3.read_bytes(), key=key)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    assert files(server) == before
    # A job belongs to its key: another key's listing does not show it.
    with open(mp3, "rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    mine = httpx.get(f"{server.url}/v1/async/results", headers=auth()).json()["jobs"]
    theirs = httpx.get(f"{server.url}/v1/async/results", headers=auth(OTHER)).json()["jobs"]
    assert mine and not {j["id"] for j in mine} & {j["id"] for j in theirs}
    # Its upload is gone once answered; only the result stays.
    assert not {f for f in files(server) - before if f.startswith("uploads/")}


def test_an_english_only_model_refuses_a_translation(server, mp3):
    resp = _post(server, {"model": "whisper-1"}, mp3.read_bytes(), path="translations")
    assert resp.status_code == 400 and "English-only" in resp.json()["error"]["message"]


@pytest.fixture(scope="module")
def base_server(tmp_path_factory):
    """A second server on the multilingual `base` model, loaded in its worker's thread."""
    settings = ServeSettings(port=0, data_dir=tmp_path_factory.mktemp("serve-base"))
    spec = JobSpec(TranscriptionSpec(EngineSpec("faster-whisper", "base")))
    with tiyaro.running(settings, Keys([KEY]), spec=spec) as srv:
        yield srv


def test_sdk_translation_with_base(base_server, mp3, reference):
    with openai.OpenAI(base_url=f"{base_server.url}/v1", api_key=KEY, max_retries=0) as c, \
            open(mp3, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's notice on translations
        t = c.audio.translations.create(model="base", file=f, response_format="verbose_json")
    # The sample is English speech: its translation into English is what it says.
    assert t.language == "english" and clip_wer(reference, t.text) < 0.25
    job = base_server.store.jobs(Keys([KEY]).hashes[0])[-1]
    assert job["state"] == "success" and '"task": "translate"' in job["options"]
    # A multilingual model detects the language, and says how sure it is (whisper-asr-webservice's
    # `confidence`: the engine's probability, not a constant).
    with open(mp3, "rb") as f:
        r = httpx.post(f"{base_server.url}/detect-language", files={"audio_file": f},
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    answer = r.json()
    assert r.status_code == 200 and answer["language_code"] == "en"
    assert 0.5 < answer["confidence"] < 1.0
