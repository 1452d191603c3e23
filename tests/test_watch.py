"""`subtitler watch` (issue 15, point 3): a folder tree kept subtitled by a real `subtitler watch` process
(faster-whisper, tiny.en) on 4 s clips of the real-speech sample.

One watch process serves the module's first tests, in order (they share its state): what was there
at start is caught up; files copied in while it runs, one of them written slowly in pieces, are
subtitled once each, after they are complete; a changed file is subtitled again, a rename is
rendered from the cache and a deletion changes nothing; the engine loaded once. Then it is
stopped with SIGTERM, a file arrives while it is stopped, and a second start (polling) catches
up, sees a new file, and is stopped with Ctrl-C in the middle of work: exit 130, nothing
half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from .conftest import SAMPLE, assert_one_line_error, ffmpeg

SETTLE = 1.0


def cut(start: float, out: Path, seconds: float = 4) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    codec = ["-vn", "-ar", "16000", "-ac", "1"] if out.suffix == ".wav" else \
        ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
    ffmpeg("-ss", str(start), "-i", str(SAMPLE), "-t", str(seconds), *codec, str(out))
    return out


class Watch:
    """A `subtitler watch` subprocess, its stderr (a file) read as it grows."""

    def __init__(self, root: Path, env: dict[str, str], *args: str, prefix: Sequence[str] = ()) -> None:
        self.root, self.log = root, root / f"watch-{time.monotonic_ns()}.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "subtitler", "watch", "in", "-o", "out", "--settle",
                 str(SETTLE), "--report", "report.json", "--no-progress", *args],
                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def lines(self, text: str) -> list[str]:
        return [line for line in self.stderr.splitlines() if text in line]

    def wait_for(self, ready: Callable[[], object], timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"watch exited {self.proc.returncode}:\n{self.stderr}"
            assert time.monotonic() < end, f"timed out; stderr:\n{self.stderr}"
            time.sleep(0.05)

    def wait_idle(self) -> None:
        """Until the batch that wrote the newest output is over (its outputs appear before it ends):
        the report, rewritten after each batch, is newer than every output."""
        def idle() -> bool:
            outputs = [p.stat().st_mtime_ns for p in (self.root / "out").rglob("*") if p.is_file()]
            written = self.root / "report.json"
            return bool(outputs) and written.is_file() and written.stat().st_mtime_ns >= max(outputs)
        self.wait_for(idle)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def report(root: Path) -> dict:
    return json.loads((root / "report.json").read_text())


def no_partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**os.environ, "SUBTITLER_TRANSCRIPTS_DIR": str(tmp_path_factory.mktemp("transcripts"))}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Distinct 4 s clips of the sample (each has to be transcribed), made outside the watched tree."""
    folder = tmp_path_factory.mktemp("clips")
    return {"old": cut(0, folder / "old.mp4"), "new": cut(4, folder / "new.mp4"),
            "slow": cut(8, folder / "slow.wav"), "late": cut(12, folder / "late.mp4"),
            "polled": cut(16, folder / "polled.mp4"), "changed": cut(20, folder / "changed.wav"),
            "long": six_times(SAMPLE, folder / "long.mp4")}


def six_times(media: Path, out: Path) -> Path:
    """`media` six times over (the sample: 2 min 57 s, several of Whisper's windows: a stop lands
    mid-file; twice over, batched decoding sometimes finished it before the Ctrl-C arrived)."""
    ffmpeg("-stream_loop", "5", "-i", str(media), "-c", "copy", str(out))
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("library")
    (root / "in" / "shows").mkdir(parents=True)
    shutil.copy(clips["old"], root / "in" / "old.mp4")  # there before the watch starts
    return root


@pytest.fixture(scope="module")
def watching(root: Path, env: dict[str, str]) -> Iterator[Watch]:
    watch = Watch(root, env)
    yield watch
    if watch.proc.poll() is None:
        watch.proc.kill()


@pytest.mark.engine
def test_catches_up_on_what_is_there_at_start(watching, root):
    watching.wait_for(lambda: (root / "out" / "old.srt").is_file())
    assert "Dashwood" in (root / "out" / "old.srt").read_text()
    assert len(watching.lines("watch: watching in")) == 1


@pytest.mark.engine
def test_files_copied_in_are_subtitled_once_each_when_complete(watching, root, clips):
    shutil.copy(clips["new"], root / "in" / "shows" / "new.mp4")
    # Written slowly: pieces 0.3 s apart, never still for --settle (1 s) before the end.
    data = clips["slow"].read_bytes()
    with open(root / "in" / "slow.wav", "wb") as f:
        for n in range(6):
            f.write(data[n * len(data) // 6:(n + 1) * len(data) // 6])
            f.flush()
            time.sleep(0.3)
    watching.wait_for(lambda: (root / "out" / "shows" / "new.srt").is_file()
                      and (root / "out" / "slow.srt").is_file())
    time.sleep(SETTLE + 0.5)  # anything else it would do, it has started by now
    for name in ("in/shows/new.mp4", "in/slow.wav"):
        assert len(watching.lines(f"{name}: started")) == 1, watching.stderr
    inputs = {i["input"]: i for i in report(root)["inputs"]}
    assert inputs["in/slow.wav"]["status"] == "done"
    assert inputs["in/slow.wav"]["duration"] == pytest.approx(4.0, abs=0.1)  # all of it, not a piece
    assert inputs["in/shows/new.mp4"]["outputs"] == ["out/shows/new.srt"]  # mirrored under -o


@pytest.mark.engine
def test_changed_file_again_rename_from_the_cache_deletion_nothing(watching, root, clips):
    before = (root / "out" / "slow.srt").read_text()
    shutil.copy(clips["changed"], root / "in" / "slow.wav")  # other speech under the same name
    (root / "in" / "shows" / "new.mp4").rename(root / "in" / "shows" / "renamed.mp4")
    (root / "in" / "old.mp4").unlink()
    watching.wait_for(lambda: (root / "out" / "shows" / "renamed.srt").is_file()
                      and len(watching.lines("in/slow.wav: done")) == 2)
    assert (root / "out" / "slow.srt").read_text() != before
    assert watching.lines("renamed.mp4: rendered from the cached transcript")
    assert not watching.lines("renamed.mp4: started")  # not heard again
    assert not watching.lines("error")
    assert (root / "out" / "old.srt").is_file()  # its outputs are kept


@pytest.mark.engine
def test_engine_loads_once_and_sigterm_stops_cleanly(watching, root):
    assert len(watching.lines(": started")) == 4  # old, new, slow and slow changed: four transcriptions...
    assert len(watching.lines("watch: engine loaded")) == 1  # ...one engine
    watching.wait_idle()
    assert watching.stop(signal.SIGTERM) == 0
    assert watching.stderr.splitlines()[-1] == "subtitler: watch: stopped"
    assert "Traceback" not in watching.stderr
    assert not no_partial_files(root) and report(root)["interrupted"] is False


@pytest.mark.engine
def test_next_start_catches_up_polls_and_ctrl_c_during_work_leaves_nothing_half_written(root, env, clips):
    shutil.copy(clips["late"], root / "in" / "late.mp4")  # arrives while no watch runs
    watch = Watch(root, env, "--poll")
    try:
        watch.wait_for(lambda: (root / "out" / "late.srt").is_file())
        assert watch.lines("watch: polling in")
        assert watch.lines("in/slow.wav: up to date")  # caught up: the rest was done already
        shutil.copy(clips["polled"], root / "in" / "polled.mp4")
        watch.wait_for(lambda: (root / "out" / "polled.srt").is_file())
        shutil.copy(clips["long"], root / "in" / "long.mp4")  # 177 s: stopped while it is heard
        watch.wait_for(lambda: watch.lines("in/long.mp4: started"))
        assert watch.stop(signal.SIGINT) == 130
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    assert "Traceback" not in watch.stderr
    assert watch.lines("subtitler: interrupted (finished files are kept; the next start does the rest)")
    assert not (root / "out" / "long.srt").exists() and not no_partial_files(root)
    assert report(root)["interrupted"] is True
    assert len(watch.lines("watch: engine loaded")) == 1


@pytest.mark.engine
def test_a_later_start_finishes_the_file_the_interrupt_cut_off(root, env):
    """After the Ctrl-C above, long.mp4 has no output and is in no manifest: the next start hears it
    again, all of it, and leaves what was done alone."""
    watch = Watch(root, env)
    try:
        watch.wait_for(lambda: (root / "out" / "long.srt").is_file(), timeout=120)
        watch.wait_idle()
        assert watch.stop(signal.SIGTERM) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    assert len(watch.lines("in/long.mp4: started")) == 1 and len(watch.lines(": started")) == 1
    assert watch.lines("in/polled.mp4: up to date") and watch.lines("in/slow.wav: up to date")
    long = next(i for i in report(root)["inputs"] if i["input"] == "in/long.mp4")
    assert long["status"] == "done" and long["duration"] > 175
    last = (root / "out" / "long.srt").read_text().strip().split("\n\n")[-1]
    assert last.splitlines()[1].split(" --> ")[1] > "00:02:52"  # to the end, not only what was heard before


def limited(limit: str, value: int = 0) -> list[str]:
    """A command prefix: the command runs in a user namespace of its own whose inotify `limit` is
    `value`, so inotify fails for it alone, as for a user past the system's fs.inotify.max_user_*."""
    return ["unshare", "--user", "--map-root-user", "sh", "-c",
            f'echo {value} > /proc/sys/user/{limit} && exec "$@"', "sh"]


@pytest.fixture(scope="module")
def namespaces() -> None:
    try:
        probe = subprocess.run([*limited("max_inotify_instances"), sys.executable, "-c",
                                "from watchdog.observers import Observer; Observer()"],
                               capture_output=True, text=True, timeout=60)
    except OSError as e:
        pytest.skip(f"no unshare here: {e}")
    if "inotify instance limit reached" not in probe.stderr:
        pytest.skip(f"no user namespace with inotify limits of its own here: {probe.stderr.strip()[-300:]}")


@pytest.mark.engine
@pytest.mark.parametrize("limit, error", [("max_inotify_instances", "inotify instance limit reached"),
                                          ("max_inotify_watches", "inotify watch limit reached")])
def test_polls_when_inotify_cannot_start(tmp_path, env, clips, namespaces, limit, error):
    """inotify really failing (watchdog's own error): the instance limit fails making the observer, the
    watch limit starting it. Either way a warning, then polling that sees a file copied in."""
    (tmp_path / "in").mkdir()
    watch = Watch(tmp_path, env, prefix=limited(limit))
    try:
        watch.wait_for(lambda: watch.lines("watch: polling in"))
        assert watch.lines(f"subtitler: warning: cannot watch for changes ({error}); polling every 0.5 s "
                           f"instead")
        shutil.copy(clips["old"], tmp_path / "in" / "film.mp4")  # rendered from the cache, unless run alone
        watch.wait_for(lambda: (tmp_path / "out" / "film.srt").is_file())
        watch.wait_idle()
        assert watch.stop(signal.SIGTERM) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    assert "Traceback" not in watch.stderr


@pytest.mark.engine
@pytest.mark.parametrize("when", ["at start", "later"])
def test_polls_when_a_subfolder_cannot_be_watched(tmp_path, env, clips, namespaces, when):
    """Room for one inotify watch: the root's. watchdog skips the subfolder it cannot watch without a
    word, there at start or created later; a file copied into it is subtitled all the same."""
    (tmp_path / "in" / "shows").mkdir(parents=True)
    if when == "later":
        (tmp_path / "in" / "shows").rmdir()
    watch = Watch(tmp_path, env, prefix=limited("max_inotify_watches", 1))
    try:
        if when == "at start":
            watch.wait_for(lambda: watch.lines("watch: polling in"))
        else:
            watch.wait_for(lambda: watch.lines("watch: watching in"))
            (tmp_path / "in" / "shows").mkdir()
            time.sleep(SETTLE)
        shutil.copy(clips["old"], tmp_path / "in" / "shows" / "film.mp4")
        watch.wait_for(lambda: (tmp_path / "out" / "shows" / "film.srt").is_file(), timeout=20)
        watch.wait_idle()
        assert watch.stop(signal.SIGTERM) == 0
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    assert watch.lines("subtitler: warning: cannot watch for changes (no inotify watch for in/shows: its "
                       "watch limit reached); polling every 0.5 s instead")
    assert "Traceback" not in watch.stderr


def test_settings_no_engine_can_honour_fail_at_start(tmp_path):
    """Not when the first file arrives, hours later: at once, one line, no model loaded, nothing watched."""
    (tmp_path / "in").mkdir()
    for args, code, error in [(["--backend", "nope"], 8, "unknown backend 'nope'"),
                              (["--backend", "tiyaro", "--batch-size", "2"], 9, "does not support option(s): "
                                                                               "batch_size")]:
        proc = subprocess.run([sys.executable, "-m", "subtitler", "watch", "in", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "TIYARO_API_KEY": "k", "OPENAI_API_KEY": "k"})
        assert_one_line_error(proc, code, error)
