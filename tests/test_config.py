"""Config files: subtitler.toml, pyproject.toml [tool.subtitler], the user config, and precedence.

Real files in a temporary working directory; the CLI runs in-process on a
saved transcript (render, or run on a .json) or on an SRT (check), so no
engine is loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from subtitler import cli_config, config
from subtitler.cli import cli
from subtitler.config import Value
from subtitler.transcript import Segment, Transcript, Word

from .conftest import assert_one_line_error

TEXT = "Elinor sat down beside her sister and they talked about the long journey home."


pytestmark = pytest.mark.usefixtures("project")  # every test in its own project (conftest)


@pytest.fixture
def clip(project: Path) -> Path:
    """A saved transcript of one sentence, 0.4 s a word."""
    words = [Word(i * 0.4, i * 0.4 + 0.3, f" {w}") for i, w in enumerate(TEXT.split())]
    path = project / "clip.json"
    Transcript("en", 6.0, [Segment(0.0, words[-1].end, "".join(w.text for w in words), words)]).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def subtitler(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def written(folder: Path) -> set[str]:
    """Subtitle files in folder (not the transcript, the config files or the manifest and its lock)."""
    return {p.name for p in folder.iterdir()
            if p.suffix not in (".json", ".toml") and p.is_file() and not p.name.startswith(".subtitler.")}


def assert_config_error(result: Result, *texts: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subtitler: error: "), result.stderr  # no traceback
    for text in texts:
        assert text in lines[0]


def test_precedence_default_user_project_command_line(project, clip):
    out = project / "out"
    assert subtitler("render", clip, "-o", out / "1").exit_code == 0
    assert written(out / "1") == {"clip.srt"}  # the default
    write(project / "home" / "config.toml", 'format = "vtt"\n')
    assert subtitler("render", clip, "-o", out / "2").exit_code == 0
    assert written(out / "2") == {"clip.vtt"}  # the user config beats the default
    write(project / "subtitler.toml", 'format = "txt"\n')
    assert subtitler("render", clip, "-o", out / "3").exit_code == 0
    assert written(out / "3") == {"clip.txt"}  # the project beats the user
    assert subtitler("render", clip, "-o", out / "4", "-f", "tsv").exit_code == 0
    assert written(out / "4") == {"clip.tsv"}  # the command line beats both


def test_pyproject_table_when_there_is_no_subtitler_toml(project, clip):
    write(project / "pyproject.toml",
          '[project]\nname = "media"\n\n[tool.subtitler]\nformat = ["vtt", "txt"]\n')
    assert subtitler("render", clip, "-o", project / "a").exit_code == 0
    assert written(project / "a") == {"clip.vtt", "clip.txt"}
    # subtitler.toml replaces pyproject.toml's table: its settings are not merged in.
    write(project / "subtitler.toml", 'overwrite = true\n')
    assert subtitler("render", clip, "-o", project / "b").exit_code == 0
    assert written(project / "b") == {"clip.srt"}


def test_command_table_beats_top_level(project, clip):
    write(project / "subtitler.toml", 'format = "txt"\n\n[run]\nformat = "vtt"\n')
    # run on a transcript re-renders it, no engine: [run] applies to run only.
    result = subtitler("run", clip, "-o", project / "run")
    assert result.exit_code == 0, result.output
    assert written(project / "run") == {"clip.vtt"}
    assert subtitler("render", clip, "-o", project / "render").exit_code == 0
    assert written(project / "render") == {"clip.txt"}


def test_config_option_and_env_replace_the_project_file(project, clip, monkeypatch):
    write(project / "subtitler.toml", 'format = "txt"\n')
    write(project / "ci" / "ci.toml", 'format = "vtt"\noutput-dir = "subs"\n')
    assert subtitler("--config", "ci/ci.toml", "render", clip).exit_code == 0
    # output-dir is relative to the file that says it, not to the working directory.
    assert written(project / "ci" / "subs") == {"clip.vtt"}
    assert written(project) == set()
    monkeypatch.setenv("SUBTITLER_CONFIG", str(project / "ci" / "ci.toml"))
    assert subtitler("render", clip, "-f", "tsv").exit_code == 0
    assert written(project / "ci" / "subs") == {"clip.vtt", "clip.tsv"}


def test_profile_in_config_reaches_check(project):
    srt = write(project / "clip.srt", "1\n00:00:01,000 --> 00:00:03,000\nA line of about thirty chars\n")
    assert subtitler("check", srt).exit_code == 0  # netflix: 42 characters a line
    write(project / "subtitler.toml", 'profile = "bbc"\nmax-line-chars = 10\n')
    result = subtitler("check", srt, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["profile"] == "bbc"
    assert [v["rule"] for v in report["files"][0]["violations"]] == ["line-length"]
    assert subtitler("check", srt, "--max-line-chars", "40").exit_code == 0  # the command line wins


@pytest.mark.parametrize("toml,texts", [
    ('profile = "nope"\n', ["subtitler.toml: profile:", "'nope' is not one of"]),
    ('[render]\nformat = "srt,xyz"\n', ["subtitler.toml [render]: format:", "choose from"]),
    ('max-line-chars = "lots"\n', ["subtitler.toml: max-line-chars:", "'lots'"]),
    ('max-line-chars = 0\n', ["subtitler.toml: max-line-chars:", "0"]),
    ('vad = "no"\n', ['subtitler.toml: vad = "no": expected true or false']),
    ('max-lines = true\n', ["subtitler.toml: max-lines = true: expected text or a number"]),
    ('model = ["base"]\n', ["subtitler.toml: model", "expected one value, not a list"]),
    ('modle = "base"\n', ["subtitler.toml: unknown key 'modle'"]),
    ('[render]\nmodel = "base"\n', ["subtitler.toml [render]: unknown key 'model'"]),
    ('[rende]\nformat = "srt"\n', ["subtitler.toml: unknown table [rende]"]),
    ('format = \n', ["subtitler.toml: not valid TOML", "line 1"]),
])
def test_bad_config_is_a_usage_error_naming_file_and_key(project, clip, toml, texts):
    write(project / "subtitler.toml", toml)
    assert_config_error(subtitler("render", clip), *texts)
    assert written(project) == set()


def test_bad_value_in_pyproject_names_its_table(project, clip):
    write(project / "pyproject.toml", '[tool.subtitler.render]\nposition = "middle"\n')
    assert_config_error(subtitler("render", clip), "pyproject.toml [tool.subtitler.render]: position:")


def test_missing_config_file(project, clip):
    assert_config_error(subtitler("--config", "nowhere.toml", "render", clip), "nowhere.toml: cannot read")


def test_backend_settings_given_beat_env_beat_config_beat_default(project, monkeypatch):
    from subtitler_openai import OpenAIBackend as openai  # noqa: N813

    from subtitler.backends import resolve_settings
    from subtitler.errors import UnsupportedOption
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_UPLOAD_LIMIT", raising=False)
    assert resolve_settings(openai)["base-url"] == "https://api.openai.com/v1"
    write(project / "subtitler.toml",
          '[backends.openai]\nbase_url = "http://host:8000/v1"\nupload-limit = 25\n')
    # Nothing is cached: the file written now is the one read; numbers come typed.
    settings = resolve_settings(openai)
    assert settings["base-url"] == "http://host:8000/v1" and settings["upload-limit"] == 25
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:9000/v1")
    assert resolve_settings(openai)["base-url"] == "http://env:9000/v1"
    # Given explicitly (a server's request, a job spec): wins over both.
    assert resolve_settings(openai, {"base-url": "http://given"})["base-url"] == "http://given"
    # A config loaded elsewhere (another project) is used instead of the working directory's.
    other = write(project / "other" / "subtitler.toml", '[backends.openai]\nupload-limit = 7\n')
    assert resolve_settings(openai, config=config.load(cwd=other.parent))["upload-limit"] == 7
    with pytest.raises(UnsupportedOption,
                       match=r"OPENAI_UPLOAD_LIMIT \(or upload-limit in \[backends.openai\]\) must be"):
        resolve_settings(openai, {"upload-limit": "lots"})
    with pytest.raises(UnsupportedOption, match="has no setting 'colour'"):
        resolve_settings(openai, {"colour": "red"})


def test_backend_values_follow_layers_and_name_their_file(project):
    user = write(project / "home" / "config.toml",
                 '[backends.openai]\napi-key = "user"\nbase-url = "http://user"\n')
    write(project / "other.toml", '[backends.openai]\nbase_url = "http://other"\nmax-answer = 1024\n')
    loaded = config.load(Path("other.toml"))
    assert loaded.backend_values("openai") == {
        "api-key": Value("user", f"{user} [backends.openai]", "api-key", user),
        "base-url": Value("http://other", "other.toml [backends.openai]", "base_url", Path("other.toml")),
        "max-answer": Value(1024, "other.toml [backends.openai]", "max-answer", Path("other.toml")),
    }
    assert loaded.backend_value("openai", "base_url") == "http://other"
    assert loaded.backend_value("openai", "max-answer") == "1024"
    assert loaded.backend_values("tiyaro") == {} and loaded.backend_value("tiyaro", "api-key") is None
    assert config.load().backend_value("openai", "base-url") == "http://user"  # no --config: the user's


def test_the_cli_config_option_reaches_the_backends(project, monkeypatch):
    """--config's [backends.openai] is what the backends read in that invocation."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    write(project / "other.toml", '[backends.openai]\nbase-url = "http://127.0.0.1:8000/v1"\n')

    def openai_line(*args: str) -> str:
        result = subtitler(*args, "backends")
        assert result.exit_code == 0, result.output
        return next(line for line in result.stdout.splitlines() if line.startswith("openai"))

    assert "\tunavailable: " in openai_line()
    assert "\tavailable\t" in openai_line("--config", "other.toml")  # a self-hosted server needs no key


def test_loaded_gives_subcommands_the_groups_config(project):
    write(project / "other.toml", '[backends.openai]\nbase-url = "http://other"\n')
    group = click.Context(cli)
    got = cli_config.apply(group, Path("other.toml"), {"render": cli.commands["render"]})
    sub = click.Context(cli.commands["render"], parent=group)
    assert cli_config.loaded(sub) is got
    assert cli_config.loaded(sub).backend_value("openai", "base-url") == "http://other"


def test_two_configurations_coexist_in_one_process(project):
    """No module state: configs of two project folders, loaded without changing directory, each
    answer with their own values and sources."""
    a, b = project / "a", project / "b"
    write(a / "subtitler.toml", 'format = "vtt"\nmax-lines = 1\n\n[run]\nformat = "srt"\n\n'
                                '[backends.openai]\nbase-url = "http://a"\n')
    pyproject = write(b / "pyproject.toml", '[tool.subtitler]\nformat = ["txt", "tsv"]\n\n'
                                '[tool.subtitler.backends.openai]\nbase-url = "http://b"\n')
    home_b = write(project / "home-b" / "config.toml", 'model = "base"\n')
    config_a = config.load(cwd=a)
    config_b = config.load(cwd=b, environ={"SUBTITLER_CONFIG_HOME": str(home_b.parent)})
    assert Path.cwd() == project  # nothing moved
    assert config_a.values("run") == {
        "max-lines": Value(1, f"{a / 'subtitler.toml'}", "max-lines", a / "subtitler.toml"),
        "format": Value("srt", f"{a / 'subtitler.toml'} [run]", "format", a / "subtitler.toml"),
    }
    assert config_a.values("render")["format"].value == "vtt"
    assert config_b.values("run") == {
        "model": Value("base", str(home_b), "model", home_b),
        "format": Value(["txt", "tsv"], f"{pyproject} [tool.subtitler]", "format", pyproject),
    }
    assert config_a.backend_value("openai", "base-url") == "http://a"
    url_b = config_b.backend_values("openai")["base-url"]
    assert url_b.where == f"{pyproject} [tool.subtitler.backends.openai]"
    assert config_b.backend_value("openai", "base-url") == "http://b"
    assert config.load().layers == ()  # the working directory's own: none
    # An explicit file is relative to cwd.
    assert config.load(Path("subtitler.toml"), cwd=a).values("check")["max-lines"].value == 1


def test_config_module_does_not_import_click():
    """Reading config files is data only: a server or a library user does not load the CLI."""
    code = "import subtitler.config, sys; assert 'click' not in sys.modules, 'click imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bad_toml_is_one_error_line_and_exit_2_from_the_real_command(project):
    write(project / "subtitler.toml", "format = \n")
    proc = subprocess.run([sys.executable, "-m", "subtitler", "config"], capture_output=True, text=True)
    assert_one_line_error(proc, 2, "subtitler.toml: not valid TOML")
    write(project / "subtitler.toml", "[backends.openai]\nbogus = 1\n")  # refused by the plugin's keys
    proc = subprocess.run([sys.executable, "-m", "subtitler", "backends"], capture_output=True, text=True)
    assert_one_line_error(proc, 2, "subtitler.toml [backends.openai]: unknown key 'bogus'")
    assert proc.stdout == ""


def settings_shown(result: Result) -> dict[str, tuple[str, str]]:
    assert result.exit_code == 0, result.output
    rows = [line.split(" = ", 1) for line in result.stdout.splitlines()]
    return {key: tuple(rest.split("  # ", 1)) for key, rest in rows}


def test_config_command_shows_values_and_sources(project):
    user = write(project / "home" / "config.toml", 'model = "base"\nformat = ["srt", "vtt"]\n')
    write(project / "subtitler.toml",
          'profile = "bbc"\noutput-dir = "subs"\n\n[run]\nno-vad = true\nmux = true\n')
    shown = settings_shown(subtitler("config", "--beam-size", "1"))
    assert shown["model"] == ('"base"', str(user))
    assert shown["format"] == ('["srt", "vtt"]', str(user))
    assert shown["profile"] == ('"bbc"', "subtitler.toml")
    assert shown["output-dir"] == ('"subs"', "subtitler.toml")
    assert shown["vad"] == ("false", "subtitler.toml [run]")
    assert shown["mux"] == ("true", "subtitler.toml [run]")
    assert shown["beam-size"] == ("1", "command line")
    assert shown["task"] == ('"transcribe"', "default")
    assert shown["language"] == ("none", "default")

    check = json.loads(subtitler("config", "--command", "check", "--json").stdout)
    assert check["command"] == "check"
    assert check["settings"]["profile"] == {"value": "bbc", "source": "subtitler.toml"}
    assert check["settings"]["max-line-chars"] == {"value": None, "source": "default"}
    assert "model" not in check["settings"]  # check has no --model


def test_config_command_with_pyproject_and_a_bad_value(project):
    write(project / "pyproject.toml", "[tool.subtitler]\nbeam-size = 1\n")
    assert settings_shown(subtitler("config"))["beam-size"] == ("1", "pyproject.toml [tool.subtitler]")
    write(project / "pyproject.toml", '[tool.subtitler]\nbeam-size = "wide"\n')
    assert_config_error(subtitler("config"), "pyproject.toml [tool.subtitler]: beam-size:")


@pytest.mark.parametrize("toml", ['[backends]\nopenai = "http://host"\n', '[backends.openai]\nurl = [1]\n',
                                  'backends = 1\n'])
def test_bad_backend_table(project, clip, toml):
    write(project / "subtitler.toml", toml)
    assert_config_error(subtitler("render", clip), "subtitler.toml")


def test_a_false_flag_in_the_config_is_shown_as_set(project):
    write(project / "subtitler.toml", "[run]\nburn = true\nmux = false\n")
    shown = settings_shown(subtitler("config"))
    assert shown["burn"] == ("true", "subtitler.toml [run]") and shown["mux"][0] == "false"
