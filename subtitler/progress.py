"""What a run shows on stderr: bars on a terminal, plain log lines otherwise.

`StageBar` is one input's progress (decode, transcribe, mux...) in seconds of
media. `BatchDisplay` follows a batch: on a terminal an overall bar (files,
and media seconds done) with the current input's stage bar under it; in a
log (CI, a pipe) one line per input as it starts and ends, and one per
remote job state. Output paths go to stdout, for scripts.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import click

STAGE_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"


def _tqdm(**kwargs: Any) -> Any:
    from tqdm import tqdm  # only when bars are shown

    return tqdm(file=sys.stderr, **kwargs)


class StageBar:
    """One tqdm bar per stage, in seconds of media; nothing when not shown."""

    def __init__(self, label: str, show: bool, position: int = 0) -> None:
        self.label, self.show, self.position = label, show, position
        self.bar: Any = None
        self.stage = ""

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def update(self, stage: str, done: float, total: float) -> None:
        if not self.show:
            return
        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = _tqdm(total=round(total, 1) or None, unit="s", desc=f"{self.label} {stage}",
                             leave=False, position=self.position, bar_format=STAGE_FORMAT)
        self.bar.n = round(min(done, total) if total else done, 1)
        self.bar.refresh()


def _describe(outcome: Any) -> str:
    t = outcome.timings
    if outcome.status == "done":
        media = f"{outcome.duration:.1f} s of media" if outcome.duration else "media"
        return (f"done: transcribed {media} in {t.get('transcribe', 0):.1f} s "
                f"(decode {t.get('decode', 0):.1f} s)")
    if outcome.status == "rendered":
        return "rendered from the cached transcript"
    if outcome.status == "up-to-date":
        return "up to date"
    return outcome.status


class BatchDisplay:
    """Receives a Batch's events (from any thread) and shows them."""

    def __init__(self, total: int, show_bars: bool, numbers: dict[int, int]) -> None:
        self.total, self.show_bars = total, show_bars
        self.numbers = numbers  # id(input) -> 1-based position
        self.lock = threading.Lock()
        self.media = 0.0
        # The input the stage bar follows; others' events (a decode running ahead) wait their turn.
        self.current: Any = None
        self.overall: Any = None
        # One input: its stage bar alone. Several: an overall bar, the current stage under it.
        self.stage = StageBar("", show_bars, position=1 if total > 1 else 0)
        if show_bars and total > 1:
            self.overall = _tqdm(total=total, unit="file", desc="subtitler", position=0,
                                 bar_format="{desc}: {n}/{total} files|{bar}| {postfix} "
                                            "[{elapsed}<{remaining}]")
            self.overall.set_postfix_str("0 s of media")

    def _tag(self, outcome: Any) -> str:
        n = self.numbers.get(id(outcome.input))
        return f"[{n}/{self.total}] {outcome.input}" if self.total > 1 else str(outcome.input)

    def _line(self, text: str) -> None:
        if self.overall is not None or self.stage.bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            click.echo(text, err=True)

    def __call__(self, kind: str, outcome: Any, *args: Any) -> None:
        with self.lock:
            if kind == "start":
                if not self.show_bars and self.total > 1 and outcome.status == "transcribe":
                    self._line(f"subtitler: {self._tag(outcome)}: started")
            elif kind == "progress":
                if self.current is None:
                    self.current = outcome
                    self.stage.label = outcome.input.path.name
                if self.current is outcome:
                    self.stage.update(*args)
            elif kind == "status":
                self._line(f"subtitler: {self._tag(outcome)}: {args[0]}")
            elif kind == "end":
                self._end(outcome)

    def _end(self, outcome: Any) -> None:
        if self.current is outcome:
            self.stage.close()
            self.current = None
        if outcome.status == "failed":
            self._line(f"subtitler: error: {outcome.error}")
        elif not self.show_bars or self.total == 1:
            if self.total > 1 or outcome.status != "done":
                self._line(f"subtitler: {self._tag(outcome)}: {_describe(outcome)}")
        for path in outcome.outputs:
            click.echo(str(path))  # stdout: the files made, for scripts
        self.media += outcome.duration or 0.0
        if self.overall is not None:
            self.overall.set_postfix_str(f"{self.media:.0f} s of media", refresh=False)
            self.overall.update(1)

    def close(self) -> None:
        self.stage.close()
        if self.overall is not None:
            self.overall.close()
