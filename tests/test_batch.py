"""Batch runs over a tree of 24 real media files: skip, cache, re-render, survive a kill, report.

The tree is cut from the real-speech sample by real ffmpeg: 20 good files in
nine containers (one with a misleading extension, found by probing), and
four bad ones (garbage, a truncated MP4, two without audio). Runs go through
the real command line in a subprocess, and the report they write is how
the tests see what was decoded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import srt

from subtitler.inputs import find_inputs

from .conftest import SAMPLE, ffmpeg, made

GOOD = {  # relative path -> extra ffmpeg output arguments
    "a/clip00.mp4": ["-c", "copy"], "a/clip01.mp4": ["-c", "copy"], "a/clip02.mkv": ["-c", "copy"],
    "a/b/clip03.mkv": ["-c", "copy"], "a/b/clip04.mp4": ["-c", "copy"], "a/b/c/clip05.mov": ["-c", "copy"],
    "a/b/c/clip06.mp4": ["-c", "copy"], "lectures/day1.m4a": ["-vn", "-c:a", "copy"],
    "lectures/day2.m4a": ["-vn", "-c:a", "copy"], "lectures/day3.mp3": ["-vn"],
    "lectures/day4.wav": ["-vn", "-ac", "1", "-ar", "16000"], "lectures/day5.flac": ["-vn"],
    "lectures/day6.ogg": ["-vn", "-c:a", "libopus"], "raw/take1.mkv": ["-c", "copy"],
    "raw/take2.mp4": ["-c", "copy"], "raw/take3.mov": ["-c", "copy"], "raw/TAKE4.MOV": ["-c", "copy"],
    "raw/take5.mp4": ["-c", "copy"], "raw/take6.mkv": ["-c", "copy"],
    "odd/mystery.bin": ["-c", "copy", "-f", "mp4"],  # media by content, not by name
}
BAD = {"bad/corrupt.mp4": 4, "bad/truncated.mp4": 4}
# No audio stream: a normal case, like no speech: empty subtitles.
MUTE = ["bad/silent_film.mp4", "bad/picture_only.mkv"]
# Never inputs: not media, hidden, or subtitles.
NOISE = ["notes.txt", "a/old.srt", ".hidden/secret.mp4", "a/.clip00.abcd.part.srt"]


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def by_input(report: dict, root: Path) -> dict[str, dict]:
    return {Path(i["input"]).relative_to(root).as_posix(): i for i in report["inputs"]}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for n, (name, args) in enumerate(GOOD.items()):  # a different 3 s of speech in each
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        ffmpeg("-ss", str(n * 1.3), "-t", "3", "-i", str(SAMPLE), *args, str(root / name))
    (root / "bad").mkdir()
    (root / "bad/corrupt.mp4").write_bytes(os.urandom(20000))
    (root / "bad/truncated.mp4").write_bytes((root / "a/clip00.mp4").read_bytes()[:1500])
    for name in MUTE:
        ffmpeg("-i", str(SAMPLE), "-t", "2", "-an", "-c", "copy", str(root / name))
    for name in NOISE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".mp4"):
            shutil.copy(root / "a/clip00.mp4", root / name)
        else:
            (root / name).write_text("x")
    return root


@pytest.fixture
def tree(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "videos"))


def srt_cues(path: Path) -> list[srt.Subtitle]:
    return list(srt.parse(path.read_text(encoding="utf-8")))


def test_inputs_are_found_by_content_filtered_and_listed(tree, tmp_path, monkeypatch):
    found = {i.relative.as_posix() for i in find_inputs([str(tree)])}
    assert found == set(GOOD) | set(BAD) | set(MUTE)  # the .bin by probing; no .txt, .srt, hidden files
    only = {i.relative.as_posix() for i in find_inputs([str(tree)], include=["lectures/*", "*.MOV"])}
    assert only == {n for n in GOOD if n.startswith("lectures/")} | {"raw/TAKE4.MOV"}
    without = {i.relative.as_posix() for i in find_inputs([str(tree)], exclude=["bad/*", "a/*"])}
    assert without == {n for n in GOOD if not n.startswith("a/")}
    listing = tmp_path / "list.txt"
    listing.write_text(f"# today's\n{tree / 'raw/take1.mkv'}\n\n{tree / 'lectures'}\n")
    listed = [i.relative.as_posix() for i in find_inputs([], lists=[str(listing)])]
    assert listed[0] == "take1.mkv" and len(listed) == 7
    monkeypatch.setattr("sys.stdin", open(listing))  # noqa: SIM115 (closed by the fixture)
    assert [i.relative.as_posix() for i in find_inputs(["-"])] == listed


@pytest.mark.engine
def test_first_run_then_nothing_then_only_rerender(tree, tmp_path):
    out = tmp_path / "subs"
    first = run(tree, "-o", out, "--report", tmp_path / "r1.json")
    assert first.returncode == 1, first.stderr  # some inputs failed; the others are done
    r1 = load(tmp_path / "r1.json")
    inputs = by_input(r1, tree)
    assert {n for n, i in inputs.items() if i["status"] == "done"} == set(GOOD) | set(MUTE)
    assert {n: i["exit_code"] for n, i in inputs.items() if i["status"] == "failed"} == BAD
    for name in BAD:
        assert sum(name in line for line in first.stderr.splitlines() if "error" in line) == 1
    # The tree is mirrored, and every good input has real subtitles with words in them.
    for name in GOOD:
        subs = out / Path(name).with_suffix(".srt")
        assert subs.exists() and srt_cues(subs) and inputs[name]["language"] == "en"
        # 3 s cut by stream copy: from the keyframe before, so some are longer.
        assert inputs[name]["decoded"] and 2.5 <= inputs[name]["duration"] <= 12
    assert {p.relative_to(out).as_posix() for p in out.glob("bad/*.srt")} == {
        str(Path(name).with_suffix(".srt")) for name in MUTE}
    assert all((out / Path(name).with_suffix(".srt")).read_text() == "" for name in MUTE)
    assert not (out / "notes.srt").exists()
    assert r1["summary"]["decoded"] == len(GOOD) + len(BAD) + len(MUTE)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.srt")}

    second = run(tree, "-o", out, "--report", tmp_path / "r2.json")
    r2 = load(tmp_path / "r2.json")
    assert second.returncode == 1 and r2["summary"]["decoded"] == 0  # nothing decoded, bad ones included
    assert r2["summary"]["up-to-date"] == len(GOOD) + len(MUTE) and r2["summary"]["failed"] == len(BAD)
    assert all("decode" not in i["timings"] for i in r2["inputs"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.srt")} == stamps  # not even rewritten

    third = run(tree, "-o", out, "--max-line-chars", "16", "--report", tmp_path / "r3.json")
    r3 = load(tmp_path / "r3.json")
    assert third.returncode == 1 and r3["summary"]["decoded"] == 0
    assert r3["summary"]["rendered"] == len(GOOD) + len(MUTE)  # from the cached transcripts
    for name in GOOD:
        cues = srt_cues(out / Path(name).with_suffix(".srt"))
        assert all(len(line) <= 16 for c in cues for line in c.content.splitlines())


@pytest.mark.engine
def test_decoding_overlaps_the_engine_and_stays_bounded(tree, tmp_path):
    """The next file is decoded while the engine works on this one; at most 2 wait decoded."""
    run(tree / "a", tree / "raw", "-o", tmp_path / "subs", "--report", tmp_path / "r.json")
    done = [i for i in load(tmp_path / "r.json")["inputs"] if i["status"] == "done"]
    assert len(done) == 13
    overlapping = sum(b["spans"]["decode"][0] < a["spans"]["transcribe"][1]
                      for a, b in zip(done, done[1:], strict=False))
    assert overlapping >= len(done) // 2
    for i in done:  # at each decode start, inputs decoded (or decoding) and not yet finished
        t = i["spans"]["decode"][0]
        assert sum(j["spans"]["decode"][0] <= t < j["spans"]["total"][1] for j in done) <= 2


def test_dry_run_does_nothing(tree, tmp_path):
    out = tmp_path / "subs"
    proc = run(tree / "a", tree / "missing.mp4", "-o", out, "--dry-run")
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 1  # the missing file
    assert sum(line.startswith("transcribe\t") for line in lines) == 7
    assert any(line.startswith("failed\t") and "missing.mp4" in line for line in lines)
    assert not out.exists()


@pytest.mark.engine
def test_fail_fast_stops_at_the_first_failure(tree, tmp_path):
    out = tmp_path / "subs"
    proc = run(tree / "bad/corrupt.mp4", tree / "a", "-o", out, "--fail-fast",
               "--report", tmp_path / "r.json")
    assert proc.returncode == 1
    statuses = [i["status"] for i in load(tmp_path / "r.json")["inputs"]]
    assert statuses[0] == "failed" and statuses.count("done") <= 1 and "skipped" in statuses
    assert len(made(out)) == statuses.count("done")


@pytest.mark.engine
def test_force_and_no_cache_decode_again(tree, tmp_path):
    out = tmp_path / "subs"
    assert run(tree / "lectures", "-o", out).returncode == 0
    forced = run(tree / "lectures", "-o", out, "--force", "--report", tmp_path / "r.json")
    assert forced.returncode == 0 and load(tmp_path / "r.json")["summary"]["decoded"] == 6


@pytest.mark.engine
def test_killed_mid_run_then_rerun_finishes_with_valid_outputs(tree, tmp_path):
    out = tmp_path / "subs"
    command = [sys.executable, "-m", "subtitler", str(tree), "-o", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(made(out)) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(made(out))
    assert 5 <= finished_before < len(GOOD), "the run ended before it could be killed"

    again = run(tree, "-o", out, "--report", tmp_path / "r.json")
    assert again.returncode == 1, again.stderr  # only the bad inputs fail
    report = load(tmp_path / "r.json")
    assert report["summary"]["up-to-date"] + report["summary"].get("rendered", 0) >= finished_before - 1
    assert report["summary"]["decoded"] <= len(GOOD) + len(BAD) + len(MUTE) - finished_before + 1
    for name in GOOD:  # every output whole and valid
        assert srt_cues(out / Path(name).with_suffix(".srt"))
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    cache = Path(os.environ["SUBTITLER_TRANSCRIPTS_DIR"])
    for entry in cache.rglob("*.json"):
        json.loads(entry.read_text())  # no torn cache entry
    manifests = [load(m) for m in out.rglob(".subtitler.json")]
    assert not any(e.get("pending") for m in manifests for e in m["outputs"].values())


@pytest.mark.engine
def test_overall_progress_on_a_terminal(tree, tmp_path):
    proc = run(tree / "lectures", "-o", tmp_path / "subs", "--progress")
    assert proc.returncode == 0
    assert "6/6 files" in proc.stderr and "s of media" in proc.stderr


@pytest.mark.engine
def test_videos_a_run_made_are_not_inputs_next_time(tree):
    folder = tree / "a/b/c"
    assert run(folder, "--mux").returncode == 0  # clip05.subtitled.mov, clip06.subtitled.mp4 beside them
    assert (folder / "clip06.subtitled.mp4").exists()
    proc = run(folder, "--mux", "--dry-run")
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == ["up-to-date"] * 2


@pytest.mark.engine
def test_ctrl_c_mid_run_stops_cleanly_and_reports(tree, tmp_path):
    out = tmp_path / "subs"
    proc = subprocess.Popen([sys.executable, "-m", "subtitler", str(tree / "raw"), str(tree / "a"),
                             "-o", str(out), "--report", str(tmp_path / "r.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(made(out)) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    report = load(tmp_path / "r.json")
    written = made(out)
    # One file at a time: at most the one being finished is written but not yet reported done.
    assert report["interrupted"] and len(written) - 1 <= report["summary"].get("done", 0) < 13
    assert {Path(p) for p in stdout.split()} <= set(written)  # what it announced is there
    for subs in written:  # whatever was written is whole
        assert srt_cues(subs)
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    again = run(tree / "raw", tree / "a", "-o", out, "--report", tmp_path / "r2.json")
    summary = load(tmp_path / "r2.json")["summary"]
    assert again.returncode == 0 and summary["up-to-date"] + summary.get("rendered", 0) >= len(written)


def test_abandon_removes_temporary_files_being_written(tmp_path, monkeypatch):
    """What the CLI does on Ctrl-C before exiting without waiting for busy threads."""
    from subtitler import files
    from subtitler.errors import OutputError

    monkeypatch.setattr(files, "_abandoned", False)
    with pytest.raises(OutputError, match="stopping"), files.atomic_path(tmp_path / "clip.srt") as tmp:
        tmp.write_text("half a file")
        files.abandon()
        assert not tmp.exists()
    with pytest.raises(OutputError, match="stopping"), files.atomic_path(tmp_path / "clip.vtt"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_two_inputs_with_the_same_output_do_not_overwrite_each_other(tree, tmp_path):
    shutil.copy(tree / "raw/take1.mkv", tree / "raw/take2.mkv")  # take2.mp4 is there already
    proc = run(tree / "raw", "-o", tmp_path / "subs", "--dry-run")
    assert proc.returncode == 1
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("failed")]
    assert "take2.srt is already the output of" in line and "take2.mp4" in line and "take2.mkv" in line


@pytest.mark.engine
def test_python_api_runs_a_folder_like_the_command(tree, tmp_path):
    import subtitler

    batch = subtitler.Batch(subtitler.Subtitler(formats=["vtt"], output_dir=str(tmp_path / "subs")),
                            cache=subtitler.Cache(tmp_path / "cache"))
    outcomes = batch.run(subtitler.find_inputs([str(tree / "lectures")]))
    assert [o.status for o in outcomes] == ["done"] * 6
    assert all(o.outputs[0].read_text().startswith("WEBVTT") for o in outcomes)
    again = subtitler.Batch(subtitler.Subtitler(formats=["vtt"], output_dir=tmp_path / "subs"),
                            cache=subtitler.Cache(tmp_path / "cache")).run(
                                subtitler.find_inputs([str(tree / "lectures")]))
    assert [o.status for o in again] == ["up-to-date"] * 6


def test_a_model_that_cannot_load_stops_the_run_once(tree, tmp_path):
    proc = run(tree / "lectures", "-m", "gigantic", "-o", tmp_path / "subs")
    assert proc.returncode == 8 and proc.stderr.count("unknown model 'gigantic'") == 1
    assert not (tmp_path / "subs").exists()


@pytest.mark.engine
def test_cache_command_shows_and_clears(tree, tmp_path):
    out = tmp_path / "subs"
    assert run(tree / "lectures", "-o", out).returncode == 0
    shown = run("cache").stdout
    assert os.environ["SUBTITLER_TRANSCRIPTS_DIR"] in shown and "transcripts\t6 entries" in shown
    assert run("cache", "--older-than", "1").stdout.startswith("removed 0 entries")
    assert not run("cache", "--clear").stdout.startswith("removed 0 ")
    # Without cached transcripts a layout change must decode again.
    again = run(tree / "lectures", "-o", out, "--max-line-chars", "20", "--report", tmp_path / "r.json")
    assert again.returncode == 0 and load(tmp_path / "r.json")["summary"]["decoded"] == 6


@pytest.mark.engine
def test_a_report_that_cannot_be_written_fails_the_run(tree, tmp_path):
    proc = run(tree / "lectures/day1.m4a", "-o", tmp_path / "subs", "--report", "/proc/no/report.json")
    assert proc.returncode == 12 and (tmp_path / "subs/day1.srt").exists()
    assert [line for line in proc.stderr.splitlines() if "error" in line] == [
        "subtitler: error: /proc/no/report.json: cannot write the report (No such file or directory)"]
