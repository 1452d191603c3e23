"""`--report FILE`: the run as JSON, from the events of the run (a sink, events.py).

Settings, a summary, and every input's outcome in input order, written
atomically when the run ends (interrupted runs included: what finished).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .events import Event, Finished
from .files import atomic_write
from .inputs import Input
from .job import Outcome


class JsonReport:
    """Collects each input's outcome as it finishes; `write` puts the run in a file."""

    def __init__(self, path: Path, started: float | None = None) -> None:
        self.path = path
        self.started = time.time() if started is None else started
        self._outcomes: dict[int, Outcome] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Finished):
            self._outcomes[id(event.outcome.input)] = event.outcome

    def write(self, items: Sequence[Input], settings: dict[str, Any], interrupted: bool = False,
              outcomes: Iterable[Outcome] = (), extra: dict[str, Any] | None = None) -> None:
        """The report of a run over `items` with `settings` (the manifest's summary); `outcomes`:
        those no event told (inputs never started, a dry run's plans); `extra`: more sections
        (`cluster`: per-node figures)."""
        for o in outcomes:
            self._outcomes.setdefault(id(o.input), o)
        ordered = [self._outcomes[id(i)] for i in items if id(i) in self._outcomes]
        counts: dict[str, int] = {}
        for o in ordered:
            counts[str(o.status)] = counts.get(str(o.status), 0) + 1
        data = {
            "schema": "subtitler.report", "version": 1,
            "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 3), "interrupted": interrupted,
            "settings": settings,
            "summary": {"inputs": len(ordered), **counts,
                        "decoded": sum(o.decoded for o in ordered),
                        "media_seconds": round(sum(o.duration or 0.0 for o in ordered if o.decoded), 3)},
            "inputs": [o.to_dict() for o in ordered],
            **(extra or {}),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n"
        # backslashreplace: a file name that is not UTF-8 is written as JSON's \udcff escape.
        atomic_write(self.path, text.encode("utf-8", "backslashreplace"))
