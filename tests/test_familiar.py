"""Settings and names a user already knows: config files found as ruff and black find theirs,
`check --require-subs -o`, backend tables checked, openai-whisper's option spellings and result JSON,
one English track for English speech, MP4 tracks default only when asked, `subtitler backends` on
openai without a key.

Real files, real ffmpeg and real engines (faster-whisper tiny.en; base where translating is needed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt
from click.testing import CliRunner, Result

from subtitler.cli import cli
from subtitler.transcript import Segment, Transcript, Word

from .conftest import ROOT, SAMPLE, ffmpeg

# What openai-whisper 20250625 wrote for the sample's first 8 s (tests/conftest.py short_clip) with
#   whisper.transcribe(model, "clip.mp4", word_timestamps=True, fp16=False, language="en")
#   whisper.utils.get_writer("json", ".")(result, "clip.mp4")
# the model being subtitler-whisper's conversion of the bundled tiny.en (subtitler_whisper._load_model).
WHISPER_JSON = ROOT / "tests" / "data" / "openai-whisper-short.json"
SENTENCE = "Elinor sat down beside her sister and they talked about the long journey home."


def saved_transcript(path: Path) -> Path:
    """A subtitler transcript of one sentence, 0.4 s a word."""
    words = [Word(i * 0.4, i * 0.4 + 0.3, f" {w}") for i, w in enumerate(SENTENCE.split())]
    Transcript("en", 6.0, [Segment(0.0, words[-1].end, "".join(w.text for w in words), words)]).save(path)
    return path


def subtitler(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


def one_line_error(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subtitler: error: "), result.stderr
    return lines[0]


def ffprobe_streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"]


# --- config files ---------------------------------------------------------------------------


def test_config_is_found_in_a_parent_folder_up_to_the_repository_root(project):
    repo = project / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "subtitler.toml").write_text('format = "vtt"\nmax-lines = 1\n')
    work = repo / "talks" / "2024"
    work.mkdir(parents=True)
    saved_transcript(work / "clip.json")
    os.chdir(work)
    result = subtitler("render", "clip.json")
    assert result.exit_code == 0, result.output
    assert (work / "clip.vtt").is_file() and not (work / "clip.srt").exists()
    assert subtitler("config").stdout.count("# ../../subtitler.toml") == 2  # named as found, from here
    # A bad value there is blamed on that file.
    (repo / "subtitler.toml").write_text("max-lines = 0\n")
    assert "../../subtitler.toml: max-lines" in one_line_error(subtitler("render", "clip.json"))
    # pyproject.toml counts only with a [tool.subtitler] table: a plain one on the way is passed by.
    (repo / "subtitler.toml").unlink()
    (repo / "pyproject.toml").write_text('[tool.subtitler]\nformat = "txt"\n')
    (repo / "talks" / "pyproject.toml").write_text('[project]\nname = "talks"\n')
    assert subtitler("render", "clip.json", "--overwrite").exit_code == 0
    assert (work / "clip.txt").is_file()


def test_config_search_stops_at_the_repository_root(project):
    """A file above the checkout (.git) is someone else's: not read, as ruff and black do."""
    (project / "subtitler.toml").write_text('format = "vtt"\n')
    repo = project / "checkout"
    (repo / ".git").mkdir(parents=True)
    saved_transcript(repo / "clip.json")
    os.chdir(repo)
    assert subtitler("render", "clip.json").exit_code == 0
    assert (repo / "clip.srt").is_file() and not (repo / "clip.vtt").exists()


def test_unknown_key_in_a_backend_table_is_refused(project):
    saved_transcript(project / "clip.json")
    (project / "subtitler.toml").write_text("[backends.tiyaro]\nbogus = 1\n")
    line = one_line_error(subtitler("render", "clip.json"))
    assert "subtitler.toml [backends.tiyaro]: unknown key 'bogus'" in line and "api-key" in line
    (project / "subtitler.toml").write_text('[backends.tiyaro]\napi_key = "k"\nservice-tier = "gpu"\n'
                                            'max-answer = 1048576\n[backends.openai]\n'
                                            'base-url = "http://127.0.0.1:9/v1"\nmax-answer = 1048576\n')
    assert subtitler("render", "clip.json").exit_code == 0  # their real settings are fine
    (project / "subtitler.toml").write_text('[backends.opneai]\nbase-url = "http://127.0.0.1:9/v1"\n')
    assert "no backend 'opneai' is installed" in one_line_error(subtitler("render", "clip.json"))


@pytest.mark.engine
def test_check_require_subs_with_output_dir(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    ffmpeg("-i", str(SAMPLE), "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           str(videos / "a.mp4"))
    made = run("videos", "-o", "subs", "--no-progress", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ok = run("check", "--require-subs", "videos", "-o", "subs", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "subs/a.srt: ok (1 cues)" or ok.stdout.startswith("subs/a.srt: ok")
    # Without -o the subtitles are looked for beside the videos, where there are none.
    beside = run("check", "--require-subs", "videos", cwd=tmp_path)
    assert beside.returncode == 1 and "[missing]" in beside.stdout


# --- openai-whisper's spellings and JSON ----------------------------------------------------


def test_openai_whisper_option_spellings(project):
    saved_transcript(project / "clip.json")
    result = subtitler("render", "clip.json", "--output_dir", "out", "--output_format", "vtt",
                       "--max_line_width", "20", "--max_line_count=1", "--word_timestamps", "True")
    assert result.exit_code == 0, result.output
    text = (project / "out" / "clip.vtt").read_text()
    cues = text.split("\n\n")[1:]
    assert cues and all(len(c.strip().splitlines()) == 2 for c in cues)  # timing line + one line
    assert all(len(c.strip().splitlines()[1]) <= 20 for c in cues)
    # The decoding spellings reach the same settings as ours (what `subtitler config` reports).
    shown = subtitler("config", "--beam_size", "1", "--best_of", "2", "--condition_on_previous_text", "False",
                      "--temperature_increment_on_fallback", "none", "--no_speech_threshold", "0.5",
                      "--logprob_threshold=-2", "--compression_ratio_threshold", "3",
                      "--initial_prompt", "Hi",
                      "--suppress_tokens", "-1,50", "--length_penalty", "0.5", "--fp16", "False").stdout
    for line in ["beam-size = 1", "best-of = 2", "condition-on-previous-text = false",
                 "temperature-increment-on-fallback = none", "no-speech-threshold = 0.5",
                 "logprob-threshold = -2.0", "compression-ratio-threshold = 3.0", 'initial-prompt = "Hi"',
                 'suppress-tokens = "-1,50"', "length-penalty = 0.5", 'compute-type = "float32"']:
        assert f"{line}  # command line" in shown, line
    # openai-whisper's True/False takes only those words; the aliases stay out of the option list.
    bad = subtitler("render", "clip.json", "--word_timestamps", "yes")
    assert bad.exit_code == 2 and "expected True or False" in bad.output
    help_text = subtitler("run", "--help").stdout
    options, _, epilog = help_text.partition("openai-whisper's spellings work too:")
    assert "--output_dir" not in options and "--output_dir" in epilog and "--max_line_width" in epilog


@pytest.mark.engine
def test_run_with_openai_whisper_spellings(short_clip, tmp_path):
    proc = run(short_clip, "--output_dir", tmp_path, "--output_format", "srt", "--word_timestamps", "True",
               "--beam_size", "1", "--max_line_width", "30")
    assert proc.returncode == 0, proc.stderr
    cues = list(srt.parse((tmp_path / "short.srt").read_text()))
    assert "Dashwood" in " ".join(c.content for c in cues)
    assert max(len(line) for c in cues for line in c.content.splitlines()) <= 30


def test_openai_whisper_result_json_is_a_transcript(project):
    data = json.loads(WHISPER_JSON.read_text())
    assert set(data) == {"text", "segments", "language"} and "words" in data["segments"][0]
    shutil.copy(WHISPER_JSON, project / "clip.json")
    result = subtitler("render", "clip.json", "-f", "srt,json", "-o", "out")
    assert result.exit_code == 0, result.output
    cues = list(srt.parse((project / "out" / "clip.srt").read_text()))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == data["text"].strip()
    saved = Transcript.load(project / "out" / "clip.json")
    words = [w for s in data["segments"] for w in s["words"]]
    assert saved.language == "en"
    assert [(w.start, w.end, w.text) for w in saved.words] == [(w["start"], w["end"], w["word"])
                                                               for w in words]
    # As an input of a run, too (no engine: it is a transcript).
    shutil.copy(WHISPER_JSON, project / "again.json")
    result = subtitler("again.json", "-f", "vtt", "-o", "run")
    assert result.exit_code == 0, result.output
    assert (project / "run" / "again.vtt").read_text().startswith("WEBVTT")


def test_openai_whisper_json_without_word_times_and_a_broken_one(project):
    data = json.loads(WHISPER_JSON.read_text())
    for s in data["segments"]:
        del s["words"]  # what `whisper` writes without --word_timestamps True
    (project / "plain.json").write_text(json.dumps(data))
    assert subtitler("render", "plain.json").exit_code == 0
    cues = list(srt.parse((project / "plain.srt").read_text()))
    segment = data["segments"][0]
    assert cues[0].start.total_seconds() == segment["start"]
    assert abs(cues[-1].end.total_seconds() - segment["end"]) < 1.0  # words spread over their segment
    broken = {"text": "x", "language": "en", "segments": [{"start": 0}]}
    (project / "broken.json").write_text(json.dumps(broken))
    assert "malformed openai-whisper result" in one_line_error(subtitler("render", "broken.json"), code=11)
    # NaN and huge times are refused as in our own transcripts, not rendered as 00:00:00,000.
    data["segments"][0]["start"] = float("nan")
    (project / "nan.json").write_text(json.dumps(data))
    assert "segment 0: start: nan is out of range" in one_line_error(subtitler("render", "nan.json"), code=11)
    assert not (project / "nan.srt").exists()


# --- into the video -------------------------------------------------------------------------


@pytest.mark.engine
def test_translate_mux_on_english_speech_makes_one_track(short_clip, tmp_path):
    """Translating English into English gives the transcript again: one English track, not two."""
    proc = run(short_clip, "--mux", "--task", "translate", "--model", "base", "--beam-size", "1",
               "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    subtitles = [s for s in ffprobe_streams(tmp_path / "short.subtitled.mp4")
                 if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subtitles] == ["eng"]
    # Given as English, the same, without running the engine twice.
    proc = run(short_clip, "--mux", "--task", "translate", "--model", "base", "--beam-size", "1",
               "--language", "en", "-o", tmp_path / "given", "--report", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    subtitles = [s for s in ffprobe_streams(tmp_path / "given" / "short.subtitled.mp4")
                 if s["codec_type"] == "subtitle"]
    assert len(subtitles) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["task"] for t in report["settings"]["transcription"]["tasks"]] == ["transcribe"]


@pytest.mark.parametrize("container", ["mp4", "mov", "mkv"])
def test_new_track_is_default_only_with_default_track(short_clip, tmp_path, container):
    subs = tmp_path / "clip.srt"
    subs.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n")
    plain, default = tmp_path / f"plain.{container}", tmp_path / f"default.{container}"
    assert run("mux", short_clip, subs, "-o", plain).returncode == 0
    assert run("mux", short_clip, subs, subs, "-o", default, "--default-track").returncode == 0
    assert defaults(plain) == [0] and defaults(default) == [1, 0]
    # The picture and sound are untouched: still default, still playable.
    assert defaults(plain, subtitles=False) == [1, 1]
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(plain), "-map", "0:s", "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    assert "Hello." in out


def defaults(path: Path, subtitles: bool = True) -> list[int]:
    """The default flag of each subtitle stream (or each other stream), as ffprobe reads it."""
    return [s["disposition"]["default"] for s in ffprobe_streams(path)
            if (s["codec_type"] == "subtitle") == subtitles]


# --- backends -------------------------------------------------------------------------------


def test_backends_marks_openai_unusable_without_key_or_own_server(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def openai_line() -> str:
        result = subtitler("backends")
        assert result.exit_code == 0, result.output
        return next(line for line in result.stdout.splitlines() if line.startswith("openai"))

    assert "\tunavailable: OPENAI_API_KEY is not set" in openai_line()
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1/")  # the default, spelled out
    assert "\tunavailable: " in openai_line()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")  # a self-hosted server
    assert "\tavailable\t" in openai_line()
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert "\tavailable\t" in openai_line()
    monkeypatch.delenv("OPENAI_API_KEY")
    (project / "subtitler.toml").write_text('[backends.openai]\nbase-url = "http://127.0.0.1:8000/v1"\n')
    assert "\tavailable\t" in openai_line()
    # Named anyway, it is refused before any audio is read.
    (project / "subtitler.toml").unlink()
    result = subtitler(SAMPLE, "--backend", "openai", "-o", project / "out")
    assert result.exit_code == 8 and "OPENAI_API_KEY is not set" in result.stderr
