"""The openai backend against a fake of OpenAI's /v1/audio/transcriptions (tests/fake_openai.py).

The fake decodes what it receives with real ffmpeg and transcribes it with the
local engine (faster-whisper, tiny.en), so the remote path must give the
local engine's words, whole or cut into pieces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import subtitler_openai as openai  # installed by `make install`: a missing plugin must fail, not skip

from subtitler.backends import auto_backend_name, discover
from subtitler.cues import build_cues
from subtitler.errors import (
    BackendUnavailable,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteNoTimings,
    RemoteTimeout,
    RemoteTooLarge,
    UnsupportedOption,
)
from subtitler.events import Report
from subtitler.options import DecodeOptions
from subtitler.remote import wav_bytes
from subtitler.specs import EngineSpec
from subtitler.transcript import Transcript
from tests.accuracy import timing_hits, wer
from tests.fake_openai import FakeOpenAI
from tests.remote_fixtures import *  # noqa: F403 (fixtures: audio, local, engine)
from tests.remote_fixtures import error_text, same_words
from tests.upload_engine import ReferenceOracle, decode_upload

KEY = "sk-openai-test-fedcba9876543210"


@pytest.fixture
def fake(engine):
    with FakeOpenAI(transcribe=engine.openai, key=KEY) as f:
        yield f


@pytest.fixture
def env(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    for name in ("OPENAI_UPLOAD_LIMIT", "OPENAI_UPLOAD_FORMAT", "OPENAI_MAX_PARALLEL", "OPENAI_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def make(**settings) -> openai.OpenAIBackend:
    b = openai.OpenAIBackend(EngineSpec("openai", **settings))
    b.client.retry_backoff = 0.001
    return b


@pytest.fixture
def backend(env):
    b = make()
    yield b
    b.client.close()


def test_registered_remote_and_never_auto(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    entry = discover()["openai"]
    assert entry.cls is openai.OpenAIBackend and entry.problem is None  # no key needed: self-hosted
    assert entry.cls.remote and entry.cls.default_model == "whisper-1"
    assert auto_backend_name() != "openai"
    with pytest.raises(BackendUnavailable, match="remote ones are used only when named"):
        auto_backend_name({"openai": entry})
    with pytest.raises(UnsupportedOption, match="beam_size"):
        entry.cls.check_options(DecodeOptions(beam_size=1))


def test_same_words_as_local_engine(backend, fake, local, audio):
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert got.language == "en"  # OpenAI says "english"
    assert same_words(got, local)
    # The same text; where a segment breaks may differ (the service hears the MP3, a hair apart).
    assert "".join(s.text for s in got.segments) == "".join(s.text for s in local.segments)
    assert [w.text for s in got.segments for w in s.words] == [w.text for s in local.segments
                                                                for w in s.words]
    (up,) = fake.uploads
    assert up.fields["model"] == ["whisper-1"] and up.fields["response_format"] == ["verbose_json"]
    assert sorted(up.fields["timestamp_granularities[]"]) == ["segment", "word"]
    assert "language" not in up.fields  # detect
    assert up.content_type == "audio/mpeg" and up.filename.endswith(".mp3")
    assert len(up.data) < 0.25 * 2 * len(audio)  # compact: under a quarter of 16-bit WAV
    assert len(decode_upload(up.data)) >= len(audio)
    (request,) = fake.requests("transcriptions")
    assert request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("language", ["English", "en", "english"])
def test_language_names_or_codes(backend, fake, audio, language):
    fake.language_as_code = True  # as self-hosted servers answer
    got = backend.transcribe(audio[: 16000 * 3], DecodeOptions(language=language), Report())
    assert fake.uploads[0].fields["language"] == ["en"] and got.language == "en"


def test_options_reach_the_form(backend, fake, audio):
    options = DecodeOptions(temperature=0.4, initial_prompt="Dashwood.")
    backend.transcribe(audio[: 16000 * 3], options, Report())
    form = fake.uploads[0].fields
    assert form["temperature"] == ["0.4"] and form["prompt"] == ["Dashwood."]


def test_no_key_no_authorization_header(env, fake, audio):
    fake.key = None
    env.delenv("OPENAI_API_KEY")
    b = make(model="Systran/faster-whisper-tiny.en")
    assert b.transcribe(audio[: 16000 * 3], DecodeOptions(), Report()).words
    (request,) = fake.requests("transcriptions")
    assert not any(k.lower() == "authorization" for k in request.headers)
    assert fake.uploads[0].fields["model"] == ["Systran/faster-whisper-tiny.en"]


def test_split_upload_stitches_without_losing_or_doubling_words(env, fake, sample_audio, reference):
    """The whole 29 s sample under a 70 kB limit: cut in pauses, sent two at a time, put back exactly.

    The server here is a perfect recogniser (upload_engine.ReferenceOracle): it
    finds where each piece lies in the sample and answers the reference's words
    for it, so any word lost, doubled or misplaced at a join is the client's.
    """
    env.setenv("OPENAI_UPLOAD_LIMIT", "70000")
    env.setenv("OPENAI_MAX_PARALLEL", "2")
    samples = sample_audio.samples
    oracle = ReferenceOracle(samples, reference)
    fake.transcribe = oracle.openai
    got = make().transcribe(samples, DecodeOptions(), Report())
    pieces = got.meta["pieces"]
    assert len(fake.uploads) == len(pieces) >= 3
    assert all(len(u.data) <= 70000 for u in fake.uploads)
    assert fake.max_in_flight == 2
    # The server heard each piece's own audio (found where the client says it cut it).
    assert sorted(oracle.offsets) == pytest.approx([p[0] for p in pieces], abs=0.002)
    # Cuts are joins, and each is in a pause: no reference word straddles one.
    for (_, end), (start, _) in zip(pieces, pieces[1:], strict=False):
        assert start == end
        assert not any(w["start"] < start < w["end"] for w in reference["words"])
    # Every word once, in order, back at its time.
    assert [w.text.strip() for w in got.words] == [w["text"] for w in reference["words"]]
    assert all(abs(a.start - w["start"]) < 0.002 and abs(a.end - w["end"]) < 0.002
               for a, w in zip(got.words, reference["words"], strict=True))
    assert got.duration == pytest.approx(len(samples) / 16000)


def test_split_upload_with_the_real_engine(env, fake, sample, reference):
    """Through the pipeline, as `subtitler run` does it (its loop guard included)."""
    from subtitler.pipeline import Subtitler

    env.setenv("OPENAI_UPLOAD_LIMIT", "70000")
    got = Subtitler(backend="openai", warn=lambda message: None).transcribe(sample)
    assert len(got.meta["pieces"]) >= 3
    # Without the whole file's context tiny.en hears "ill-disposed" twice as "old-sposed" (1.4% WER
    # on the whole file, 7% here, all of it those two words, which also miss their timing hits).
    assert "old-sposed young man, unless" in got.text and got.text.endswith("made amiable himself.")
    assert wer(reference, got) <= 0.08 and timing_hits(reference, got) >= 0.9


def test_server_413_sends_smaller_pieces(env, fake, sample_audio, reference):
    fake.max_upload = 120_000  # the server's limit is lower than the one we were told
    got = make().transcribe(sample_audio.samples, DecodeOptions(), Report())
    sizes = [len(r.body) for r in fake.requests("transcriptions")]
    assert sizes[0] > 120_000 and all(s <= 120_000 for s in sizes[1:]) and len(sizes) >= 3
    assert len(got.meta["pieces"]) == len(sizes) - 1
    assert wer(reference, got) <= 0.05 and timing_hits(reference, got) >= 0.95


def test_413_when_pieces_cannot_get_small_enough(backend, fake, audio):
    fake.max_upload = 20_000
    with pytest.raises(RemoteTooLarge, match="OPENAI_UPLOAD_LIMIT") as e:
        backend.transcribe(audio, DecodeOptions(), Report())
    assert e.value.exit_code == 26


def test_upload_limit_too_small_for_any_piece(env, audio):
    env.setenv("OPENAI_UPLOAD_LIMIT", "5000")
    with pytest.raises(RemoteTooLarge, match="raise it"):
        make().transcribe(np.tile(audio, 2), DecodeOptions(), Report())
    env.setenv("OPENAI_UPLOAD_LIMIT", "lots")
    with pytest.raises(UnsupportedOption,
                       match=r"OPENAI_UPLOAD_LIMIT \(or upload-limit in \[backends.openai\]\) must be a "):
        make()


def test_bursts_resets_and_retry_after_are_retried(backend, fake, local, audio):
    fake.fail_next(1, 503, "transcriptions")
    fake.fail_next(1, 429, "transcriptions", retry_after="0")
    fake.reset_next(1, "transcriptions")  # half-way through the upload
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert same_words(got, local)
    assert len(fake.requests("transcriptions")) == 4 and len(fake.uploads) == 1
    fake.fail_next(4, 502, "transcriptions")
    with pytest.raises(RemoteError, match="502.*after 3 retries"):
        backend.transcribe(audio, DecodeOptions(), Report())


def test_retry_after_is_honoured(backend, fake, audio):
    fake.fail_next(1, 429, "transcriptions", retry_after="1")
    started = time.monotonic()
    backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert time.monotonic() - started >= 1.0


def test_bad_key(backend, fake, audio):
    fake.key = "sk-the-right-one"
    with pytest.raises(RemoteAuthError, match="refused the API key.*OPENAI_API_KEY") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value) and e.value.exit_code == 21
    assert len(fake.requests("transcriptions")) == 1


def test_unknown_model_and_wrong_base_url(env, fake, audio):
    with pytest.raises(RemoteNotFound, match="whisper-9.*wrong base URL.*or model") as e:
        make(model="whisper-9").transcribe(audio[:16000], DecodeOptions(), Report())
    assert e.value.exit_code == 22
    env.setenv("OPENAI_BASE_URL", fake.base_url.removesuffix("/v1"))  # forgot the /v1
    with pytest.raises(RemoteNotFound, match="wrong base URL"):
        make().transcribe(audio[:16000], DecodeOptions(), Report())


def test_malformed_json(backend, fake, audio):
    fake.malformed_next(1, "transcriptions")
    with pytest.raises(RemoteError, match="not JSON") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)


def test_text_only_answer_needs_timings(backend, fake, audio):
    fake.text_only = True
    with pytest.raises(RemoteNoTimings, match="subtitles need timings") as e:
        backend.transcribe(audio, DecodeOptions(), Report())
    assert e.value.exit_code == 24


def test_segments_without_words_still_make_readable_cues(backend, fake, local, audio):
    fake.no_words = True
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert not got.words and got.text == local.text
    cues = build_cues(got)
    assert " ".join(c.text.replace("\n", " ") for c in cues).split() == got.text.split()
    assert all(len(line) <= 42 for c in cues for line in c.text.splitlines())


def test_translate_uses_the_translations_endpoint(backend, fake, audio):
    got = backend.transcribe(audio[: 16000 * 3], DecodeOptions(task="translate"), Report())
    (request,) = fake.requests("translations")
    assert got.text and "timestamp_granularities[]" not in fake.uploads[0].fields


def test_slow_server_and_timeout(env, fake, audio):
    fake.slow_seconds = 5
    b = make(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RemoteTimeout, match="--timeout") as e:
        b.transcribe(audio[:16000], DecodeOptions(), Report())
    assert time.monotonic() - started < 3 and e.value.exit_code == 25


def test_settings_from_the_config_file(env, fake, audio, tmp_path):
    """[backends.openai] in subtitler.toml: used when the environment has nothing, overridden when it has."""
    env.delenv("OPENAI_BASE_URL")
    env.delenv("OPENAI_API_KEY")
    (tmp_path / "subtitler.toml").write_text(
        f'[backends.openai]\nbase-url = "{fake.base_url}"\napi-key = "{KEY}"\nupload-format = "ogg"\n')
    env.chdir(tmp_path)
    try:
        assert make().transcribe(audio[: 16000 * 2], DecodeOptions(), Report()).words
        assert fake.uploads[0].content_type == "audio/ogg"
        assert fake.requests("transcriptions")[0].headers["Authorization"] == f"Bearer {KEY}"
        env.setenv("OPENAI_UPLOAD_FORMAT", "flac")  # the environment wins
        make().transcribe(audio[: 16000 * 2], DecodeOptions(), Report())
        assert fake.uploads[1].content_type == "audio/flac"
    finally:
        env.undo()


def test_unreachable_host(env, audio):
    env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    b = make()
    b.client.retries = 1
    with pytest.raises(RemoteError, match="cannot reach 127.0.0.1:9") as e:
        b.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)


def test_cli_end_to_end_with_status_lines(fake, audio, local, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(audio))
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url}
    # The engine's word times as they came back (--no-refine-timing): what `local` holds.
    proc = subprocess.run([sys.executable, "-m", "subtitler", str(clip), "-b", "openai", "-f", "srt,json",
                           "--no-refine-timing", "-o", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert same_words(Transcript.load(tmp_path / "out" / "clip.json"), local)
    assert "uploading" in proc.stderr and "transcribed" in proc.stderr
    assert KEY not in proc.stderr + proc.stdout


def test_another_base_url_is_another_engine_for_the_cache(fake, engine, audio, tmp_path):
    """The same audio, model and options sent to another server (OPENAI_BASE_URL) is transcribed
    there, not taken from the transcript cache filled by the first server."""
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(audio[: 16000 * 3]))

    def run(base_url: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url}
        return subprocess.run([sys.executable, "-m", "subtitler", str(clip), "-b", "openai", "-o",
                               str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)

    assert run(fake.base_url).returncode == 0
    assert "up to date" in run(fake.base_url).stderr and len(fake.uploads) == 1
    with FakeOpenAI(transcribe=engine.openai, key=KEY) as other:
        proc = run(other.base_url)
        assert proc.returncode == 0, proc.stderr
        assert "done: transcribed" in proc.stderr and len(other.uploads) == 1
