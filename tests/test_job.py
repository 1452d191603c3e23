"""The one job path (job.py) and the settings as data (specs.py) it runs on.

The engine here is subtitler.testing's FakeBackend: these tests are about
what happens around an engine (planning, skipping, the cache, the manifest,
the events), so they run in milliseconds on real media made with ffmpeg.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import subtitler
from subtitler.cache import Cache
from subtitler.errors import OutputExists
from subtitler.events import (
    Finished,
    JobStatus,
    Progress,
    Stage,
    StageEnded,
    StageStarted,
    Started,
    Status,
    SubtitlerWarning,
    Warned,
)
from subtitler.inputs import Input
from subtitler.job import Job
from subtitler.options import DecodeOptions
from subtitler.profiles import PROFILES
from subtitler.specs import (
    NOT_IN_KEY,
    BadSpec,
    EngineSpec,
    JobSpec,
    OutputSpec,
    RenderSpec,
    TranscriptionSpec,
    VideoSpec,
)
from subtitler.style import Style
from subtitler.testing import FakeBackend, check_transcribe
from subtitler.transcript import Source, Transcript
from subtitler.video import SubtitleTrack

from .conftest import ffmpeg

FULL = JobSpec(
    TranscriptionSpec(EngineSpec("openai", "whisper-1", "cpu", "int8", 3, 30.0, {"base-url": "http://x/v1"}),
                      1, DecodeOptions(language="fr", task="translate", beam_size=2, vad=False)),
    RenderSpec(("srt", "vtt"), PROFILES["bbc"].replace(max_cps=15.0), Style(font="Noto Sans", box=True),
               VideoSpec("mux", ".mkv", default_track=True,
                         extra_tracks=(SubtitleTrack(Path("a.fr.srt"), "fr"),))),
    OutputSpec(Path("subs"), overwrite=True, record=False))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of tone between silences, in an MP4 with a picture."""
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "aevalsrc='if(between(t,0.5,1.5),0.5*sin(2*PI*440*t),0)':s=16000:d=3",
           "-f", "lavfi", "-i", "color=c=black:s=320x240:d=3", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", "-shortest", str(out))
    return out


@pytest.fixture(scope="module")
def fake() -> FakeBackend:
    return FakeBackend(EngineSpec("fake"))


# -- settings as data ---------------------------------------------------------------------


def test_a_job_spec_goes_through_json_unchanged():
    text = FULL.to_json()
    assert JobSpec.from_json(text) == FULL
    assert json.loads(text)["transcription"]["engine"]["settings"] == {"base-url": "http://x/v1"}
    assert JobSpec.from_json(JobSpec().to_json()) == JobSpec()
    # Through another process, as a server's worker or a cluster's actor gets it.
    code = ("import sys, subtitler; s = subtitler.JobSpec.from_json(sys.stdin.read()); print("
            "s.transcription.options.beam_size, s.render.video.extra_tracks[0].path, s.output.output_dir)")
    proc = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["2", "a.fr.srt", "subs"]


@pytest.mark.parametrize("text, message", [
    ('{"schema": "subtitler.job", "version": 1, "render": {"formats": ["srt"], "colour": 1}}',
     r"RenderSpec: unknown field\(s\) colour"),
    ('{"schema": "subtitler.job", "version": 1, "render": {"formats": ["doc"]}}', "unknown format"),
    ('{"schema": "subtitler.job", "version": 1, "transcription": {"options": {"beam_size": 0}}}',
     "beam_size must be at least 1"),
    ('{"schema": "subtitler.job", "version": 9}', "unsupported job spec version 9"),
    ('{"render": {}}', "not a subtitler job spec"),
    ('{"schema": "subtitler.job", "version": 1, "render": {"video": {"mode": "paint"}}}', "mux or burn"),
    ("[", "invalid JSON"),
])
def test_a_bad_job_spec_is_one_clear_error(text, message):
    with pytest.raises(BadSpec, match=message):
        JobSpec.from_json(text)


def test_every_transcription_field_is_in_the_key_unless_listed():
    """A field added to the transcription spec changes the cache key and the manifest digest
    without anyone remembering to add it: the key is made from the spec itself."""
    base = JobSpec().transcript_settings()
    engine_fields = [f.name for f in dataclasses.fields(EngineSpec)]
    changed = {"backend": "whisper", "model": "base", "compute_type": "int8", "device": "cuda", "threads": 2,
               "timeout": 5.0, "settings": {"base-url": "http://other"}}
    assert set(changed) == set(engine_fields)  # a new field: add it here, and to NOT_IN_KEY if it must
    for name, value in changed.items():
        spec = JobSpec(TranscriptionSpec(EngineSpec(**{name: value})))
        assert (spec.transcript_settings() != base) == (name not in NOT_IN_KEY), name
    for other in (TranscriptionSpec(audio_stream=1), TranscriptionSpec(options=DecodeOptions(beam_size=1))):
        assert JobSpec(other).transcript_settings() != base
    # The backend's settings, as resolved, that shape results are in it too (never secrets: a job
    # spec refuses them).
    assert JobSpec().transcript_settings({"base-url": "http://a"}) != base


# -- the one path, from Python ----------------------------------------------------------


def test_subtitler_skips_what_is_up_to_date_and_still_returns_the_transcript(clip, fake, tmp_path):
    job = subtitler.Subtitler(formats=["srt", "json"], output_dir=tmp_path, engine=fake)
    first = job.subtitle(clip)
    assert first.status == "done" and [p.name for p in first.outputs] == ["clip.srt", "clip.json"]
    assert first.transcript.text == "word0" and first.transcript.source.width == 320
    mtime = first.outputs[0].stat().st_mtime_ns
    again = job.subtitle(clip)
    assert again.status == "up-to-date" and again.transcript.text == "word0"
    assert first.outputs[0].stat().st_mtime_ns == mtime  # not written again
    # Another layout: rendered from the cached transcript, no engine run.
    other = subtitler.Subtitler(formats=["srt", "json"], output_dir=tmp_path, engine=fake,
                                profile=PROFILES["bbc"])
    assert other.subtitle(clip).status == "rendered"
    # Opting out: no manifest, and a file that exists is refused, as before 0.3.
    plain = subtitler.Subtitler(formats=["srt"], output_dir=tmp_path / "plain", engine=fake, record=False)
    assert plain.subtitle(clip).status == "rendered"  # the transcript is cached
    with pytest.raises(OutputExists):
        plain.subtitle(clip)
    assert not (tmp_path / "plain" / ".subtitler.json").exists()


def test_cli_and_python_share_the_manifest(clip, tmp_path):
    """What the command line made, Python finds up to date (one path, one manifest)."""
    out = tmp_path / "out"
    from subtitler.testing import install_plugin

    site = tmp_path / "site"
    install_plugin(site, "subtitler_fake", "from subtitler.testing import FakeBackend\n",
                   "fake = subtitler_fake:FakeBackend")
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "subtitler", str(clip), "-b", "fake", "-o", str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    result = subtitler.Subtitler(backend="fake", output_dir=out, engine=FakeBackend(EngineSpec("fake"))
                                 ).subtitle(clip)
    assert result.status == "up-to-date"


def test_events_are_typed_and_in_order(clip, fake, tmp_path):
    seen: list = []
    job = Job(JobSpec(output=OutputSpec(tmp_path)), engine=fake, events=seen.append)
    outcome = job.run(Input(clip, Path(clip.name)))
    assert outcome.status is Status.DONE
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "Started" and kinds[-1] == "Finished"
    stages = [(type(e).__name__, e.stage) for e in seen if isinstance(e, (StageStarted, StageEnded))]
    assert stages == [("StageStarted", Stage.DECODE), ("StageEnded", Stage.DECODE),
                      ("StageStarted", Stage.TRANSCRIBE), ("StageStarted", Stage.VAD),
                      ("StageEnded", Stage.TRANSCRIBE), ("StageStarted", Stage.WRITE),
                      ("StageEnded", Stage.WRITE)]
    progress = [e for e in seen if isinstance(e, Progress) and e.stage == Stage.TRANSCRIBE]
    assert progress and progress[-1].done == pytest.approx(3.0, abs=0.05) and progress[-1].total > 0
    assert isinstance(seen[0], Started) and seen[0].action is Status.TRANSCRIBE
    assert isinstance(seen[-1], Finished) and seen[-1].outcome is outcome
    assert not [e for e in seen if isinstance(e, (JobStatus, Warned))]


def test_warnings_are_events_not_a_global_hook(fake, tmp_path):
    """A run's warnings reach its sinks; Python's warnings machinery is left alone (a library user
    gets them as SubtitlerWarning only when no sink is given)."""
    silent = tmp_path / "silent.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2", str(silent))
    showwarning = warnings.showwarning
    told: list = []
    subtitler.Subtitler(output_dir=tmp_path / "a", engine=fake, events=[told.append]).subtitle(silent)
    assert [e.message for e in told if isinstance(e, Warned)] == [
        f"{silent}: no speech found; the subtitles are empty"]
    with pytest.warns(SubtitlerWarning, match="no speech found"):
        subtitler.Subtitler(output_dir=tmp_path / "b", engine=fake, cache=False).subtitle(silent)
    assert warnings.showwarning is showwarning
    # The command line neither: its module replaces nothing on import or run.
    proc = subprocess.run([sys.executable, "-c", "import warnings, subtitler.cli; h = warnings.showwarning; "
                           "import sys; sys.argv = ['subtitler', 'models']\ntry: subtitler.cli.main()\n"
                           "except SystemExit: pass\nprint(warnings.showwarning is h)"],
                          capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "True", proc.stderr


def test_the_cache_key_holds_the_engines_fingerprint(clip, tmp_path):
    """A backend's fingerprint() (a model file's identity...) is part of the cache key: another
    fingerprint is transcribed again."""

    class Versioned(FakeBackend):
        version = 1

        @classmethod
        def fingerprint(cls, spec, settings):
            return cls.version

    cache = Cache(tmp_path / "cache")
    spec = JobSpec(output=OutputSpec(tmp_path / "out", record=False, overwrite=True))
    first = Job(spec, engine=Versioned(EngineSpec("fake")), cache=cache).run(Input(clip, Path(clip.name)))
    again = Job(spec, engine=Versioned(EngineSpec("fake")), cache=cache).run(Input(clip, Path(clip.name)))
    assert (first.status, again.status) == (Status.DONE, Status.RENDERED)
    Versioned.version = 2
    changed = Job(spec, engine=Versioned(EngineSpec("fake")), cache=cache).run(Input(clip, Path(clip.name)))
    assert changed.status == Status.DONE


# -- typed source information -------------------------------------------------------------


def test_source_facts_are_typed_and_old_transcripts_still_load(clip, fake, tmp_path):
    result = subtitler.Subtitler(formats=["json"], output_dir=tmp_path, engine=fake).subtitle(clip)
    saved = json.loads(result.outputs[0].read_text())
    assert saved["source"]["width"] == 320 and saved["source"]["task"] == "transcribe"
    assert "video" not in saved["meta"] and "offset" not in saved["meta"]
    assert Transcript.load(result.outputs[0]).source == result.transcript.source
    # A 0.2 transcript kept these facts in meta: they are read as its source.
    old = {"schema": "subtitler.transcript", "version": 1, "language": "en", "duration": 2.0, "segments": [],
           "meta": {"input": "a.mp4", "offset": 0.5, "video": {"width": 640, "height": 360, "duration": 2.1},
                    "options": {"task": "translate"}}}
    source = Transcript.from_dict(old).source
    assert source == Source("a.mp4", 0, 0.5, None, 640, 360, 2.1, "translate")


# -- the plugin contract ------------------------------------------------------------------


def test_check_transcribe_accepts_the_fake(fake, sample_audio):
    transcript, report = check_transcribe(fake, sample_audio.samples)
    assert transcript.words and report.progress_seconds[-1] == pytest.approx(sample_audio.duration, abs=0.05)
    # The bundled engines are checked the same way, beside their plugins (plugins/NAME/tests).


def test_check_transcribe_catches_a_broken_engine(fake, sample_audio):
    class Backwards(FakeBackend):
        def transcribe(self, audio, options, report, prepared=None):
            report.progress(5.0)
            report.progress(1.0)
            return super().transcribe(audio, options, report, prepared)

    with pytest.raises(AssertionError, match="progress went back"):
        check_transcribe(Backwards(EngineSpec("fake")), sample_audio.samples)



def test_work_done_ahead_comes_back_to_its_own_file(tmp_path):
    """prepare()'s value (an encoded upload...) is handed to transcribe() for the same file, in a
    batch that decodes and prepares ahead while other files are transcribed."""

    class Ahead(FakeBackend):
        parallel_files = True

        def prepare(self, audio):
            return len(audio)

        def transcribe(self, audio, options, report, prepared=None):
            assert prepared == len(audio), (prepared, len(audio))
            return super().transcribe(audio, options, report, prepared)

    clips = []
    for n in range(4):  # each its own length
        clips.append(tmp_path / f"tone{n}.wav")
        ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={1 + n / 4}", "-ar", "16000",
               str(clips[-1]))
    spec = JobSpec(output=OutputSpec(tmp_path / "out"))
    batch = subtitler.Batch(Job(spec, engine=Ahead(EngineSpec("fake"))), jobs=3)
    outcomes = batch.run([Input(c, Path(c.name)) for c in clips])
    assert [o.status for o in outcomes] == [Status.DONE] * 4, [o.error for o in outcomes]
    assert all("prepare" in o.timings for o in outcomes)


def test_secrets_never_go_into_a_job_or_its_records(clip, tmp_path, monkeypatch):
    """An API key is taken from the environment (or config file) where the engine runs: a job's
    settings, which travel and are recorded, refuse it; the manifest's summary has none."""
    from subtitler.errors import UnsupportedOption

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a server that needs no key
    with pytest.raises(UnsupportedOption, match=r"api-key is a secret: set OPENAI_API_KEY") as e:
        subtitler.Subtitler(backend="openai", output_dir=tmp_path, settings={"api-key": "sk-SECRET"}
                            ).subtitle(clip)
    assert "sk-SECRET" not in str(e.value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SECRET")
    job = Job(JobSpec(TranscriptionSpec(EngineSpec("openai", settings={"base-url": "http://127.0.0.1:9/v1"}))))
    summary = json.dumps(job.summary)
    assert "sk-SECRET" not in summary and "http://127.0.0.1:9/v1" in summary
    assert "sk-SECRET" not in job.spec.to_json()


def test_a_file_in_the_way_is_refused_before_any_work(clip, fake, tmp_path):
    (tmp_path / "clip.srt").write_text("someone's own subtitles\n")
    seen: list = []
    outcome = Job(JobSpec(output=OutputSpec(tmp_path)), engine=fake, events=seen.append).run(
        Input(clip, Path(clip.name)))
    assert outcome.status is Status.FAILED and isinstance(outcome.exception, OutputExists)
    assert not [e for e in seen if isinstance(e, StageStarted)]  # nothing decoded, nothing heard
    assert (tmp_path / "clip.srt").read_text() == "someone's own subtitles\n"
