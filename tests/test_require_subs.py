"""`subtitler check --require-subs DIR` catches missing, stale and bad subtitles, and what was made with
other settings; the pre-commit hook and the CI example ship and parse.

A real `subtitler videos` run (faster-whisper, tiny.en) subtitles two 4 s clips cut from the sample
once per module; each test works on its own copy of that project folder, with the CLI in a subprocess
whose working directory is the copy, so its subtitler.toml is the one read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest

from subtitler.config import tomllib
from subtitler.inputs import MEDIA_EXTENSIONS

from .conftest import ROOT, SAMPLE, ffmpeg

FORMATS = 'format = ["srt", "vtt", "txt"]\n'
VIDEOS = ["videos/a.mp4", "videos/talks/b.mp4"]
SUBTITLES = [f"videos/{name}.{ext}" for name in ("a", "talks/b") for ext in ("srt", "vtt", "txt")]


def subtitler(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def cut(start: float, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-ss", str(start), "-i", str(SAMPLE), "-t", "4", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", str(out))
    return out


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose transcript cache is shared by this module's runs: later runs only render."""
    return {**os.environ, "SUBTITLER_TRANSCRIPTS_DIR": str(tmp_path_factory.mktemp("transcripts"))}


@pytest.fixture(scope="module")
def subtitled(tmp_path_factory: pytest.TempPathFactory, transcripts: dict[str, str]) -> Path:
    """A media repository after `subtitler videos`: videos/a.mp4, videos/talks/b.mp4, their .srt, .vtt
    and .txt beside them with .subtitler.json manifests; subtitler.toml pins the formats."""
    project = tmp_path_factory.mktemp("project")
    cut(0, project / "videos" / "a.mp4")
    cut(4, project / "videos" / "talks" / "b.mp4")
    (project / "subtitler.toml").write_text(FORMATS)
    proc = subtitler(project, "videos", "--no-progress", env=transcripts)
    assert proc.returncode == 0, proc.stderr
    assert all((project / s).is_file() for s in SUBTITLES)
    return project


@pytest.fixture(scope="module")
def spare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another clip (seconds 8-12 of the sample), never subtitled."""
    return cut(8, tmp_path_factory.mktemp("spare") / "spare.mp4")


@pytest.fixture
def project(subtitled: Path, tmp_path: Path) -> Path:
    """This test's own copy of the subtitled repository (times kept: copytree copies them)."""
    return Path(shutil.copytree(subtitled, tmp_path / "project"))


def problems(proc: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(path, rule) of each problem line of check's text output."""
    found = []
    for line in proc.stdout.splitlines():
        if line.endswith("]"):
            path, _, rest = line.partition(": ")
            found.append((path, rest.rsplit("[", 1)[1].rstrip("]")))
    return found


def test_clean_repository_passes(project):
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "videos/a.srt: ok (1 cues)", "videos/a.vtt: ok (1 cues)", "videos/a.txt: ok",
        "videos/talks/b.srt: ok (1 cues)", "videos/talks/b.vtt: ok (1 cues)", "videos/talks/b.txt: ok"]


def test_video_without_subtitles_is_missing(project, spare):
    shutil.copy(spare, project / "videos" / "talks" / "new.mp4")
    (project / "videos" / "a.vtt").unlink()
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1
    assert problems(proc) == [("videos/a.vtt", "missing"), ("videos/talks/new.srt", "missing"),
                              ("videos/talks/new.vtt", "missing"), ("videos/talks/new.txt", "missing")]
    assert "videos/talks/new.srt: no such file, expected for videos/talks/new.mp4 [missing]" in proc.stdout
    # run's --exclude, from the config file, applies: excluded videos need no subtitles.
    (project / "subtitler.toml").write_text(FORMATS + '[run]\nexclude = ["talks/new*"]\n')
    assert problems(subtitler(project, "check", "--require-subs", "videos")) == [("videos/a.vtt", "missing")]


def test_replaced_video_makes_its_subtitles_stale(project, spare):
    shutil.copy(spare, project / "videos" / "a.mp4")  # other content, after the subtitles were made
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1
    assert problems(proc) == [(f"videos/a.{ext}", "stale") for ext in ("srt", "vtt", "txt")]
    assert "videos/a.srt: made from another version of videos/a.mp4 (changed since) [stale]" in proc.stdout
    # What check calls stale is what a run would do again.
    planned = dict(line.split("\t")[:2][::-1] for line in subtitler(project, "videos", "--dry-run").stdout
                   .splitlines())
    assert planned["videos/a.mp4"] != "up-to-date" and planned["videos/talks/b.mp4"] == "up-to-date"


def test_without_a_manifest_subtitles_older_than_their_video_are_stale(project):
    for manifest in project.rglob(".subtitler.json"):
        manifest.unlink()  # subtitles made by hand or by another tool
    video = project / "videos" / "talks" / "b.mp4"
    newer = (project / "videos" / "talks" / "b.srt").stat().st_mtime + 60
    os.utime(video, (newer, newer))
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1
    assert problems(proc) == [(f"videos/talks/b.{ext}", "stale") for ext in ("srt", "vtt", "txt")]
    assert "videos/talks/b.srt: older than videos/talks/b.mp4 [stale]" in proc.stdout


def test_subtitles_of_an_interrupted_run_are_stale(project):
    manifest = project / "videos" / ".subtitler.json"
    data = json.loads(manifest.read_text())
    data["outputs"]["a.srt"]["pending"] = True
    manifest.write_text(json.dumps(data))
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert problems(proc) == [("videos/a.srt", "stale")]
    assert "unfinished" in proc.stdout


@pytest.mark.parametrize("toml,named", [
    (FORMATS + "[run]\nbeam-size = 1\n", "tasks.beam_size 5 -> 1"),
    ('model = "base"\n' + FORMATS, "model none -> base"),
    (FORMATS + "[run]\nmax-line-chars = 30\n", "profile"),  # [run] only: check's own profile is netflix
    ('format = ["srt", "vtt"]\n', 'formats ["srt", "vtt", "txt"] -> ["srt", "vtt"]'),
])
def test_subtitles_made_with_other_settings(project, toml, named):
    (project / "subtitler.toml").write_text(toml)
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    formats = tomllib.loads(toml)["format"]
    assert problems(proc) == [(s, "settings") for s in SUBTITLES if s.rsplit(".")[-1] in formats]
    assert f"videos/a.srt: made with other settings ({named}) [settings]" in proc.stdout
    plans = subtitler(project, "videos", "--dry-run").stdout.splitlines()
    assert plans and not any(line.startswith("up-to-date") for line in plans)  # a run would redo them


def test_subtitles_that_break_the_profile(project):
    srt = project / "videos" / "a.srt"
    subs = pysubs2.load(str(srt))
    subs[0].text = "word " * 40  # one line of 200 characters
    subs.save(str(srt))
    vtt = project / "videos" / "talks" / "b.vtt"
    subs = pysubs2.load(str(vtt))
    subs[0].end = 9000  # the clip lasts 4 s
    subs.save(str(vtt))
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1
    assert ("videos/a.srt", "line-length") in problems(proc)
    assert ("videos/talks/b.vtt", "beyond-video") in problems(proc)
    assert {rule for _, rule in problems(proc)} <= {"line-length", "reading-speed", "max-duration",
                                                    "beyond-video"}
    # check's profile, from the config file, judges them.
    (project / "subtitler.toml").write_text(FORMATS + "[check]\nmax-line-chars = 300\nmax-cps = 100\n"
                                            "max-duration = 20\n")
    assert problems(subtitler(project, "check", "--require-subs", "videos")) == [
        ("videos/talks/b.vtt", "beyond-video")]


def test_json_report_with_files_and_folders(project, spare):
    shutil.copy(spare, project / "videos" / "a.mp4")
    (project / "videos" / "talks" / "b.vtt").unlink()
    (project / "loose.srt").write_text("1\n00:00:01,000 --> 00:00:03,000\nA line.\n")
    proc = subtitler(project, "check", "loose.srt", "--require-subs", "videos", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["profile"] == "netflix"
    rules = {f["path"]: [v["rule"] for v in f["violations"]] for f in report["files"]}
    assert rules == {"loose.srt": [], "videos/a.srt": ["stale"], "videos/a.vtt": ["stale"],
                     "videos/a.txt": ["stale"], "videos/talks/b.srt": [], "videos/talks/b.vtt": ["missing"],
                     "videos/talks/b.txt": []}
    videos = {f["path"]: f["video"] for f in report["files"]}
    assert videos["loose.srt"] is None and videos["videos/talks/b.vtt"] == "videos/talks/b.mp4"
    assert {f["path"]: f["cues"] for f in report["files"]}["videos/talks/b.vtt"] is None


def test_mirrored_output_folder_from_the_config(project, transcripts):
    (project / "subtitler.toml").write_text(FORMATS + 'output-dir = "subs"\n')
    assert subtitler(project, "check", "--require-subs", "videos").returncode == 1  # nothing in subs/ yet
    assert subtitler(project, "videos", "--no-progress", env=transcripts).returncode == 0  # renders only
    assert subtitler(project, "check", "--require-subs", "videos").returncode == 0
    (project / "subs" / "talks" / "b.srt").unlink()
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert problems(proc) == [("subs/talks/b.srt", "missing")]


def test_muxed_videos_need_no_subtitles_of_their_own(project, transcripts):
    (project / "subtitler.toml").write_text(FORMATS + "mux = true\n")
    assert subtitler(project, "videos", "--no-progress", env=transcripts).returncode == 0
    assert (project / "videos" / "a.subtitled.mp4").is_file()
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 0, proc.stdout
    assert "subtitled" not in proc.stdout


def test_unreadable_video_with_subtitles_cannot_be_checked(project):
    (project / "videos" / "a.mp4").write_bytes(b"not a video at all")
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 2
    assert "videos/a.srt: error: cannot know the video's duration" in proc.stdout


@pytest.mark.parametrize("args,text", [
    ((), "give subtitle FILES, or --require-subs DIR"),
    (("--require-subs", "nowhere"), "does not exist"),
])
def test_usage_errors(tmp_path, args, text):
    proc = subtitler(tmp_path, "check", *args)
    assert proc.returncode == 2
    assert text in proc.stderr


def test_pre_commit_hook_and_ci_example_parse():
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "subtitler-check")
    assert hook["entry"] == "subtitler check --require-subs ." and hook["language"] == "python"
    assert hook["pass_filenames"] is False
    assert all(re.search(hook["files"], f"videos/clip{ext.upper()}") for ext in MEDIA_EXTENSIONS)
    assert re.search(hook["files"], "subtitler.toml") and not re.search(hook["files"], "notes.md")
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "subtitler check --require-subs videos/" in commands
    assert "subtitler videos/ -o subs/ --report report.json" in commands
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps)
