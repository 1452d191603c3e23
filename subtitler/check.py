"""Lint existing subtitle files (SRT, WebVTT, ASS) against a profile.

For CI in media repositories: `subtitler check` exits 0 when clean, 1 on
violations, 2 when a file cannot be used at all (missing, not UTF-8, not a
subtitle file). A rule the speech itself can break (reading speed: a speaker
faster than the profile allows, with no silence to extend into) is a warning:
shown, failing only with --strict. Any rule can be waived (--ignore RULE).
An empty file (no cues: media without speech) is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pysubs2

from .profiles import Profile

# Every rule `check` knows (check --require-subs adds missing, stale and settings).
RULES = ("overlap", "line-length", "line-count", "min-duration", "max-duration", "reading-speed", "gap",
         "empty", "timing", "beyond-video", "speech-start", "missing", "stale", "settings")
# Rules the speech can break whatever the layout: warnings, not violations (unless --strict).
WARNING_RULES = frozenset({"reading-speed"})

# Tolerance for times stored in whole milliseconds (SRT, VTT) or centiseconds (ASS).
_EPS = 0.011


@dataclass
class Violation:
    rule: str  # overlap, line-length, line-count, min-duration, max-duration, reading-speed, gap, ...
    cue: int  # 1-based cue number, 0 for the whole file
    start: float
    message: str


@dataclass
class FileReport:
    path: str
    # None when not read as subtitles (check --require-subs: missing, or txt, tsv, json).
    cues: int | None = 0
    violations: list[Violation] = field(default_factory=list)
    # Broken rules of WARNING_RULES: shown, failing only with --strict.
    warnings: list[Violation] = field(default_factory=list)
    # Why the file could not be checked at all; None when it could.
    error: str | None = None
    # The video the subtitles belong to, when known (--video, --require-subs).
    video: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def waive(self, rules: Iterable[str]) -> None:
        """Forget the broken rules a repository chose to ignore (--ignore)."""
        rules = set(rules)
        self.violations = [v for v in self.violations if v.rule not in rules]
        self.warnings = [v for v in self.warnings if v.rule not in rules]

    def fails(self, strict: bool = False) -> bool:
        """Whether this file makes `check` exit 1: a violation, or with `strict` a warning."""
        return bool(self.violations or (strict and self.warnings))


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def speech_of(video: str | Path) -> list[tuple[float, float]]:
    """The stretches of speech in `video`'s audio, (start, end) seconds on its picture's clock, as
    the timing refinement finds them (timing.py: short-time energy); SubtitlerError if it has no
    audio or cannot be decoded."""
    from .media import decode_audio
    from .timing import FRAME, energy, speech_stretches

    audio = decode_audio(video)
    stretches, _ = speech_stretches(energy(audio.samples))
    return [(a * FRAME + audio.offset, b * FRAME + audio.offset) for a, b in stretches]


def _speech_start(start: float, end: float, previous_end: float, speech: list[tuple[float, float]],
                  tolerance: float) -> str | None:
    """How far a cue starts from the onset of the speech it carries, when more than `tolerance`:
    the first stretch of speech it overlaps (from `tolerance` before it), unless that began
    before the previous cue ended (speech carried over: no onset of its own)."""
    carried = next(((a, b) for a, b in speech if b > start - tolerance and a < end), None)
    if carried is None or carried[0] < previous_end:
        return None
    onset = carried[0]
    if abs(start - onset) <= tolerance + 0.005:  # stored times and 10 ms frames: rounding
        return None
    side = "before" if start < onset else "after"
    return f"starts {abs(start - onset):.3f} s {side} its speech ({_stamp(onset)})"


def check_file(path: str | Path, profile: Profile, video_duration: float | None = None,
               speech: list[tuple[float, float]] | None = None, speech_offset: float = 0.1) -> FileReport:
    """Check one subtitle file; never raises for bad files, reports them instead. With `speech`
    (`speech_of` the video), a cue starting more than `speech_offset` seconds before or after the
    speech it carries breaks the speech-start rule."""
    path = Path(path)
    report = FileReport(str(path))
    try:
        raw = path.read_bytes()
    except OSError as e:
        report.error = f"cannot read: {e.strerror or e}"
        return report
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        report.error = f"bad encoding: not UTF-8 (byte {e.start})"
        return report
    if not text.strip():  # an SRT of media without speech: no cues, nothing wrong (pysubs2 refuses it)
        return report
    try:
        subs = pysubs2.SSAFile.from_string(text)
    except Exception as e:  # pysubs2 raises several kinds for unknown formats
        report.error = f"not a subtitle file pysubs2 can read ({type(e).__name__}: {e})"
        return report
    events = [e for e in subs.events if not e.is_comment]
    report.cues = len(events)

    def add(violation: Violation) -> None:
        (report.warnings if violation.rule in WARNING_RULES else report.violations).append(violation)

    previous = None
    for n, event in enumerate(events, 1):
        start, end = event.start / 1000, event.end / 1000
        lines = event.plaintext.split("\n")
        body = " ".join(line.strip() for line in lines).strip()
        where = f"cue {n} at {_stamp(start)}"
        if not body:
            add(Violation("empty", n, start, f"{where}: empty cue"))
        if end <= start:
            add(Violation("timing", n, start, f"{where}: ends at or before its start"))
        if len(lines) > profile.max_lines:
            add(Violation("line-count", n, start, f"{where}: {len(lines)} lines > {profile.max_lines}"))
        for line in lines:
            if len(line.strip()) > profile.max_line_chars:
                add(Violation("line-length", n, start,
                              f"{where}: line of {len(line.strip())} characters > {profile.max_line_chars}"))
        duration = end - start
        if 0 < duration < profile.min_duration - _EPS:
            add(Violation("min-duration", n, start, f"{where}: {duration:.3f} s < {profile.min_duration} s"))
        if duration > profile.max_duration + _EPS:
            add(Violation("max-duration", n, start, f"{where}: {duration:.3f} s > {profile.max_duration} s"))
        if duration > 0 and body and len(body) / duration > profile.max_cps + 0.05:
            add(Violation("reading-speed", n, start,
                          f"{where}: {len(body) / duration:.1f} characters/s > {profile.max_cps}"))
        if previous is not None:
            p_end = previous.end / 1000
            if start < p_end - _EPS:
                add(Violation("overlap", n, start, f"{where}: overlaps cue {n - 1} by {p_end - start:.3f} s"))
            elif start - p_end < profile.min_gap - _EPS:
                add(Violation("gap", n, start,
                              f"{where}: {start - p_end:.3f} s after cue {n - 1} < {profile.min_gap} s"))
        if speech is not None:
            late = _speech_start(start, end, previous.end / 1000 if previous is not None else 0.0, speech,
                                 speech_offset)
            if late:
                add(Violation("speech-start", n, start, f"{where}: {late}"))
        if video_duration is not None and end > video_duration + _EPS:
            add(Violation("beyond-video", n, start,
                          f"{where}: ends at {_stamp(end)}, after the video ({_stamp(video_duration)})"))
        previous = event
    return report
