"""`subtitler check --require-subs DIR`: every video has its subtitles, up to date.

For each media file `subtitler DIR` works on (the same search, the same
output folders), with the settings `run` takes from the config files, each
subtitle file `run` would write (one per format; --mux/--burn videos aside) is:

- `missing`: not there;
- `stale`: its manifest entry (manifest.py) records other bytes than the
  video's, or a run writing it was interrupted; with no entry, older than
  the video;
- `settings`: its manifest entry records other settings than the current
  ones (the message names which);

and then checked against the profile like any `subtitler check FILE`, cues
past the video's end included. Stale and settings are exactly what
`subtitler DIR` would do again. Nothing is decoded: videos are hashed (the
transcript cache remembers the hashes of unchanged files, as for `run`) and
probed for their duration.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import manifest, naming
from .cache import Cache
from .check import FileReport, Violation, check_file
from .errors import SubtitlerError
from .inputs import Input
from .job import Job
from .media import probe
from .profiles import Profile
from .specs import settings_digest

# The formats `check_file` reads; the others (txt, tsv, json) are only required to be there and fresh.
LINTED = ("srt", "vtt", "ass")


class _Video:
    """An input, its hash and duration read only when a subtitle file needs them, once."""

    def __init__(self, path: Path, cache: Cache) -> None:
        self.path, self.cache = path, cache

    @functools.cached_property
    def sha256(self) -> str:
        return self.cache.file_hash(self.path)

    @functools.cached_property
    def duration(self) -> float | None:
        return probe(self.path).duration


class RequiredSubtitles:
    """Checks the subtitles `run`, as set up in `job`, writes for each input; see the module's docstring."""

    def __init__(self, job: Job, profile: Profile, cache: Cache | None = None) -> None:
        self.job, self.profile = job, profile
        self.cache = cache or Cache()
        # What a run records in the manifest entries, to compare them with.
        self.settings = settings_digest(job.summary)
        self.summary = json.loads(json.dumps(job.summary, default=str))
        self._manifests = manifest.Reader()

    def check(self, items: Iterable[Input]) -> list[FileReport]:
        """A report per expected subtitle file of each input, in order."""
        reports = []
        for item in items:
            if self._manifests.entry(item.path) is not None:
                continue  # a video a run made (--mux, --burn), not one to subtitle
            video = _Video(item.path, self.cache)
            for fmt, path in self.subtitles(item):
                report = self._check(path, fmt, video)
                report.video = str(item.path)
                reports.append(report)
        return reports

    def subtitles(self, item: Input) -> list[tuple[str, Path]]:
        """(format, path) of each subtitle file `run` writes for `item`, named as it names them
        (naming.py): by the language a run recorded when names depend on it (else with {lang} in
        them, as missing)."""
        language = self.job.recorded_language(item, self._manifests) if self.job.named_by_language \
            else naming.UNKNOWN
        return self.job.subtitle_targets(item, language)

    def _check(self, path: Path, fmt: str, video: _Video) -> FileReport:
        if not path.is_file():
            missing = _problem("missing", f"no such file, expected for {video.path}")
            return FileReport(str(path), cues=None, violations=[missing])
        try:
            problems = self._freshness(path, video)
            duration = video.duration if fmt in LINTED else None
        except OSError as e:
            return FileReport(str(path), cues=None, error=f"cannot read {video.path} ({e.strerror or e})")
        except SubtitlerError as e:
            return FileReport(str(path), cues=None, error=f"cannot know the video's duration: {e}")
        if fmt in LINTED:
            report = check_file(path, self.profile, duration)
        else:
            report = FileReport(str(path), cues=None)
        report.violations[:0] = problems
        return report

    def _freshness(self, path: Path, video: _Video) -> list[Violation]:
        """The stale and settings problems of an existing subtitle file."""
        entry = self._manifests.entry(path)
        if entry is None:  # not recorded by a run (made by hand, or by another tool): only its age tells
            if path.stat().st_mtime_ns < video.path.stat().st_mtime_ns:
                return [_problem("stale", f"older than {video.path}")]
            return []
        problems = []
        if entry.pending:
            problems.append(_problem("stale", "unfinished: the run writing it was interrupted"))
        elif entry.source_sha256 != video.sha256:
            problems.append(_problem("stale", f"made from another version of {video.path} (changed since)"))
        if entry.settings != self.settings:
            # Named without the summary's sections ("transcription.", "render."): no user sets those.
            changed = differences(entry.summary, self.summary) if entry.summary else []
            names = ", ".join(d.split(".", 1)[-1] for d in changed)
            problems.append(_problem("settings", f"made with other settings ({names})" if names
                                     else "made with other settings"))
        return problems


def _problem(rule: str, message: str) -> Violation:
    return Violation(rule, 0, 0.0, message)


def differences(old: Any, new: Any, name: str = "") -> list[str]:
    """Where two JSON-like values differ, by dotted name ("render.profile.max_line_chars"), with both
    values when they are short: ["transcription.model tiny.en -> base"]."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*new, *(k for k in old if k not in new)]
        return _once(d for k in keys for d in differences(old.get(k), new.get(k), f"{name}.{k}".lstrip(".")))
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return _once(d for o, n in zip(old, new, strict=True) for d in differences(o, n, name))
    if old == new:
        return []
    values = [_short(old), _short(new)]
    return [f"{name} {values[0]} -> {values[1]}" if None not in values else name]


def _once(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _short(value: Any) -> str | None:
    """A value as a message shows it, or None when it is too long to help."""
    text = "none" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 24 else None
