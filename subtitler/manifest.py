"""What made each output: a `.subtitler.json` beside the subtitles, meant to be committed with them.

For every output file it records the input (relative path and content hash)
and the hash of the settings that made it. A re-run uses it to skip outputs
that are up to date, and to know which existing files are its own to
replace; `subtitler check --require-subs` uses it to find subtitles that are
stale (the video changed) or were made with other settings.

An entry is written as "pending" before its output and completed after, so
a run killed in between leaves a file the next run knows it may replace.

Updates read, change and rewrite the whole file; two runs writing the same
folder at once (or --jobs threads) must not lose each other's entries, so an
update holds an flock on `.subtitler.lock` beside the manifest, across
processes, for the read and the write.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import digest
from .errors import OutputError, SubtitlerError
from .files import atomic_write, lock_named, remove_leftovers, sha256

NAME = ".subtitler.json"
LOCK = ".subtitler.lock"
SCHEMA = "subtitler.manifest"
VERSION = 1

_lock = threading.Lock()  # --jobs threads update the same manifests (flock keeps processes apart)


@dataclass(frozen=True)
class Entry:
    source: str  # the input, relative to the manifest's folder (POSIX separators)
    source_sha256: str
    settings: str  # digest of the settings that made the output
    pending: bool = False
    # The settings themselves, for people reading the file (not compared); stored once per
    # manifest under "settings", however many outputs share them.
    summary: dict[str, Any] | None = None
    # The language heard in the source, recorded when names depend on it ({lang}: naming.py), so
    # a re-run and `check --require-subs` know the names without hearing it again.
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source, "source_sha256": self.source_sha256,
                                "settings": self.settings}
        if self.pending:
            data["pending"] = True
        if self.language:
            data["language"] = self.language
        return data


def _path(folder: Path) -> Path:
    return folder / NAME


def read(folder: Path) -> dict[str, Entry]:
    """The entries of the manifest in `folder`, by output file name; {} if none or unreadable."""
    try:
        data = json.loads(_path(folder).read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            return {}
        summaries = data.get("settings") or {}
        return {name: Entry(e["source"], e["source_sha256"], e["settings"], bool(e.get("pending")),
                            summaries.get(e["settings"]), e.get("language"))
                for name, e in data["outputs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def entry_for(output: Path) -> Entry | None:
    return read(output.parent).get(output.name)


class Reader:
    """Entries with each folder's manifest read once: for planning a run, or checking one,
    while the manifests do not change (entry_for reads the file again every time)."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, Entry]] = {}

    def entry(self, output: Path) -> Entry | None:
        if output.parent not in self._folders:
            self._folders[output.parent] = read(output.parent)
        return self._folders[output.parent].get(output.name)

    def language(self, folder: Path, source: str, sha256: str | None = None) -> str | None:
        """The language recorded for outputs in `folder` made from `source` (as Entry.source has
        it), preferring an entry made from these bytes (`sha256`); None if none records one."""
        if folder not in self._folders:
            self._folders[folder] = read(folder)
        found = [e for e in self._folders[folder].values() if e.source == source and e.language]
        found.sort(key=lambda e: (e.source_sha256 != sha256, e.pending))
        return found[0].language if found else None


def update(outputs: dict[Path, Entry | None]) -> None:
    """Set (or, for None, remove) the entries of these outputs, folder by folder, atomically."""
    folders: dict[Path, dict[str, Entry | None]] = {}
    for output, entry in outputs.items():
        folders.setdefault(output.parent, {})[output.name] = entry
    with _lock:
        for folder, changes in folders.items():
            with _locked(folder):
                _update(folder, changes)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the folder's manifest lock against other processes (blocking until it is free)."""
    lock = folder / LOCK
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise OutputError(f"{folder}: cannot write ({e.strerror or e})") from None
        # The holder before us may have removed the lock file (its manifest became empty): then
        # take the one now at that name.
        if lock_named(fd, lock):
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _update(folder: Path, changes: dict[str, Entry | None]) -> None:
    """Apply `changes` to the folder's manifest; the caller holds its lock."""
    # Every manifest writer holds the lock: a temporary manifest left now is a killed run's.
    remove_leftovers(_path(folder))
    entries = read(folder)
    for name, entry in changes.items():
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry
    try:
        if not entries:  # nothing recorded (a failed first write took its entry back): leave no trace
            _path(folder).unlink(missing_ok=True)
            (folder / LOCK).unlink(missing_ok=True)  # held by us; the next holder checks (_locked)
            return
        summaries = {e.settings: e.summary for e in entries.values() if e.summary}
        data = {"schema": SCHEMA, "version": VERSION, "settings": summaries,
                "outputs": {n: entries[n].to_dict() for n in sorted(entries)}}
        atomic_write(_path(folder), (json.dumps(data, indent=1, ensure_ascii=False) + "\n")
                     .encode("utf-8", "backslashreplace"))  # a name not UTF-8: JSON's \udcff
    except OSError as e:
        raise OutputError(f"{folder}: cannot write ({e.strerror or e})") from None


def source_path(output: Path, input_path: Path) -> str:
    """The input as the manifest records it: relative to the output's folder."""
    return Path(os.path.relpath(input_path.resolve(), output.parent.resolve())).as_posix()


class OutputRecord:
    """The entry of one output made from several files (`subtitler mux` and `burn`: a video and
    subtitle files), by their content, with these settings."""

    def __init__(self, output: Path, sources: list[Path], settings: dict[str, Any]) -> None:
        self.output, self.summary = output, settings
        self.source = source_path(output, sources[0])
        self.sources = digest([sha256(p) for p in sources])
        self.settings = digest(settings)
        self.entry = entry_for(output)
        self.mine = self.entry is not None

    def up_to_date(self) -> bool:
        e = self.entry
        return (e is not None and not e.pending and e.source_sha256 == self.sources
                and e.settings == self.settings and self.output.is_file())

    def _entry(self, pending: bool) -> Entry:
        return Entry(self.source, self.sources, self.settings, pending, {"video": self.summary})

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Pending while the video is written, complete after. A failure (refused from the probe, or
        ffmpeg's) puts the entry back as it was: the file, written atomically, is as it was too."""
        update({self.output: self._entry(pending=True)})
        try:
            yield
        except BaseException:
            with contextlib.suppress(SubtitlerError):
                update({self.output: self.entry})
            raise
        update({self.output: self._entry(pending=False)})
