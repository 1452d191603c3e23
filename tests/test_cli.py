"""The command line: bad input gives one line, a distinct exit code, and no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from subtitler.cli import cli
from subtitler.errors import (
    BackendUnavailable,
    EmptyAudio,
    InputNotFound,
    NoAudioStream,
    NotMedia,
    OutputError,
    OutputExists,
    UnsupportedOption,
)
from subtitler.events import Report

from .conftest import SAMPLE, assert_one_line_error, ffmpeg


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command in a subprocess (no terminal)."""
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.mp4").write_text("not a video at all\n")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:d=1", "-f", "lavfi", "-i", "anullsrc=d=1",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
           "-frames:a", "0", str(d / "empty_audio.mkv"))
    return {"missing": d / "missing.mp4", "not_media": d / "notes.mp4",
            "empty_audio": d / "empty_audio.mkv"}


@pytest.mark.parametrize("kind,error,text", [
    ("missing", InputNotFound, "no such file"),
    ("not_media", NotMedia, "not a media file"),
    ("empty_audio", EmptyAudio, "empty (zero length)"),
])
@pytest.mark.engine
def test_bad_input(bad_inputs, tmp_path, kind, error, text):
    proc = run(str(bad_inputs[kind]), "-f", "srt,vtt,json", "-o", str(tmp_path))
    assert_one_line_error(proc, error.exit_code, text)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_exit_codes_are_distinct():
    codes = [e.exit_code for e in (InputNotFound, NotMedia, NoAudioStream, EmptyAudio, OutputExists,
                                   BackendUnavailable, UnsupportedOption, OutputError)]
    assert len(set(codes)) == len(codes) and 0 not in codes and 2 not in codes  # 2: click usage


@pytest.mark.engine
def test_existing_output_is_kept_without_overwrite(tmp_path, short_clip):
    target = tmp_path / "short.srt"
    target.write_text("precious\n")
    proc = run(str(short_clip), "-o", str(tmp_path))
    assert_one_line_error(proc, OutputExists.exit_code, "--overwrite")
    assert target.read_text() == "precious\n"


def test_saved_transcript_rerenders_without_an_engine(tmp_path, fw_backend, sample_audio):
    from subtitler import DecodeOptions

    heard = fw_backend.transcribe(sample_audio.samples[: 16000 * 8], DecodeOptions(), Report())
    heard.save(tmp_path / "clip.json")
    # A backend that does not exist proves no engine is loaded for a transcript input.
    proc = run(str(tmp_path / "clip.json"), "-f", "srt,vtt", "--backend", "no-such-engine")
    assert proc.returncode == 0, proc.stderr
    assert "John Dashwood" in (tmp_path / "clip.srt").read_text()
    assert (tmp_path / "clip.vtt").read_text().startswith("WEBVTT")
    # Rendering JSON from JSON would overwrite the input: refused.
    proc = run(str(tmp_path / "clip.json"), "-f", "json", "--overwrite")
    assert_one_line_error(proc, OutputError.exit_code, "overwrite the input")


def test_unknown_backend_and_model(tmp_path):
    assert_one_line_error(run(str(SAMPLE), "-b", "nope", "-o", str(tmp_path)),
                          BackendUnavailable.exit_code, "unknown backend 'nope'")
    assert_one_line_error(run(str(SAMPLE), "-m", "gigantic", "-o", str(tmp_path)),
                          BackendUnavailable.exit_code, "unknown model 'gigantic'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.engine
def test_option_the_model_cannot_honour(tmp_path):
    proc = run(str(SAMPLE), "--language", "fr", "-o", str(tmp_path))
    assert_one_line_error(proc, UnsupportedOption.exit_code, "English-only")
    proc = run(str(SAMPLE), "--language", "klingon", "-o", str(tmp_path))
    assert_one_line_error(proc, UnsupportedOption.exit_code, "unknown language")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.engine
def test_unwritable_output_dir(tmp_path, short_clip):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run(str(short_clip), "-o", str(blocker / "sub"))
    assert_one_line_error(proc, OutputError.exit_code, "cannot write")


@pytest.mark.engine
def test_several_inputs_one_bad(bad_inputs, tmp_path, short_clip):
    proc = run(str(short_clip), str(bad_inputs["missing"]), "-o", str(tmp_path))
    assert proc.returncode == 1  # some failed; the good one is still done
    assert (tmp_path / "short.srt").exists()
    assert "missing.mp4: no such file" in proc.stderr


def test_help_shows_examples():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--beam-size" in result.output
    assert "Examples:" in CliRunner().invoke(cli, ["--help"]).output


def test_backends_listing():
    proc = run("backends")
    assert proc.returncode == 0
    lines = dict(line.split("\t")[:2] for line in proc.stdout.strip().splitlines())
    assert lines["faster-whisper (auto)"] == "available"  # auto on a machine without a GPU
    assert lines["whisper"] == "available"


def test_models_listing():
    proc = run("models")
    rows = {r.split("\t")[0]: r.split("\t")[1] for r in proc.stdout.strip().splitlines()}
    assert rows["tiny.en"] == "offline" and rows["base"] == "offline"
    assert rows["large-v3"] == "download"


@pytest.mark.engine
def test_progress_bar_on_request(short_clip, tmp_path):
    proc = run(str(short_clip), "-o", str(tmp_path), "--progress")
    assert proc.returncode == 0, proc.stderr
    assert "short.mp4 decode" in proc.stderr and "short.mp4 transcribe" in proc.stderr
    assert "/8.0 s" in proc.stderr  # counted in seconds of media


@pytest.mark.engine
@pytest.mark.parametrize("backend", ["faster-whisper", "whisper"])
def test_model_not_bundled_and_no_hub(tmp_path, backend):
    """Here no model hub is reachable: a known but unbundled name says so, in one line."""
    proc = run(str(SAMPLE), "-m", "small", "-b", backend, "-o", str(tmp_path))
    assert_one_line_error(proc, BackendUnavailable.exit_code, "not bundled and downloading it failed")
    assert "offline models: tiny.en, base" in proc.stderr
    assert list(tmp_path.iterdir()) == []
