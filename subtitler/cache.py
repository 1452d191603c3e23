"""The transcript cache: a run never transcribes the same audio with the same settings twice.

Transcripts are keyed by the decoded audio's SHA-256 plus everything that
shapes the transcript (backend, model, decoding options, audio stream), so a
re-run after a layout or format change only re-renders. To know a file's
audio hash without decoding it again, the cache also remembers it per file
content hash, and each file's content hash per (path, size, mtime): an
unchanged file is neither decoded nor even read.

Everything lives under `cache_dir()/transcripts` (SUBTITLER_TRANSCRIPTS_DIR
overrides it) as small JSON files written atomically: a run killed
at any point leaves whole entries or none, and an unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import BadTranscript
from .files import atomic_write, sha256
from .models import cache_dir
from .transcript import Transcript

# In every transcript key: entries from before transcripts were kept on the audio's clock (they
# were shifted by one file's offset), or before a word reaching into the next speech region was
# put there (subtitler.vad's restore), are never read.
CLOCK = "audio-clock/2"


def digest(data: Any) -> str:
    """A stable SHA-256 of JSON-able settings."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            root = Path(os.environ.get("SUBTITLER_TRANSCRIPTS_DIR") or cache_dir() / "transcripts")
        self.root = root

    # -- small JSON entries -------------------------------------------------------

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def _get(self, kind: str, key: str) -> Any:
        try:
            return json.loads(self._path(kind, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # missing, or unreadable: a miss

    def _put(self, kind: str, key: str, value: Any) -> None:
        path = self._path(kind, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # a cache that cannot be written costs time, not correctness

    # -- file content hashes ------------------------------------------------------

    def file_hash(self, path: Path) -> str:
        """SHA-256 of the file's bytes; read only when its size or mtime changed since last time."""
        st = path.stat()
        stat_key = digest([str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino])
        known = self._get("stat", stat_key)
        if isinstance(known, str):
            return known
        value = sha256(path)
        self._put("stat", stat_key, value)
        return value

    # -- file -> audio ------------------------------------------------------------

    def input_of(self, file_hash: str, stream: int) -> tuple[str, dict[str, Any]] | None:
        """The audio hash of this file's stream, and the file's own facts (pipeline.input_facts)."""
        value = self._get("audio", f"{file_hash}-{stream}")
        if not (isinstance(value, dict) and isinstance(value.get("audio"), str)
                and isinstance(value.get("facts"), dict)):
            return None  # an entry from before facts were kept is a miss: decoded once more
        return value["audio"], value["facts"]

    def remember_input(self, file_hash: str, stream: int, audio: str, facts: dict[str, Any]) -> None:
        self._put("audio", f"{file_hash}-{stream}", {"audio": audio, "facts": facts})

    # -- inputs that cannot be decoded --------------------------------------------

    def failure(self, file_hash: str, stream: int) -> dict[str, Any] | None:
        """How decoding these very bytes failed before (not media, no audio...), or None.

        Its "detail" is the error without a path: the same bytes may come under another name."""
        value = self._get("failures", f"{file_hash}-{stream}")
        return value if isinstance(value, dict) and isinstance(value.get("detail"), str) else None

    def remember_failure(self, file_hash: str, stream: int, detail: str, exit_code: int) -> None:
        self._put("failures", f"{file_hash}-{stream}", {"detail": detail, "exit_code": exit_code})

    # -- transcripts --------------------------------------------------------------

    @staticmethod
    def transcript_key(audio: str, settings: dict[str, Any]) -> str:
        return digest([audio, settings, CLOCK])

    def transcripts(self, key: str) -> list[Transcript] | None:
        """The transcripts (one per task) stored under `key`, or None."""
        data = self._get("transcripts", key)
        if not isinstance(data, list):
            return None
        try:
            return [Transcript.from_dict(t) for t in data]
        except BadTranscript:
            return None

    def store(self, key: str, transcripts: list[Transcript]) -> None:
        self._put("transcripts", key, [t.to_dict() for t in transcripts])

    def usage(self) -> dict[str, tuple[int, int]]:
        """Entries and bytes per kind (transcripts, audio, stat, failures)."""
        kinds: dict[str, tuple[int, int]] = {}
        for kind in ("transcripts", "audio", "stat", "failures"):
            files = list((self.root / kind).rglob("*.json"))
            kinds[kind] = (len(files), sum(f.stat().st_size for f in files))
        return kinds

    def prune(self, older_than: float | None = None) -> int:
        """Remove entries not written for `older_than` seconds (None: all); returns how many went."""
        now, removed = time.time(), 0
        for entry in self.root.rglob("*.json"):
            if older_than is None or now - entry.stat().st_mtime > older_than:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
