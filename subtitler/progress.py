"""What a run shows on stderr: bars on a terminal, plain log lines otherwise.

`StageBar` is one input's progress (loading model, decode, vad, transcribe,
mux...) in seconds of media. `BatchDisplay` follows a batch: on a terminal
an overall bar (files, and media seconds done) with the current input's stage
bar under it, and a line per input as it ends; in a log (CI, a pipe) one line
per input as its transcription starts and as it ends, and one per remote job
state. Several inputs end with a summary line. Output paths go to stdout, for
scripts. Every line goes through `echo`, which keeps it out of the bars' lines.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

from .events import (
    Event,
    Finished,
    JobStatus,
    Progress,
    Stage,
    StageEnded,
    StageStarted,
    Started,
    Status,
    Warned,
)
from .languages import LANGUAGES

STAGE_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"
# A stage with no seconds to count (the model loading): its name and the time it has taken.
WAIT_FORMAT = "{desc}... {elapsed}"

# Bars on the screen now. While any is, every line printed goes through tqdm.write, which
# clears them, prints the line, and draws them again below it: a warning or a path printed
# straight to the terminal would land inside a bar's line.
_shown: set[Any] = set()


def echo(text: str, err: bool = False) -> None:
    """Print a line on stdout (err: stderr) without breaking the progress bars."""
    if _shown:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr if err else sys.stdout)
    else:
        click.echo(text, err=err)


def _tqdm(**kwargs: Any) -> Any:
    from tqdm import tqdm  # only when bars are shown

    bar = tqdm(file=sys.stderr, **kwargs)
    _shown.add(bar)
    return bar


def _close(bar: Any) -> None:
    _shown.discard(bar)
    bar.close()


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
            _close(self.bar)
            self.bar = None

    def update(self, stage: str, done: float, total: float) -> None:
        """Show `stage` at `done` of `total` seconds; a total of 0 shows only the time it takes."""
        if not self.show:
            return
        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = _tqdm(total=round(total, 1) or None, unit="s", desc=f"{self.label} {stage}".strip(),
                             leave=False, position=self.position,
                             bar_format=STAGE_FORMAT if total else WAIT_FORMAT)
        self.bar.n = round(min(done, total) if total else done, 1)
        self.bar.refresh()


def _describe(outcome: Any, detected: bool) -> str:
    t = outcome.timings
    if outcome.status == "done":
        media = f"{outcome.duration:.1f} s of media" if outcome.duration else "media"
        text = (f"done: transcribed {media} in {t.get('transcribe', 0):.1f} s "
                f"(decode {t.get('decode', 0):.1f} s)")
    elif outcome.status == "rendered":
        saved = outcome.input.path.suffix.lower() == ".json"
        text = f"rendered from the {'saved' if saved else 'cached'} transcript"
    elif outcome.status == "up-to-date":
        return "up to date"
    else:
        return str(outcome.status)
    if outcome.language:  # what the engine heard, when nobody said (--language)
        name = LANGUAGES.get(outcome.language, outcome.language).capitalize()
        text += f", language {name}" + (" (detected)" if detected and outcome.status == "done" else "")
    return text


def summary(outcomes: Sequence[Any], seconds: float) -> str:
    """The run in one line: `4 files: 2 done, 1 rendered, 1 failed; 16.0 s of media in 4.6 s`."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[str(o.status)] = counts.get(str(o.status), 0) + 1
    order = ["done", "rendered", "up-to-date", "failed", "skipped"]
    parts = [f"{counts[k]} {k}" for k in sorted(counts, key=lambda k: (order.index(k) if k in order else 9))]
    media = sum(o.duration or 0.0 for o in outcomes if o.status in ("done", "rendered"))
    return (f"subtitler: {len(outcomes)} files: {', '.join(parts)}; "
            f"{media:.1f} s of media in {seconds:.1f} s")


class BatchDisplay:
    """Shows a run's events (from any thread): a sink (events.py).

    On a terminal: bars, and a line per input as it ends; in a log: a line per input as its
    transcription starts and as it ends. `detected`: the language was not given, so a line
    says which one the engine heard.
    """

    def __init__(self, total: int, show_bars: bool, numbers: dict[int, int], detected: bool = False) -> None:
        self.total, self.show_bars, self.detected = total, show_bars, detected
        self.numbers = numbers  # id(input) -> 1-based position
        self.lock = threading.Lock()
        self.media = 0.0
        # The input the stage bar follows; others' events (a decode running ahead) wait their turn.
        self.current: Any = None
        self.overall: Any = None
        # One input: its stage bar alone. Several: an overall bar, the current stage under it.
        self.stage = StageBar("", show_bars, position=1 if total > 1 else 0)
        # The model loads while the first input decodes: a bar of its own under the stage's.
        self.model = StageBar("", show_bars, position=self.stage.position + 1)
        if show_bars and total > 1:
            # Not left on the screen: the summary line says the same when the run ends.
            self.overall = _tqdm(total=total, unit="file", desc="subtitler", position=0, leave=False,
                                 bar_format="{desc}: {n}/{total} files{postfix}|{bar}| "
                                            "[{elapsed}<{remaining}]")
            self.overall.set_postfix_str("0 s of media")

    def _tag(self, item: Any) -> str:
        n = self.numbers.get(id(item))
        return f"[{n}/{self.total}] {item}" if self.total > 1 else str(item)

    def __call__(self, event: Event) -> None:
        """A sink (events.py): shows the events of a run."""
        with self.lock:
            if isinstance(event, Started):
                if not self.show_bars and event.action == Status.TRANSCRIBE:
                    echo(f"subtitler: {self._tag(event.input)}: started", err=True)
            elif isinstance(event, StageStarted):
                if event.stage == Stage.LOAD_MODEL:
                    self.model.update(str(event.stage), 0, 0)  # the run's, not one input's
                elif event.stage == Stage.VAD:  # inside the engine, until its first progress
                    self._progress(event.input, str(event.stage), 0.0, event.total)
            elif isinstance(event, StageEnded):
                if event.stage == Stage.LOAD_MODEL:
                    self.model.close()
            elif isinstance(event, Progress):
                self._progress(event.input, str(event.stage), event.done, event.total)
            elif isinstance(event, JobStatus):
                echo(f"subtitler: {self._tag(event.input)}: {event.message}", err=True)
            elif isinstance(event, Warned):
                echo(f"subtitler: warning: {event.message}", err=True)  # above the bars, if any
            elif isinstance(event, Finished):
                self._end(event.outcome)

    def _progress(self, item: Any, stage: str, done: float, total: float) -> None:
        if self.current is None:
            self.current = item
            self.stage.label = item.path.name
        if self.current is item:
            self.stage.update(stage, done, total)

    def _end(self, outcome: Any) -> None:
        if self.current is outcome.input:
            self.stage.close()
            self.current = None
        if outcome.status == "failed":
            echo(f"subtitler: error: {outcome.error}", err=True)
        else:
            echo(f"subtitler: {self._tag(outcome.input)}: {_describe(outcome, self.detected)}", err=True)
        for path in outcome.outputs:
            echo(str(path))  # stdout: the files made, for scripts
        self.media += outcome.duration or 0.0
        if self.overall is not None:
            self.overall.set_postfix_str(f"{self.media:.0f} s of media", refresh=False)
            self.overall.update(1)

    def close(self) -> None:
        self.stage.close()
        self.model.close()
        if self.overall is not None:
            _close(self.overall)
            self.overall = None
