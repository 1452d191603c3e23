"""Packaging: the names, versions and install commands the README, the pre-commit hook and the
GitHub Actions example give work as written.

PyPI's "subtitler" is another project, so the core installs as subtitler-core and every plugin
depends on that name with a version range. The slow tests install this repository the way users do
(from a git URL, into a fresh virtual environment, dependencies from the package index), then run
the CI example's check and the pre-commit hook on a media repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import subtitler

from .conftest import ROOT, SAMPLE, ffmpeg

CORE = "subtitler-core"
PLUGINS = sorted((ROOT / "plugins").glob("*/pyproject.toml"))


def project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text())["project"]


def test_core_name_is_ours_and_version_has_one_source():
    core = project(ROOT / "pyproject.toml")
    assert core["name"] == CORE
    assert "version" not in core and "version" in core["dynamic"]
    assert not re.search(r"^\s*version\s*=\s*\"", (ROOT / "pyproject.toml").read_text(), re.M)
    cli = subprocess.run([sys.executable, "-m", "subtitler", "--version"], capture_output=True, text=True)
    assert cli.stdout.strip().endswith(subtitler.__version__)


@pytest.mark.parametrize("pyproject", PLUGINS, ids=lambda p: p.parent.name)
def test_every_plugin_depends_on_the_core_with_a_range_that_admits_it(pyproject):
    deps = [Requirement(d) for d in project(pyproject)["dependencies"]]
    core = [d for d in deps if d.name == CORE]
    assert core, f"{pyproject.parent.name} does not depend on {CORE}"
    spec = core[0].specifier
    assert spec.contains(Version(subtitler.__version__))
    assert any(s.operator == "<" for s in spec), "an upper bound: the next minor version may break plugins"
    assert not [d for d in deps if d.name == "subtitler"], "PyPI's subtitler is another project"


@pytest.mark.slow
def test_wheels_carry_py_typed(tmp_path):
    for folder in [ROOT, *(p.parent for p in PLUGINS)]:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(folder)], check=True, capture_output=True)
    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) == 1 + len(PLUGINS)
    for wheel in wheels:
        names = zipfile.ZipFile(wheel).namelist()
        assert any(n.endswith("/py.typed") for n in names), wheel.name
        if wheel.name.startswith("subtitler_core-"):
            metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
            assert f"Version: {subtitler.__version__}" in metadata


# -- installed as users do ---------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory) -> tuple[str, str]:
    """This working tree as a git repository (what is tracked, as it is now): (URL, commit)."""
    repo = tmp_path_factory.mktemp("subtitler-git")
    tracked = _git("ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "snapshot", cwd=repo)
    # A host in the URL: pip before 24 refuses "name @ git+file:///path" (no netloc) as invalid.
    return f"file://localhost{repo}", _git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture(scope="module")
def media_repo(tmp_path_factory) -> Path:
    """A media repository as the CI example expects: videos/ with subtitles made by `subtitler
    videos/` (this checkout's, faster-whisper), their manifest, and subtitler.toml."""
    repo = tmp_path_factory.mktemp("media-repo")
    (repo / "videos").mkdir()
    ffmpeg("-i", str(SAMPLE), "-t", "4", "-c", "copy", str(repo / "videos" / "clip.mp4"))
    (repo / "subtitler.toml").write_text('[run]\nbackend = "faster-whisper"\nmodel = "tiny.en"\n')
    made = subprocess.run([sys.executable, "-m", "subtitler", "videos/"], cwd=repo, capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr
    assert (repo / "videos" / "clip.srt").is_file()
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "videos and subtitles", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> Path:
    """A new virtual environment with nothing of ours in it."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    return env


def _workflow_installs() -> list[str]:
    """The `pip install` commands of examples/github-actions.yml, by job."""
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    return {name: [s["run"] for s in job["steps"] if "pip install" in s.get("run", "")]
            for name, job in workflow["jobs"].items()}


def test_the_ci_examples_requirements_name_our_distributions():
    names = {project(p)["name"]: p.parent for p in [ROOT / "pyproject.toml", *PLUGINS]}
    for commands in _workflow_installs().values():
        for command in commands:
            for quoted in re.findall(r'"([^"]+)"', command):
                req = Requirement(quoted.replace("$SUBTITLER_GIT", "git+https://example.com/x@v1"))
                assert req.name in names, f"{req.name} is not a distribution of this repository"
                folder = names[req.name]
                sub = re.search(r"#subdirectory=(\S+)", quoted)
                assert (ROOT / sub.group(1) if sub else ROOT) == folder
                extras = tomllib.loads((folder / "pyproject.toml").read_text())["project"].get(
                    "optional-dependencies", {})
                assert req.extras <= set(extras)


@pytest.mark.slow
def test_ci_example_check_job_works_as_written(repo_url, media_repo, fresh_env, tmp_path):
    """The check job's install line (from a git URL, as written) and its command, on a media
    repository whose subtitles subtitler made: exit 0; a changed video: exit 1, stale."""
    url, commit = repo_url
    (install,) = _workflow_installs()["check"]
    command = install.replace("$SUBTITLER_GIT", f"git+{url}@{commit}").replace(
        "pip install", f"{fresh_env}/bin/pip install -q", 1)
    subprocess.run(command, shell=True, check=True, capture_output=True)
    tool = fresh_env / "bin" / "subtitler"
    clean = subprocess.run([tool, "check", "--require-subs", "videos/"], cwd=media_repo, capture_output=True,
                           text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    changed = tmp_path / "changed"
    shutil.copytree(media_repo, changed, ignore=shutil.ignore_patterns(".git"))
    ffmpeg("-i", str(SAMPLE), "-t", "3", "-c", "copy", str(changed / "videos" / "clip.mp4"))
    stale = subprocess.run([tool, "check", "--require-subs", "videos/"], cwd=changed, capture_output=True,
                           text=True)
    assert stale.returncode == 1 and "[stale]" in stale.stdout, stale.stdout + stale.stderr


@pytest.mark.slow
def test_pre_commit_hook_works_as_written(repo_url, media_repo, fresh_env, tmp_path):
    """The README's .pre-commit-config.yaml (repo and rev pointing at this repository): pre-commit
    installs the hook itself and it passes on good subtitles, and blocks a commit with a stale one."""
    url, commit = repo_url
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"```yaml\n# \.pre-commit-config\.yaml.*?\n(.*?)```", readme, re.S).group(1)
    config = snippet.replace("https://github.com/OWNER/subtitler", url)
    config = re.sub(r"rev: \S+", f"rev: {commit}", config)
    repo = tmp_path / "media"
    shutil.copytree(media_repo, repo)
    (repo / ".pre-commit-config.yaml").write_text(config)
    subprocess.run([fresh_env / "bin" / "pip", "install", "-q", "pre-commit"], check=True,
                   capture_output=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env.pop("PYTHONPATH", None)
    hook = [fresh_env / "bin" / "pre-commit", "run", "--all-files"]
    ok = subprocess.run(hook, cwd=repo, capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "subtitler" in ok.stdout and "Passed" in ok.stdout
    ffmpeg("-i", str(SAMPLE), "-t", "3", "-c", "copy", str(repo / "videos" / "clip.mp4"))
    blocked = subprocess.run(hook, cwd=repo, capture_output=True, text=True, env=env)
    assert blocked.returncode == 1 and "[stale]" in blocked.stdout, blocked.stdout
