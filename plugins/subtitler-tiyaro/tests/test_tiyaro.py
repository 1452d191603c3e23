"""The tiyaro backend against a fake of Tiyaro's async API (tests/fake_tiyaro.py).

The fake serves what the local engine (faster-whisper, tiny.en) transcribes
from the real-speech sample, so the remote path must give the same subtitles.
"""

from __future__ import annotations

import numpy as np
import pytest
import subtitler_tiyaro as tiyaro  # installed by `make install`: a missing plugin must fail, not skip

from subtitler.backends import discover
from subtitler.cues import build_cues
from subtitler.errors import SubtitlerError, UnsupportedOption
from subtitler.events import Report
from subtitler.formats import get_format
from subtitler.options import CORE_OPTIONS, DecodeOptions
from subtitler.remote import wav_bytes
from subtitler.specs import EngineSpec
from subtitler.transcript import Transcript
from tests.fake_tiyaro import FakeTiyaro
from tests.remote_fixtures import *  # noqa: F403 (fixtures: audio, local, engine)
from tests.remote_fixtures import SECONDS, error_text, same_words
from tests.upload_engine import decode_upload

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def fake(engine):
    with FakeTiyaro(result=engine.tiyaro, key=KEY) as f:
        yield f


@pytest.fixture
def backend(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("SUBTITLER_STATE_DIR", str(tmp_path / "state"))  # no job remembered across tests
    monkeypatch.setenv("TIYARO_API_KEY", KEY)
    monkeypatch.setenv("TIYARO_BASE_URL", fake.base_url)
    monkeypatch.setenv("TIYARO_POLL_INTERVAL", "0.01")
    monkeypatch.delenv("TIYARO_SERVICE_TIER", raising=False)
    b = tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))
    b.client.retry_backoff = 0.001
    yield b
    b.client.close()


def srt(t: Transcript) -> str:
    return get_format("srt").dumps(t, build_cues(t))


def test_registered_and_refuses_no_vad(monkeypatch):
    monkeypatch.delenv("TIYARO_API_KEY", raising=False)
    entry = discover()["tiyaro"]
    assert entry.cls is tiyaro.TiyaroBackend
    assert entry.problem == "TIYARO_API_KEY is not set (nor api-key in [backends.tiyaro])"
    assert entry.cls.supported_options == set(DecodeOptions.names()) - {"vad", "batch_size"}
    assert len(entry.cls.supported_options - CORE_OPTIONS) == 14  # refine_timing: the core's, every engine
    with pytest.raises(UnsupportedOption, match="vad"):
        entry.cls.check_options(DecodeOptions(vad=False))


def test_same_subtitles_as_local_engine(backend, fake, local, audio):
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert got.language == local.language == "en"
    assert same_words(got, local)
    # The same text; where a segment breaks may differ (the service hears the MP3, a hair apart).
    assert "".join(s.text for s in got.segments) == "".join(s.text for s in local.segments)
    assert got.duration == pytest.approx(SECONDS)
    # The upload is compact: MP3, a fifth of 16-bit WAV, holding the same audio.
    (data,) = fake.objects.values()
    assert data[:3] == b"ID3" or data[:2] == b"\xff\xfb"
    assert len(data) < 0.25 * 2 * len(audio)
    decoded = decode_upload(data)
    assert 0 <= len(decoded) - len(audio) < 0.05 * 16000  # MP3 pads the last frame
    # Not shifted (an MP3 without its LAME tag would be 69 ms late): correlates at lag 0.
    assert np.corrcoef(decoded[: len(audio)], audio)[0, 1] > 0.95
    (put,) = fake.requests("put")
    assert put.headers["Content-Type"] == "audio/mpeg"
    (job,) = fake.jobs.values()
    assert (job.model, job.tier) == ("tiny.en", "cpuflex")
    assert fake.requests("upload-url")[0].path == "/v1/input/upload-url?extension=mp3"


def test_read_timeout(fake, audio, monkeypatch, tmp_path):
    """TIYARO_TIMEOUT bounds each answer: a server taking 2 s per answer fails fast and clearly."""
    import time

    monkeypatch.setenv("TIYARO_API_KEY", KEY)
    monkeypatch.setenv("TIYARO_BASE_URL", fake.base_url)
    monkeypatch.setenv("SUBTITLER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TIYARO_TIMEOUT", "0.3")
    b = tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))
    b.client.retries, b.client.retry_backoff = 1, 0.01
    fake.slow_seconds = 2.0
    started = time.monotonic()
    with pytest.raises(tiyaro.TiyaroError, match="cannot reach.*ReadTimeout") as e:
        b.transcribe(audio[:16000], DecodeOptions(), Report())
    assert time.monotonic() - started < 1.5 and KEY not in error_text(e.value)
    assert len(fake.requests("upload-url")) == 2  # tried, then retried once
    monkeypatch.setenv("TIYARO_TIMEOUT", "soon")
    with pytest.raises(UnsupportedOption, match="TIYARO_TIMEOUT"):
        tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_other_upload_formats(backend, fake, audio, monkeypatch, fmt):
    monkeypatch.setenv("TIYARO_UPLOAD_FORMAT", fmt)
    b = tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))
    got = b.transcribe(audio[: 16000 * 3], DecodeOptions(), Report())
    assert got.words and fake.requests("upload-url")[0].path.endswith(f"extension={fmt}")
    assert len(decode_upload(fake.requests("put")[0].body)) == pytest.approx(16000 * 3, abs=400)
    monkeypatch.setenv("TIYARO_UPLOAD_FORMAT", "aiff")
    with pytest.raises(UnsupportedOption, match="TIYARO_UPLOAD_FORMAT"):
        tiyaro.TiyaroBackend(EngineSpec("tiyaro", "tiny.en"))


def test_key_goes_to_the_api_host_only(backend, fake, audio):
    backend.transcribe(audio[:16000], DecodeOptions(), Report())
    (put,) = fake.requests("put")
    assert put.host == "storage"
    assert not any(k.lower() == "authorization" for k in put.headers)
    assert KEY not in str(put.headers)
    for s in fake.seen:
        if s.host == "api":
            assert s.headers["Authorization"] == f"Bearer {KEY}"


def test_options_arrive_with_tiyaros_names(backend, fake, audio):
    options = DecodeOptions(language="en", temperature=0.2, temperature_increment_on_fallback=None,
                            beam_size=3, best_of=2, patience=1.5, length_penalty=0.5,
                            compression_ratio_threshold=2.0, logprob_threshold=-0.5,
                            no_speech_threshold=0.4, condition_on_previous_text=False,
                            initial_prompt="Chapter one.", suppress_tokens="-1,50")
    backend.transcribe(audio[:16000], options, Report())
    (job,) = fake.jobs.values()
    assert job.inputs == {
        "language": "en", "task": "transcribe", "temperature": 0.2,
        "temperature_increment_on_fallback": None, "beam_size": 3, "best_of": 2, "patience": 1.5,
        "length_penalty": 0.5, "compression_ratio_threshold": 2.0, "logprob_threshold": -0.5,
        "no_speech_threshold": 0.4, "condition_on_previous_text": False,
        "initial_prompt": "Chapter one.", "suppress_tokens": "-1,50",
    }


def test_defaults_omit_language(backend, fake, audio):
    backend.transcribe(audio[:16000], DecodeOptions(), Report())
    (job,) = fake.jobs.values()
    assert "language" not in job.inputs and "vad" not in job.inputs
    assert job.inputs["suppress_tokens"] == "-1" and job.inputs["beam_size"] == 5


@pytest.mark.parametrize("wrapped", [True, False])
def test_wrapped_and_unwrapped_polls_after_pending(backend, fake, local, audio, wrapped):
    fake.wrapped, fake.polls_before_success = wrapped, 3
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert same_words(got, local)
    assert len(fake.requests("poll")) == 4


def test_503_bursts_are_retried(backend, fake, local, audio):
    fake.fail_next(3, 503, "upload-url")
    fake.fail_next(2, 500, "put")
    fake.fail_next(3, 503, "poll", retry_after="0")
    fake.fail_next(1, 429, "poll", retry_after="0")
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert got.text == local.text
    assert len(fake.requests("upload-url")) == 4
    assert len(fake.requests("put")) == 3
    assert len(fake.requests("submit")) == 1
    assert len(fake.requests("poll")) == 5


def test_connection_reset_mid_upload_is_retried(backend, fake, local, audio):
    fake.reset_next(2, "put")
    got = backend.transcribe(audio, DecodeOptions(), Report())
    assert got.text == local.text
    puts = fake.requests("put")
    assert len(puts) == 3 and len(puts[0].body) < len(puts[2].body)  # cut off half-way, then whole
    assert len(fake.requests("submit")) == 1


def test_too_large_an_upload(backend, fake, audio):
    fake.max_upload = 10_000
    with pytest.raises(tiyaro.TiyaroError, match="too large.*413") as e:
        backend.transcribe(audio, DecodeOptions(), Report())
    assert e.value.exit_code == 26 and not fake.jobs
    assert len(fake.requests("put")) == 1  # a 413 is not retried


def test_submit_is_never_retried(backend, fake, audio):
    fake.fail_next(1, 500, "submit")
    with pytest.raises(tiyaro.TiyaroError, match="submission failed.*500.*not retried") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert len(fake.requests("submit")) == 1
    assert not fake.jobs
    assert e.value.exit_code >= 20


def test_too_long_a_burst_gives_up(backend, fake, audio):
    fake.fail_next(20, 503, "upload-url")
    with pytest.raises(tiyaro.TiyaroError, match="503.*after 5 retries"):
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert len(fake.requests("upload-url")) == 6


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_failed_and_cancelled_jobs(backend, fake, audio, status):
    fake.final_status, fake.final_message, fake.polls_before_success = status, f"job was {status} by ops", 1
    with pytest.raises(tiyaro.TiyaroJobFailed, match=f"{status}: job was {status} by ops"):
        backend.transcribe(audio[:16000], DecodeOptions(), Report())


def test_text_only_result_needs_timings(backend, fake, audio):
    fake.text_only = True
    with pytest.raises(tiyaro.TiyaroNoTimings, match="subtitles need timings"):
        backend.transcribe(audio[:16000], DecodeOptions(), Report())


def test_bad_key(backend, fake, audio):
    fake.key = "the-right-key"
    with pytest.raises(tiyaro.TiyaroAuthError, match="API key") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)
    assert len(fake.requests("upload-url")) == 1  # 401 is not retried


def test_wrong_base_url_or_model(backend, fake, audio, monkeypatch):
    backend.client.base_url = fake.base_url + "/nope"
    with pytest.raises(tiyaro.TiyaroNotFound, match="wrong base URL") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)


def test_unreachable_host_error_hides_key(backend, audio):
    backend.client.base_url = "http://127.0.0.1:9"  # discard port: connection refused
    backend.client.retries = 1
    with pytest.raises(tiyaro.TiyaroError, match="cannot reach") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)


def test_english_only_model_and_unknown_model(backend, monkeypatch, fake):
    with pytest.raises(UnsupportedOption, match="English-only"):
        backend.transcribe(np.zeros(16000, np.float32), DecodeOptions(language="fr"), Report())
    with pytest.raises(SubtitlerError, match="no model 'huge'"):
        tiyaro.TiyaroBackend(EngineSpec("tiyaro", "huge"))


@pytest.mark.parametrize("endpoint", ["upload-url", "poll"])
def test_malformed_json_is_a_clear_error(backend, fake, audio, endpoint):
    fake.malformed_next(1, endpoint)
    with pytest.raises(tiyaro.TiyaroError, match="not JSON") as e:
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert KEY not in error_text(e.value)
    assert len(fake.requests("submit")) == (1 if endpoint == "poll" else 0)


def test_killed_client_reattaches_without_a_second_submit(fake, local, audio, tmp_path):
    """SIGKILL the real CLI while it polls; the rerun polls the same job, and a third run fetches nothing."""
    import os
    import subprocess
    import sys
    import time

    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(audio))
    out = tmp_path / "out"
    env = {**os.environ, "TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
           "TIYARO_POLL_INTERVAL": "0.05", "SUBTITLER_STATE_DIR": str(tmp_path / "state")}
    # The engine's word times as they came back (--no-refine-timing): what `local` holds.
    command = [sys.executable, "-m", "subtitler", str(clip), "-b", "tiyaro", "-o", str(out), "--overwrite",
               "--no-refine-timing", "-f", "json"]
    fake.never_finish = True  # while the first client runs
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(fake.requests("poll")) < 2 and time.time() < deadline:
        time.sleep(0.05)
    first.kill()
    first.wait()
    assert len(fake.requests("submit")) == 1 and not out.exists()
    state = list((tmp_path / "state" / "tiyaro-jobs").glob("*.json"))
    assert len(state) == 1 and KEY not in state[0].read_text()  # remembered, without the key

    fake.never_finish = False
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(fake.requests("submit")) == 1 and len(fake.requests("upload-url")) == 1
    assert same_words(Transcript.load(out / "clip.json"), local)
    polls = len(fake.requests("poll"))
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and len(fake.requests("poll")) == polls  # the result is not fetched twice


def test_ctrl_c_while_polling_then_rerun_reattaches(fake, local, audio, tmp_path):
    """Ctrl-C: exit 130, no output; --verbose logs each request and a line per job state, never the key."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(audio))
    env = {**os.environ, "TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
           "TIYARO_POLL_INTERVAL": "0.05", "SUBTITLER_STATE_DIR": str(tmp_path / "state")}
    out = tmp_path / "out"
    fake.never_finish = True
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", "--verbose", str(clip), "-b", "tiyaro",
                             "-o", str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(fake.requests("poll")) < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in stderr
    assert not out.exists() or not list(out.glob("*.srt"))
    (job,) = fake.jobs.values()
    assert f"job {job.id}: submitted" in stderr and f"job {job.id}: processing" in stderr
    assert "POST http://127.0.0.1" in stderr and "/v1/input/upload-url -> 201" in stderr
    assert "X-Amz-Signature" not in stderr  # presigned URLs are logged without their query
    assert KEY not in stderr + stdout
    fake.never_finish = False
    again = subprocess.run([sys.executable, "-m", "subtitler", str(clip), "-b", "tiyaro", "-o", str(out)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and (out / "clip.srt").exists()
    assert len(fake.requests("submit")) == 1 and "re-attaching" in again.stderr


def test_failed_job_is_not_reattached(backend, fake, audio):
    fake.final_status = "failed"
    with pytest.raises(tiyaro.TiyaroJobFailed):
        backend.transcribe(audio[:16000], DecodeOptions(), Report())
    fake.final_status = "success"
    backend.transcribe(audio[:16000], DecodeOptions(), Report())
    assert len(fake.requests("submit")) == 2  # a new job, not the failed one


def test_timeout_gives_up_then_a_rerun_reattaches(backend, fake, local, audio):
    import time

    fake.never_finish = True
    backend.timeout = 0.5
    started = time.monotonic()
    with pytest.raises(tiyaro.TiyaroTimeout, match="re-attach") as e:
        backend.transcribe(audio, DecodeOptions(), Report())
    assert time.monotonic() - started < 5
    assert KEY not in error_text(e.value)
    fake.never_finish = False
    assert same_words(backend.transcribe(audio, DecodeOptions(), Report()), local)
    assert len(fake.requests("submit")) == 1


def test_timeout_is_refused_by_local_backends():
    from subtitler.backends import get_backend_class

    with pytest.raises(UnsupportedOption, match="has no --timeout"):
        get_backend_class("faster-whisper")(EngineSpec("faster-whisper", "tiny.en", timeout=5))


def test_jobs_bounds_files_in_flight(fake, local, audio, tmp_path):
    """Six files with --jobs 3: never more than three jobs at the server at once, all six done."""
    import os
    import subprocess
    import sys

    clips = []
    for n in range(6):  # distinct audio per file, so each is its own job
        clip = tmp_path / f"clip{n}.wav"
        clip.write_bytes(wav_bytes(audio[: 16000 * 6 + n * 1600]))
        clips.append(str(clip))
    fake.polls_before_success = 3
    env = {**os.environ, "TIYARO_API_KEY": KEY, "TIYARO_BASE_URL": fake.base_url,
           "TIYARO_POLL_INTERVAL": "0.05", "SUBTITLER_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "subtitler", *clips, "-b", "tiyaro", "--jobs", "3",
                           "-o", str(tmp_path / "out"), "--report", str(tmp_path / "r.json")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Each upload was encoded ahead, in the decode stage (Backend.prepare), not in a job slot.
    import json

    assert all("prepare" in i["timings"] for i in json.loads((tmp_path / "r.json").read_text())["inputs"])
    assert len(fake.requests("submit")) == 6
    assert 2 <= fake.max_in_flight <= 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".subtitler.json", ".subtitler.lock",
                                                                    *(f"clip{n}.srt" for n in range(6))]
    assert proc.stderr.count(": started") == 6 and proc.stderr.count(": done") == 6
    # A local engine takes --jobs too: for decoding ahead, while it transcribes one file at a time.
    local_run = subprocess.run([sys.executable, "-m", "subtitler", clips[0], "--jobs", "2", "-o",
                                str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert local_run.returncode == 0 and (tmp_path / "x" / "clip0.srt").exists()


def test_polling_is_prompt_but_frugal(backend, fake, local, audio):
    """A 3 s job: noticed about one poll wait after it finishes, with at most 5 polls a second."""
    import time

    fake.job_seconds = 3.0
    backend.client.poll_interval = 0.2
    started = time.monotonic()
    assert same_words(backend.transcribe(audio, DecodeOptions(), Report()), local)
    late = time.monotonic() - started - fake.job_seconds
    polls = len(fake.requests("poll"))
    assert late <= 0.2 + 0.5  # a poll's wait, plus upload and request time on a busy machine
    assert polls <= fake.job_seconds / 0.2 + 2
