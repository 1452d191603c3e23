"""Media-library naming (issue 15, point 2): --name-template, --lang-code and the --for presets name
every output, and what names outputs follows: the manifest, `check --require-subs`, mux track titles.

The presets' names are the ones Jellyfin, Plex and Kodi document for external subtitles (see
subtitler/naming.py for the pages): the video's name, a dot, the language code, the extension:
`Film (2019).en.srt`; a translation is `.en.srt` beside the original language's `.fr.srt`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from subtitler.inputs import Input
from subtitler.job import Job
from subtitler.options import DecodeOptions
from subtitler.specs import JobSpec, OutputSpec, RenderSpec, TranscriptionSpec

from .conftest import SAMPLE, assert_one_line_error, ffmpeg


def subtitler(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def cut(start: float, out: Path, seconds: float = 4) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-ss", str(start), "-i", str(SAMPLE), "-t", str(seconds), "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", str(out))
    return out


def names(template: str, language: str | None, *, task: str = "transcribe", lang_code: str = "iso639-1",
          formats: tuple[str, ...] = ("srt",), given: str | None = None) -> list[str]:
    """The subtitle files a run names for `Film (2019).mkv` when it hears `language`."""
    job = Job(JobSpec(TranscriptionSpec(options=DecodeOptions(language=given, task=task)),
                      RenderSpec(formats), OutputSpec(name_template=template, lang_code=lang_code)))
    item = Input(Path("/media/Film (2019)/Film (2019).mkv"), PurePosixPath("Film (2019).mkv"))
    return [path.name for _, path in job.subtitle_targets(item, language)]


PLEX = JELLYFIN = KODI = "{stem}.{lang}"  # what --for plex, jellyfin and kodi stand for (naming.PRESETS)


@pytest.mark.parametrize("server", ["jellyfin", "plex", "kodi"])
def test_presets_name_tracks_as_media_servers_document(server):
    from subtitler.naming import preset

    template = preset(server)
    assert template == {"jellyfin": JELLYFIN, "plex": PLEX, "kodi": KODI}[server]
    # Jellyfin's `Film.de.srt`, Plex's `Avatar (2009).en.srt`, Kodi's `Movie Name (2006).<language>.srt`.
    assert names(template, "en") == ["Film (2019).en.srt"]
    assert names(template, "de") == ["Film (2019).de.srt"]
    # A translation: the original language's track, and English beside it; one track for English speech.
    assert names(template, "fr", task="translate") == ["Film (2019).fr.srt", "Film (2019).en.srt"]
    assert names(template, "en", task="translate") == ["Film (2019).en.srt"]
    # Plex's ISO 639-2/B alternative (`.eng.srt`, `.fre.srt`, `.ger.srt`).
    assert names(template, "fr", task="translate", lang_code="iso639-2") == [
        "Film (2019).fre.srt", "Film (2019).eng.srt"]
    assert names(template, "de", lang_code="iso639-2") == ["Film (2019).ger.srt"]
    # No speech, no language: ISO 639-2's "undetermined".
    assert names(template, None) == ["Film (2019).und.srt"]


def test_template_fields_and_the_default():
    assert names("{stem}", "fr", formats=("srt", "vtt")) == ["Film (2019).srt", "Film (2019).vtt"]
    # Without {lang} or {task} a translation is one track, as before (the English).
    assert names("{stem}", "fr", task="translate") == ["Film (2019).srt"]
    assert names("{stem}.{task}", "fr", task="translate") == ["Film (2019).transcribe.srt",
                                                              "Film (2019).translate.srt"]
    assert names("{stem}.{task}", "en", task="translate") == ["Film (2019).transcribe.srt"]  # English speech
    assert names("{stem}-{model}", "en", given=None) == ["Film (2019)-tiny.en.srt"]  # the default model
    # Before the language is heard (a first run, no --language), a name with {lang} shows it so...
    assert names("{stem}.{lang}", "{lang}") == ["Film (2019).{lang}.srt"]
    # ...unless --language tells it.
    assert names("{stem}.{lang}", "{lang}", given="German") == ["Film (2019).de.srt"]


def test_bad_template_or_two_namings_are_usage_errors(tmp_path, short_clip):
    proc = subtitler(tmp_path, str(short_clip), "--name-template", "{stem}.{language}")
    assert_one_line_error(proc, 2, "--name-template '{stem}.{language}': unknown field {language}")
    proc = subtitler(tmp_path, str(short_clip), "--name-template", "subs/{stem}")
    assert_one_line_error(proc, 2, "a file name, not a path")
    proc = subtitler(tmp_path, str(short_clip), "--name-template", "{stem}.{lang}", "--for", "plex")
    assert proc.returncode == 2 and "--name-template and --for both name the outputs" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_two_inputs_one_name_is_an_error_before_any_work(tmp_path, short_clip):
    """Film (2019).mp4 and Film (2019).mkv would both be Film (2019).<lang>.srt, whatever the language:
    the second is refused before anything is decoded (a dry run shows the plan; nothing loads)."""
    folder = tmp_path / "films"
    folder.mkdir()
    shutil.copy(short_clip, folder / "Film (2019).mkv")
    shutil.copy(short_clip, folder / "Film (2019).mp4")
    proc = subtitler(tmp_path, "films", "--for", "plex", "--dry-run")
    assert proc.returncode == 1, proc.stderr
    lines = dict(line.split("\t")[1:] for line in proc.stdout.splitlines())
    assert lines["films/Film (2019).mkv"] == "films/Film (2019).{lang}.srt"
    assert lines["films/Film (2019).mp4"] == (
        "films/Film (2019).mp4: films/Film (2019).{lang}.srt is already the output of films/Film (2019).mkv "
        "(rename one, or use -o)")
    # A template without the stem names every input of a folder alike.
    proc = subtitler(tmp_path, "films", "--name-template", "{lang}", "--dry-run")
    assert proc.returncode == 1 and "is already the output of" in proc.stdout


# -- real runs (faster-whisper tiny.en; base for a translation) ------------------------------------


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This module's runs share a transcript cache: after the first, runs only render."""
    return {**os.environ, "SUBTITLER_TRANSCRIPTS_DIR": str(tmp_path_factory.mktemp("transcripts"))}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, transcripts: dict[str, str]) -> Path:
    """A media library after `subtitler videos --for plex -f srt,vtt`: two films, each in its folder."""
    root = tmp_path_factory.mktemp("library")
    cut(0, root / "videos" / "Film (2019)" / "Film (2019).mp4")
    cut(4, root / "videos" / "Talk (2021)" / "Talk (2021).mp4")
    proc = subtitler(root, "videos", "--for", "plex", "-f", "srt,vtt", "--no-progress", env=transcripts)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def project(library: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(library, tmp_path / "project"))


@pytest.mark.engine
def test_run_names_files_by_the_preset_and_records_them(library):
    film = library / "videos" / "Film (2019)"
    assert sorted(p.name for p in film.iterdir() if not p.name.startswith(".")) == [
        "Film (2019).en.srt", "Film (2019).en.vtt", "Film (2019).mp4"]
    outputs = json.loads((film / ".subtitler.json").read_text())["outputs"]
    assert set(outputs) == {"Film (2019).en.srt", "Film (2019).en.vtt"}
    assert all(e["source"] == "Film (2019).mp4" and e["language"] == "en" for e in outputs.values())
    assert (library / "videos" / "Talk (2021)" / "Talk (2021).en.srt").is_file()


@pytest.mark.engine
def test_names_are_known_again_without_hearing_or_cache(project):
    """A re-run knows the names from the manifest (the language recorded), even without the cache."""
    proc = subtitler(project, "videos", "--for", "plex", "-f", "srt,vtt", "--no-cache", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == ["up-to-date", "up-to-date"]
    assert "videos/Film (2019)/Film (2019).en.srt" in proc.stdout


@pytest.mark.engine
def test_check_require_subs_follows_the_names(project, transcripts):
    (project / "subtitler.toml").write_text('format = ["srt", "vtt"]\nfor = "plex"\n')
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        f"videos/{film}/{film}.en.{ext}: ok (1 cues)" for film in ("Film (2019)", "Talk (2021)")
        for ext in ("srt", "vtt")]
    (project / "videos" / "Talk (2021)" / "Talk (2021).en.vtt").unlink()
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 1
    assert ("videos/Talk (2021)/Talk (2021).en.vtt: no such file, expected for "
            "videos/Talk (2021)/Talk (2021).mp4 [missing]") in proc.stdout
    # The default names are not these: typed on check's command line, --name-template wins over the file.
    proc = subtitler(project, "check", "--require-subs", "videos", "--name-template", "{stem}")
    assert "videos/Film (2019)/Film (2019).srt: no such file" in proc.stdout
    # A new film nobody ran yet: its language is not known, nor its names but for it.
    cut(8, project / "videos" / "New (2024)" / "New (2024).mp4")
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert "videos/New (2024)/New (2024).{lang}.srt: no such file" in proc.stdout


@pytest.mark.engine
def test_lang_code_iso639_2(project, transcripts):
    proc = subtitler(project, "videos", "--for", "plex", "--lang-code", "iso639-2", "--no-progress",
                     env=transcripts)
    assert proc.returncode == 0, proc.stderr
    assert "rendered from the cached transcript" in proc.stderr and "started" not in proc.stderr
    assert (project / "videos" / "Film (2019)" / "Film (2019).eng.srt").is_file()
    (project / "subtitler.toml").write_text('for = "plex"\nlang-code = "iso639-2"\n')
    proc = subtitler(project, "check", "--require-subs", "videos")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "videos/Film (2019)/Film (2019).eng.srt: ok (1 cues)" in proc.stdout


@pytest.mark.engine
def test_mux_track_titles_follow_the_template(project, transcripts):
    proc = subtitler(project, "videos/Film (2019)/Film (2019).mp4", "--name-template",
                     "{stem}.{lang}.{model}", "--mux", "--video-format", "mkv", "--no-progress",
                     env=transcripts)
    assert proc.returncode == 0, proc.stderr
    film = project / "videos" / "Film (2019)"
    assert (film / "Film (2019).en.tiny.en.srt").is_file()
    streams = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(film / "Film (2019).subtitled.mkv")],
        capture_output=True, text=True, check=True).stdout)["streams"]
    tags = [s["tags"] for s in streams if s["codec_type"] == "subtitle"]
    assert [(t["language"], t["title"]) for t in tags] == [("eng", "English (tiny.en)")]


@pytest.mark.engine
def test_translation_gets_its_own_file_beside_the_original(tmp_path):
    """`--for plex --task translate`: the spoken language's track and the English one, each a file
    (base; the French is forced with --language: the test speech is English)."""
    film = cut(0, tmp_path / "Film (2019).mp4", seconds=3)
    proc = subtitler(tmp_path, str(film), "--for", "plex", "--model", "base", "--language", "fr",
                     "--task", "translate", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(tmp_path / f"Film (2019).{code}.srt") for code in ("fr", "en")]
    french, english = ((tmp_path / f"Film (2019).{c}.srt").read_text() for c in ("fr", "en"))
    assert "Dashwood" in english and french != english
    outputs = json.loads((tmp_path / ".subtitler.json").read_text())["outputs"]
    assert set(outputs) == {"Film (2019).fr.srt", "Film (2019).en.srt"}


@pytest.mark.engine
def test_a_name_another_input_has_is_never_replaced(project, transcripts):
    """A later run on another file with the same stem: refused before any work, the earlier
    subtitles kept (they are Film (2019).mp4's)."""
    film = project / "videos" / "Film (2019)"
    before = (film / "Film (2019).en.srt").read_bytes()
    shutil.copy(film / "Film (2019).mp4", film / "Film (2019).mkv")
    proc = subtitler(project, "videos/Film (2019)/Film (2019).mkv", "--for", "plex", "--no-progress",
                     env=transcripts)
    assert_one_line_error(proc, 12, "videos/Film (2019)/Film (2019).en.srt is already the output of "
                                    "videos/Film (2019)/Film (2019).mp4 (rename one, or use -o)")
    assert (film / "Film (2019).en.srt").read_bytes() == before


@pytest.mark.engine
def test_python_api_names_files_as_the_command_line_does(tmp_path, short_clip, fw_backend):
    """`subtitle(..., media_server="plex")`, `Subtitler(name_template=..., lang_code=...)`: --for,
    --name-template and --lang-code in Python (the session's tiny.en, no cache: heard each time)."""
    import subtitler as api
    from subtitler.naming import NamingError

    film = Path(shutil.copy(short_clip, tmp_path / "Film (2019).mp4"))
    engine = {"backend": "faster-whisper", "model": "tiny.en", "engine": fw_backend, "cache": False}
    result = api.subtitle(film, media_server="plex", formats=["srt", "vtt"], **engine)
    assert [p.name for p in result.outputs] == ["Film (2019).en.srt", "Film (2019).en.vtt"]
    assert "Dashwood" in (tmp_path / "Film (2019).en.srt").read_text()
    job = api.Subtitler(name_template="{stem}.{lang}.{task}", lang_code="iso639-2", **engine)
    assert [p.name for p in job.subtitle(film).outputs] == ["Film (2019).eng.transcribe.srt"]
    assert api.Subtitler.from_spec(job.spec, engine=fw_backend).spec == job.spec  # the naming travels
    outputs = json.loads((tmp_path / ".subtitler.json").read_text())["outputs"]
    assert set(outputs) == {"Film (2019).en.srt", "Film (2019).en.vtt", "Film (2019).eng.transcribe.srt"}
    with pytest.raises(NamingError, match="name_template and media_server both name the outputs"):
        api.Subtitler(name_template="{stem}.{lang}", media_server="plex")
    with pytest.raises(NamingError, match="media server 'emby': choose from jellyfin, plex, kodi"):
        api.Subtitler(media_server="emby")
    with pytest.raises(NamingError, match="unknown field {language}"):
        api.Subtitler(name_template="{stem}.{language}")
