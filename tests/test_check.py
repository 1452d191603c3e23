"""`subtitler check` finds each kind of violation; our own output passes it; `render` re-lays out."""

from __future__ import annotations

import json
import subprocess
import sys

import pysubs2
import pytest

from subtitler.check import WARNING_RULES, check_file
from subtitler.profiles import PROFILES

from .accuracy import normalize
from .conftest import SAMPLE


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          timeout=300)


GOOD = """1
00:00:01,000 --> 00:00:03,000
A perfectly ordinary line.

2
00:00:03,500 --> 00:00:05,000
And another.
"""

# Each bad file breaks exactly one rule of the netflix profile (and nothing else).
BAD = {
    "overlap": "1\n00:00:01,000 --> 00:00:03,000\nFirst cue here.\n\n"
               "2\n00:00:02,500 --> 00:00:04,500\nSecond cue here.\n",
    "line-length": "1\n00:00:01,000 --> 00:00:05,000\n"
                   "This line is certainly longer than forty-two characters.\n",
    "line-count": "1\n00:00:01,000 --> 00:00:05,000\nOne\nTwo\nThree\n",
    "min-duration": "1\n00:00:01,000 --> 00:00:01,400\nHi.\n",
    "max-duration": "1\n00:00:01,000 --> 00:00:09,000\nA long stay on screen.\n",
    "reading-speed": "1\n00:00:01,000 --> 00:00:02,000\nFar too many words to read in a second.\n",
    "gap": "1\n00:00:01,000 --> 00:00:03,000\nFirst cue here.\n\n"
           "2\n00:00:03,020 --> 00:00:05,000\nSecond cue here.\n",
    "empty": "1\n00:00:01,000 --> 00:00:03,000\n \n\n2\n00:00:04,000 --> 00:00:06,000\nText.\n",
}


@pytest.mark.parametrize("rule", list(BAD))
def test_each_violation_is_found(tmp_path, rule):
    path = tmp_path / f"{rule}.srt"
    path.write_text(BAD[rule], encoding="utf-8")
    report = check_file(path, PROFILES["netflix"])
    assert report.error is None
    warning = rule in WARNING_RULES  # reading speed: shown, failing only with --strict
    assert {v.rule for v in report.violations + report.warnings} == {rule}
    assert bool(report.warnings) == warning
    proc = run("check", str(path))
    assert proc.returncode == (0 if warning else 1)
    assert f"[{rule}]" in proc.stdout
    assert run("check", str(path), "--strict").returncode == 1
    assert run("check", str(path), "--strict", "--ignore", rule).returncode == 0


def test_clean_file_exits_zero(tmp_path):
    for ext, fmt in (("srt", "srt"), ("vtt", "vtt"), ("ass", "ass")):
        path = tmp_path / f"good.{ext}"
        pysubs2.SSAFile.from_string(GOOD).save(str(path), format_=fmt)
        assert run("check", str(path)).returncode == 0, path.read_text()


def test_unusable_inputs_exit_two(tmp_path):
    latin = tmp_path / "latin1.srt"
    latin.write_bytes(GOOD.replace("ordinary", "ordinaire é").encode("latin-1"))
    garbage = tmp_path / "garbage.srt"
    garbage.write_text("this is not a subtitle file\nat all\n")
    proc = run("check", str(latin), "--json")
    assert proc.returncode == 2
    assert "bad encoding" in json.loads(proc.stdout)["files"][0]["error"]
    assert run("check", str(garbage)).returncode == 2
    assert run("check", str(tmp_path / "missing.srt")).returncode == 2


def test_cues_beyond_the_video(tmp_path):
    path = tmp_path / "late.srt"
    path.write_text("1\n00:00:31,000 --> 00:00:33,000\nAfter the end.\n")
    proc = run("check", str(path), "--video", str(SAMPLE), "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [v["rule"] for v in report["files"][0]["violations"]] == ["beyond-video"]


@pytest.fixture(scope="module")
def sample_outputs(fw_backend, tmp_path_factory):
    from subtitler import Subtitler

    folder = tmp_path_factory.mktemp("own")
    job = Subtitler(backend="faster-whisper", formats=["srt", "vtt", "ass", "txt", "tsv", "json"],
                    output_dir=folder, engine=fw_backend)
    return job.subtitle(SAMPLE)


def test_our_output_passes_check_and_keeps_every_word(sample_outputs, reference):
    files = {p.suffix: p for p in sample_outputs.outputs}
    proc = run("check", "--profile", "netflix", "--video", str(SAMPLE),
               str(files[".srt"]), str(files[".vtt"]), str(files[".ass"]))
    assert proc.returncode == 0, proc.stdout
    # Layout loses no word: the cues' text is the raw transcript's text (WER unchanged).
    cue_text = " ".join(e.plaintext.replace("\n", " ") for e in pysubs2.load(str(files[".srt"])))
    assert normalize(cue_text) == normalize(sample_outputs.transcript.text)
    assert normalize(files[".txt"].read_text()) == normalize(sample_outputs.transcript.text)
    rows = files[".tsv"].read_text().splitlines()
    assert rows[0] == "start\tend\ttext" and len(rows) - 1 == len(pysubs2.load(str(files[".srt"])))


def test_ass_has_a_real_style_sized_to_the_video(sample_outputs):
    ass = pysubs2.load(str(next(p for p in sample_outputs.outputs if p.suffix == ".ass")))
    assert ass.info["PlayResX"] == "320" and ass.info["PlayResY"] == "180"  # the sample's picture
    style = ass.styles["Default"]
    assert style.fontname == "DejaVu Sans" and style.fontsize == 12  # 12 px floor (5.5% of 180 is 10)
    assert style.outline > 0 and style.marginv == 9 and style.alignment == pysubs2.Alignment.BOTTOM_CENTER


def test_render_relays_out_without_an_engine(sample_outputs, tmp_path):
    transcript = next(p for p in sample_outputs.outputs if p.suffix == ".json")
    proc = run("render", str(transcript), "-o", str(tmp_path), "-f", "all",
               "--profile", "bbc", "--max-line-chars", "30", "--font-size", "20", "--box")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["sample.ass", "sample.json", "sample.srt", "sample.tsv", "sample.txt", "sample.vtt"]
    assert (tmp_path / ".subtitler.json").is_file()  # recorded: rendering again replaces them
    lines = [line for e in pysubs2.load(str(tmp_path / "sample.srt")) for line in e.plaintext.split("\n")]
    assert max(len(line) for line in lines) <= 30
    style = pysubs2.load(str(tmp_path / "sample.ass")).styles["Default"]
    assert style.fontsize == 20 and style.borderstyle == 3
    # Layout rules hold; reading speed may not (the reader is faster than BBC's 15 CPS allows).
    proc = run("check", "--profile", "bbc", "--max-line-chars", "30", "--json", str(tmp_path / "sample.srt"))
    rules = {v["rule"] for v in json.loads(proc.stdout)["files"][0]["violations"]}
    assert rules <= {"reading-speed"}
    assert run("render", str(SAMPLE)).returncode == 2  # not a transcript: usage error


def test_strict_and_ignore_from_the_config_file(tmp_path):
    (tmp_path / "gap.srt").write_text(BAD["gap"])
    (tmp_path / "fast.srt").write_text(BAD["reading-speed"])

    def check(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "subtitler", "check", *args], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)

    assert check("gap.srt").returncode == 1
    assert check("fast.srt").returncode == 0
    (tmp_path / "subtitler.toml").write_text('[check]\nignore = ["gap"]\nstrict = true\n')
    assert check("gap.srt").stdout == "gap.srt: ok (2 cues)\n"
    assert check("fast.srt").returncode == 1  # strict: the warning fails
    assert check("fast.srt", "--ignore", "reading-speed").returncode == 0
    assert check("gap.srt", "--ignore", "reading-speed").returncode == 1  # replaces the list
    (tmp_path / "subtitler.toml").write_text('[check]\nignore = ["reading-sped"]\n')
    typo = check("fast.srt")
    assert typo.returncode == 2 and "subtitler.toml [check]: ignore" in typo.stderr
