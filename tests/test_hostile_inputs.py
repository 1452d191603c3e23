"""Inputs that are odd but real: no traceback, ever, and every error names the file the user gave.

Names that look like options or ffmpeg protocols, stdin, NUL-separated lists,
symlink loops, names that are not UTF-8 or close to the 255-byte limit, broken
transcripts, an unwritable cache, and failures that must (or must not) be
remembered. Each test runs the real command in a subprocess on media made with
ffmpeg.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLE, assert_one_line_error, ffmpeg
from .remote_fixtures import engine  # noqa: F401, F811 (fixture: the engine behind the fake service)


def run(*args: str | bytes | Path, cwd: Path | None = None, stdin: bytes | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command in a subprocess (no terminal); output kept as text, odd bytes escaped."""
    proc = subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, timeout=300,
                          cwd=cwd, input=stdin if stdin is not None else b"",
                          env={**os.environ, **(env or {})})
    proc.stdout = proc.stdout.decode("utf-8", "surrogateescape")
    proc.stderr = proc.stderr.decode("utf-8", "surrogateescape")
    return proc


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's first 3 s of speech, audio only: quick to decode and transcribe."""
    out = tmp_path_factory.mktemp("clip") / "clip.m4a"
    ffmpeg("-i", str(SAMPLE), "-t", "3", "-vn", "-c:a", "aac", str(out))
    return out


@pytest.mark.engine
def test_names_that_look_like_options_or_protocols(clip, tmp_path):
    """`subtitler -- -x.m4a` works, and no name reaches ffmpeg as an option or a protocol."""
    names = ["-x.m4a", "-i", "pipe:1", "concat:clip.m4a|clip.m4a", "file:other.m4a"]
    for name in names:
        shutil.copy(clip, tmp_path / name)
    proc = run("-f", "json", "--", *names, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in names:
        stem = name[:-4] if name.endswith(".m4a") else name
        assert (tmp_path / f"{stem}.json").is_file(), name
    assert "--" not in os.listdir(tmp_path)
    # The protocol's target (clip.m4a, other.m4a) was never read in place of the file named.
    assert not (tmp_path / "clip.json").exists() and not (tmp_path / "other.json").exists()
    # "--" first, as the issue typed it: the group's parser must not take it from the command.
    proc = run("--", "-x.m4a", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "-x.srt").is_file()


@pytest.mark.engine
def test_a_240_character_name(clip, tmp_path):
    """clip.srt's temporary name (.{stem}.{random}.part.srt) was 259 bytes: over the 255 allowed."""
    media = tmp_path / ("x" * 238 + "é" * 2 + ".m4a")  # 240 characters, 242 bytes of stem
    shutil.copy(clip, media)
    proc = run(media, "-f", "srt,json")
    assert proc.returncode == 0, proc.stderr
    assert media.with_suffix(".srt").is_file() and media.with_suffix(".json").is_file()
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [".subtitler.json", ".subtitler.lock"]  # no temporary file left


def _transcript(**changes: object) -> dict:
    word = {"start": 0.5, "end": 1.0, "text": " Hello", "probability": 0.9}
    segment = {"start": 0.5, "end": 1.0, "text": " Hello", "words": [word]}
    data = {"schema": "subtitler.transcript", "version": 1, "language": "en", "duration": 3.0,
            "meta": {}, "segments": [segment]}
    for where, value in changes.items():
        target = {"segment": segment, "word": word, "top": data}[where.split("_")[0]]
        target[where.split("_", 1)[1]] = value
    return data


@pytest.mark.parametrize("changes,text", [
    ({"segment_start": "zero"}, "segment 0: start: not a number"),
    ({"segment_text": 5}, "segment 0: text: not a string"),
    ({"top_segments": [1, 2]}, "malformed transcript"),
    ({"word_end": float("nan")}, "segment 0: word 0: end: nan is out of range"),
    ({"segment_end": 1e308}, "segment 0: end: 1e+308 is out of range"),
    ({"top_duration": float("inf")}, "duration: inf is out of range"),
    ({"word_probability": "high"}, "word 0: probability: not a number"),
])
def test_transcript_with_wrong_types_nan_or_huge_numbers(tmp_path, changes, text):
    """They rendered garbage (a time as text), or ended in a traceback (1e308: OverflowError)."""
    import json

    path = tmp_path / "talk.json"
    path.write_text(json.dumps(_transcript(**changes)))  # NaN and Infinity as Python's json writes them
    proc = run(path, "-f", "srt,vtt")
    assert_one_line_error(proc, 11, f"{path}: malformed transcript")
    assert text in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.json"]


@pytest.mark.engine
def test_a_remembered_failure_names_the_file_given_now(tmp_path):
    """The same bytes under another name: the error named the path they were first seen under."""
    first, second = tmp_path / "notes.mp4", tmp_path / "copy of notes.mp4"
    first.write_text("not a video at all\n")
    shutil.copy(first, second)
    assert_one_line_error(run(first), 4, f"{first}: not a media file")
    proc = run(second)
    assert_one_line_error(proc, 4, f"{second}: not a media file")
    assert "as in an earlier run" in proc.stderr and str(first) not in proc.stderr


@pytest.mark.engine
def test_a_killed_ffmpeg_is_not_remembered_as_not_media(clip, tmp_path):
    """ffmpeg killed mid-decode said "not media", and every later run believed it."""
    from subtitler.media import find_tools

    killer = tmp_path / "ffmpeg"  # the real ffmpeg, killed with its caller while it decodes
    killer.write_text(f'#!/bin/sh\n"{find_tools().ffmpeg}" "$@" &\nsleep 0.2\nkill -KILL $! $$\n')
    killer.chmod(0o755)
    media = tmp_path / "clip.m4a"
    shutil.copy(clip, media)
    proc = run(media, env={"SUBTITLER_FFMPEG": str(killer)})
    assert_one_line_error(proc, 14, f"{media}: ffmpeg stopped while decoding (killed by SIGKILL)")
    assert not media.with_suffix(".srt").exists()
    # SIGTERM: ffmpeg exits 255 saying nothing at -loglevel error, or dies of it while starting.
    # (exec: ffmpeg itself gets the signal; -re: it decodes at the pace of playback, 3 s.)
    killer.write_text(f'#!/bin/sh\n(sleep 1.5; kill -TERM $$) &\nexec "{find_tools().ffmpeg}" -re "$@"\n')
    proc = run(media, env={"SUBTITLER_FFMPEG": str(killer)})
    assert_one_line_error(proc, 14, f"{media}: ffmpeg stopped while decoding (")
    # ffprobe (which runs beside ffmpeg) killed: the same.
    probe_killer = tmp_path / "ffprobe"
    probe_killer.write_text('#!/bin/sh\nkill -KILL $$\n')
    probe_killer.chmod(0o755)
    proc = run(media, env={"SUBTITLER_FFPROBE": str(probe_killer)})
    assert_one_line_error(proc, 14, f"{media}: ffprobe stopped (killed by SIGKILL)")
    proc = run(media)  # a normal run decodes it
    assert proc.returncode == 0, proc.stderr
    assert media.with_suffix(".srt").is_file()


@pytest.mark.engine
def test_media_piped_to_stdin_is_read(clip, tmp_path):
    """`cat clip.m4a | subtitler -` read the media as a list of paths (a UnicodeDecodeError)."""
    proc = run("-", "-f", "srt,json", cwd=tmp_path, stdin=clip.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "stdin.srt").is_file() and (tmp_path / "stdin.json").is_file()
    assert proc.stdout.split() == ["stdin.srt", "stdin.json"]
    assert "Dashwood" in (tmp_path / "stdin.srt").read_text()
    # Broken media on stdin: one line naming stdin, not a temporary copy.
    proc = run("-", cwd=tmp_path, stdin=b"\0\1\2 not media" * 100)
    assert_one_line_error(proc, 4, "- (stdin): not a media file")
    assert "subtitler-stdin" not in proc.stderr
    # A list of paths on stdin is still a list.
    proc = run("-", "--dry-run", "-o", tmp_path / "out", stdin=f"{clip}\n".encode())
    assert proc.returncode == 0 and proc.stdout.split("\t")[1] == str(clip), proc.stderr


@pytest.mark.engine
def test_video_piped_to_stdin_can_be_muxed(short_clip, tmp_path):
    """The copy of stdin keeps its container's extension: --mux writes stdin.subtitled.mp4."""
    from subtitler.media import probe

    proc = run("-", "--mux", "-f", "srt", cwd=tmp_path, stdin=short_clip.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert probe(tmp_path / "stdin.subtitled.mp4").subtitles == ["mov_text"]


@pytest.mark.engine
def test_a_nul_separated_list(clip, tmp_path):
    """`find -print0 | subtitler --from-list - -0`: names with newlines and spaces, taken as they are."""
    names = ["new\nline.m4a", " spaced .m4a"]
    for name in names:
        shutil.copy(clip, tmp_path / name)
    listing = b"".join(os.fsencode(tmp_path / name) + b"\0" for name in names)
    proc = run("--from-list", "-", "-0", "-f", "srt", stdin=listing)
    assert proc.returncode == 0, proc.stderr
    for name in names:
        assert (tmp_path / name).with_suffix(".srt").is_file(), name
    listing_file = tmp_path / "list"
    listing_file.write_bytes(listing)
    proc = run("--from-list", listing_file, "--null", "--dry-run")
    assert proc.stdout.count("up-to-date\t") == 2 and str(tmp_path / names[0]) in proc.stdout, proc.stderr


@pytest.mark.engine
def test_symlink_loops_in_a_folder(clip, tmp_path):
    """A loop raised RuntimeError from Path.resolve; the other files must still be subtitled."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(clip, folder / "good.m4a")
    (folder / "loop").symlink_to(".")  # ln -s . loop
    (folder / "b").symlink_to("a")  # ln -s a b; ln -s b a
    (folder / "a").symlink_to("b")
    (folder / "y.mp4").symlink_to("x.mp4")  # a loop that looks like media
    (folder / "x.mp4").symlink_to("y.mp4")
    proc = run(folder, "-f", "srt")
    assert proc.returncode == 1, proc.stderr  # the loops failed, the good file is done
    assert (folder / "good.srt").is_file()
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 2 and all("a symlink to nothing, or a loop" in e for e in errors), proc.stderr
    assert {e.split("error: ")[1].split(":")[0] for e in errors} == {f"{folder}/x.mp4", f"{folder}/y.mp4"}


@pytest.mark.engine
def test_names_that_are_not_utf8(clip, tmp_path):
    """os.fsdecode's surrogates crashed ffmpeg-python, the manifest, the report and the messages."""
    good = tmp_path / os.fsdecode(b"caf\xe9.m4a")  # Latin-1, as an old archive has it
    shutil.copy(clip, good)
    bad = tmp_path / os.fsdecode(b"junk\xff.mp4")
    bad.write_text("not a video\n")
    proc = run(tmp_path, "-f", "srt,json", "--progress", "--report", tmp_path / "report.json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert good.with_suffix(".srt").is_file() and "Dashwood" in good.with_suffix(".srt").read_text()
    assert os.fsencode(good.with_suffix(".srt")) in os.fsencode(proc.stdout)
    assert f"{tmp_path}/junk\\udcff.mp4: not a media file" in proc.stderr  # named, escaped
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    assert {i["input"] for i in report["inputs"]} == {str(good), str(bad)}
    # Named directly, again: up to date (the manifest kept the name), and the failure remembered.
    proc = run(good, "-f", "srt,json")
    assert proc.returncode == 0 and "up to date" in proc.stderr, proc.stderr
    assert_one_line_error(run(bad), 4, "junk\\udcff.mp4: not a media file")


def test_an_unwritable_state_folder(clip, tmp_path, engine):  # noqa: F811
    """Tiyaro's job memory (SUBTITLER_STATE_DIR) and the transcript cache in a folder that cannot
    be made: the job went through, then saving its state raised NotADirectoryError (a traceback)."""
    from .fake_tiyaro import FakeTiyaro

    blocker = tmp_path / "a file"
    blocker.write_text("")
    with FakeTiyaro(result=engine.tiyaro, key="sk-test") as fake:
        env = {"TIYARO_API_KEY": "sk-test", "TIYARO_BASE_URL": fake.base_url, "TIYARO_POLL_INTERVAL": "0.01",
               "SUBTITLER_STATE_DIR": str(blocker / "state"),
               "SUBTITLER_TRANSCRIPTS_DIR": str(blocker / "transcripts")}
        proc = run(clip, "-b", "tiyaro", "-o", tmp_path / "out", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "subtitler: warning: cannot remember job" in proc.stderr
    assert "Dashwood" in (tmp_path / "out" / "clip.srt").read_text()
