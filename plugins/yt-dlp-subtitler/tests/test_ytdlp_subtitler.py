"""The yt-dlp post-processor, driven as users drive it: the pinned yt-dlp, run as a command
(`python -m yt_dlp --use-postprocessor Subtitler:...`), downloads real speech from a web server on
127.0.0.1 (its generic extractor takes a direct media URL, and a page of <video> tags as a
playlist) and finds the plugin by its own plugin discovery.

The plugin's src folder is put on PYTHONPATH for those commands (yt-dlp walks sys.path, as it does
for the installed plugin's .pth line); test_installed_plugin_is_discovered installs it with pip.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import venv
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jiwer
import pysubs2
import pytest

from tests.accuracy import normalize
from tests.conftest import REFERENCE, SAMPLE, ffmpeg

PLUGIN = Path(__file__).resolve().parent.parent
SRC = PLUGIN / "src"
MODEL = "tiny.en"  # faster-whisper's: the fastest engine


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web server on 127.0.0.1 with the sample, three 8-second clips of it and pages linking them."""
    www = tmp_path_factory.mktemp("www")
    shutil.copy(SAMPLE, www / "sample.mp4")
    for n in (1, 2, 3):
        ffmpeg("-ss", str(8 * (n - 1)), "-t", "8", "-i", str(SAMPLE), "-c", "copy", str(www / f"clip{n}.mp4"))
    (www / "list.html").write_text("<html><head><title>Three clips</title></head><body>"
                                   + "".join(f'<video src="clip{n}.mp4"></video>' for n in (1, 2, 3))
                                   + "</body></html>")
    # A page whose video has English subtitles of its own (the site's, a <track>).
    (www / "captioned.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nThe site's own words\n")
    (www / "captioned.html").write_text('<html><head><title>Captioned</title></head><body><video>'
                                        '<source src="clip1.mp4" type="video/mp4">'
                                        '<track kind="subtitles" srclang="en" src="captioned.vtt">'
                                        "</video></body></html>")
    (www / "broken.mp4").write_bytes(os.urandom(40_000))  # served as video/mp4; no media inside
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def ytdlp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The pinned yt-dlp as a command, with this plugin findable by its discovery."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "yt_dlp", "--no-progress", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def words(path: Path) -> str:
    return " ".join(event.plaintext.replace("\n", " ") for event in pysubs2.load(str(path)).events)


def wer(text: str) -> float:
    reference = json.loads(REFERENCE.read_text())["text"]
    return jiwer.wer(normalize(reference), normalize(text))


def subtitle_streams(video: Path) -> list[dict]:
    from subtitler.media import find_tools

    out = subprocess.run([find_tools().ffprobe, "-v", "error", "-select_streams", "s", "-show_streams",
                          "-of", "json", str(video)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def loads(proc: subprocess.CompletedProcess) -> int:
    """How many times subtitler loaded a model: its `loading model` stage, told by the plugin."""
    return proc.stdout.count("[Subtitler] Loading model ")


# -- one video, as the command ------------------------------------------------------------

@pytest.fixture(scope="module")
def single(site: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """The issue's command on the sample, in a folder whose subtitler.toml sets a layout value."""
    folder = tmp_path_factory.mktemp("single")
    (folder / "subtitler.toml").write_text("max-line-chars = 30\n")
    proc = ytdlp("--use-postprocessor", f"Subtitler:when=after_move;model={MODEL};format=srt,vtt;mux=true",
                 f"{site}/sample.mp4", cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, folder


@pytest.mark.engine
def test_subtitles_are_where_ytdlp_puts_the_video_named_as_its_own(single):
    proc, folder = single
    video = folder / "sample [sample].mp4"  # yt-dlp's default template: %(title)s [%(id)s].%(ext)s
    srt, vtt = folder / "sample [sample].en.srt", folder / "sample [sample].en.vtt"
    assert video.is_file() and srt.is_file() and vtt.is_file()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["subtitler.toml", video.name, srt.name, vtt.name])  # nothing else: no temporary files
    assert wer(words(srt)) <= 0.10
    assert wer(words(vtt)) <= 0.10
    # The config file's layout was used: lines of at most 30 characters, and `subtitler check` agrees.
    assert max(len(line) for line in srt.read_text().splitlines()) <= 30
    check = subprocess.run([sys.executable, "-m", "subtitler", "check", str(srt), str(vtt), "--video",
                            str(video)], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert loads(proc) == 1
    assert f"[Subtitler] Writing video subtitles to: {srt.name}" in proc.stdout


@pytest.mark.engine
def test_mux_true_puts_the_track_into_the_final_video(single, tmp_path):
    _, folder = single
    video = folder / "sample [sample].mp4"
    [track] = subtitle_streams(video)
    assert track["codec_name"] == "mov_text" and track["tags"]["language"] == "eng"
    ffmpeg("-i", str(video), "-map", "0:s:0", str(tmp_path / "track.srt"))
    assert wer(words(tmp_path / "track.srt")) <= 0.10


# -- a playlist, through yt-dlp's own --paths, --embed-subs and --exec ------------------------------

@pytest.mark.engine
def test_playlist_loads_the_model_once_and_ytdlp_embeds_moves_and_execs_our_subtitles(site, tmp_path):
    proc = ytdlp("-P", "home:final", "-P", "temp:tmp", "--embed-subs", "--write-subs",
                 "--exec", "echo EXEC %(requested_subtitles.en.filepath)q",
                 "--use-postprocessor", f"Subtitler:model={MODEL}", f"{site}/list.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert loads(proc) == 1, proc.stdout
    assert proc.stdout.count("[Subtitler] Model loaded in ") == 1
    final = tmp_path / "final"
    subtitles = [final / f"Three clips ({n}) [list-{n}].en.srt" for n in (1, 2, 3)]
    for n, srt in enumerate(subtitles, 1):
        assert srt.is_file(), proc.stdout  # moved out of the temporary folder with the video
        assert words(srt), srt
        # --embed-subs embedded ours (yt-dlp names the track after requested_subtitles' "name").
        [track] = subtitle_streams(final / f"Three clips ({n}) [list-{n}].mp4")
        assert track["tags"]["language"] == "eng" and track["tags"].get("handler_name") == "subtitler"
    assert not list((final / "tmp").glob("*.srt"))
    # --exec, after the move, sees where the files are now.
    execs = [line.removeprefix("EXEC ") for line in proc.stdout.splitlines() if line.startswith("EXEC ")]
    assert [tmp_path / e for e in execs] == subtitles
    assert "Dashwood" in words(subtitles[0])
    check = subprocess.run([sys.executable, "-m", "subtitler", "check", *map(str, subtitles)],
                           cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# -- subtitles there already -------------------------------------------------------------------------

@pytest.mark.engine
def test_existing_subtitles_are_kept_unless_force(site, tmp_path):
    theirs = tmp_path / "clip1 [clip1].en.srt"
    theirs.write_text("1\n00:00:00,000 --> 00:00:01,000\nSomeone else's words\n")
    # Through a temporary folder: the file in the way is where ours would be moved, not written.
    kept = ytdlp("-P", "temp:tmp", "--use-postprocessor", f"Subtitler:model={MODEL}", f"{site}/clip1.mp4",
                 cwd=tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Someone else's words" in theirs.read_text()
    assert "[Subtitler]" in kept.stdout and "skipping (force=true subtitles it anyway)" in kept.stdout
    assert loads(kept) == 0  # skipped before any model loads
    forced = ytdlp("--quiet", "-P", "temp:tmp", "--use-postprocessor", f"Subtitler:model={MODEL};force=true",
                   f"{site}/clip1.mp4", cwd=tmp_path)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "Dashwood" in words(theirs)
    assert not list((tmp_path / "tmp").glob("*.srt"))
    assert "[Subtitler]" not in forced.stdout + forced.stderr  # --quiet silences it


def test_a_video_the_site_subtitles_in_that_language_is_skipped(site, tmp_path):
    proc = ytdlp("--use-postprocessor", f"Subtitler:model={MODEL}", f"{site}/captioned.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[Subtitler]" in proc.stdout and "the site has en subtitles for it" in proc.stdout
    assert loads(proc) == 0
    assert not list(tmp_path.glob("*.srt"))


# -- errors: one line, yt-dlp's, with subtitler's message --------------------------------------------

def test_a_bad_setting_stops_ytdlp_before_it_downloads(site, tmp_path):
    proc = ytdlp("--use-postprocessor", "Subtitler:beam-size=0", f"{site}/clip1.mp4", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["ERROR: [Subtitler] beam_size must be at least 1"], proc.stderr
    assert not list(tmp_path.iterdir())  # nothing downloaded


@pytest.mark.parametrize("arguments, message", [
    ({"modle": "base"}, "modle: no such setting"),
    ({"mux": "maybe"}, "mux=maybe: expected true or false"),
    ({"output-dir": "subs"}, "output-dir: not a setting here (files go where yt-dlp's output template"),
    ({"mux": "true", "burn": "true"}, "mux and burn cannot be used together"),
    ({"backend": "nope"}, "unknown backend 'nope' (installed: "),
])
def test_bad_settings_are_one_line_errors(arguments, message, monkeypatch):
    """The same refusals, in this process (yt-dlp's Python API, without a downloader to report to)."""
    monkeypatch.syspath_prepend(str(SRC))
    from yt_dlp.utils import PostProcessingError
    from yt_dlp_plugins.postprocessor.subtitler import SubtitlerPP

    with pytest.raises(PostProcessingError) as error:
        SubtitlerPP(None, **arguments)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_settings_come_from_the_config_file_under_the_arguments(site, tmp_path):
    (tmp_path / "subtitler.toml").write_text('profile = "nope"\n')
    bad = ytdlp("--simulate", "--use-postprocessor", "Subtitler", f"{site}/clip1.mp4", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("ERROR: [Subtitler] subtitler.toml: profile: 'nope' is not one of")
    good = ytdlp("--simulate", "--use-postprocessor", "Subtitler:profile=bbc", f"{site}/clip1.mp4",
                 cwd=tmp_path)
    assert good.returncode == 0, good.stderr


def test_a_download_that_is_not_media_is_a_postprocessing_error(site, tmp_path):
    proc = ytdlp("--use-postprocessor", f"Subtitler:model={MODEL}", f"{site}/broken.mp4", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "ERROR: Postprocessing: broken [broken].mp4: not a media file ffmpeg can read "
        "(Invalid data found when processing input)"], proc.stderr
    assert loads(proc) == 0 and not list(tmp_path.glob("*.srt"))


# -- installed with pip, found by yt-dlp ------------------------------------------------------------

@pytest.mark.slow
def test_installed_plugin_is_discovered(tmp_path):
    """`pip install -e` (make install's way) of a copy of the plugin into a fresh environment on top
    of this one: yt-dlp's discovery finds the copy's plugin folder, and SubtitlerPP in it."""
    copy = tmp_path / "yt-dlp-subtitler"
    shutil.copytree(PLUGIN, copy,
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site_packages = next((env_dir / "lib").glob("python*/site-packages"))
    # This environment's packages (yt-dlp, subtitler, pip...) seen from the new one.
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "yt_dlp").is_dir())
    (site_packages / "here.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
                    str(copy)], check=True, capture_output=True, env=env)
    found = subprocess.run([python, "-c", "from yt_dlp.plugins import load_all_plugins, directories\n"
                            "from yt_dlp.globals import plugin_pps\n"
                            "load_all_plugins()\n"
                            "print(directories()); print(plugin_pps.value['SubtitlerPP'].__module__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert str(copy / "src" / "yt_dlp_plugins") in found
    assert "yt_dlp_plugins.postprocessor.subtitler" in found
