"""Cue layout benchmark: time per hour of speech, and how many cues meet the profile.

    .venv/bin/python tests/benchmarks/bench_layout.py

Uses the sample's real transcript (faster-whisper tiny.en), repeated to an
hour of speech, so the layout sees real word timings. "Before layout" are
Whisper's raw segments used as cues (what most tools write); "after" are the
cues subtitler builds. Both are judged by `subtitler check`'s rules.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.check import check_file  # noqa: E402
from subtitler.cues import Cue, build_cues  # noqa: E402
from subtitler.events import Report  # noqa: E402
from subtitler.formats import SRT  # noqa: E402
from subtitler.profiles import get_profile  # noqa: E402
from subtitler.transcript import Segment, Transcript, Word  # noqa: E402

TARGET_SECONDS_PER_HOUR = 1.0


def sample_transcript() -> Transcript:
    from subtitler import DecodeOptions
    from subtitler.backends import load_backend
    from subtitler.media import decode_audio

    audio = decode_audio(ROOT / "samples" / "sample.mp4")
    return load_backend("faster-whisper", "tiny.en").transcribe(audio.samples, DecodeOptions(), Report())


def repeat_to(transcript: Transcript, seconds: float) -> Transcript:
    """The transcript repeated back to back until it covers `seconds`."""
    span = transcript.duration
    copies = int(seconds // span) + 1
    segments = [
        Segment(s.start + k * span, s.end + k * span, s.text,
                [Word(w.start + k * span, w.end + k * span, w.text, w.probability) for w in s.words])
        for k in range(copies) for s in transcript.segments
    ]
    return Transcript(transcript.language, copies * span, segments)


def share_passing(cues: list[Cue], transcript: Transcript, profile_name: str) -> float:
    profile = get_profile(profile_name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.srt"
        path.write_text(SRT().dumps(transcript, cues), encoding="utf-8")
        report = check_file(path, profile)
    bad = {v.cue for v in report.violations + report.warnings}  # reading speed included
    return 1 - len(bad) / max(1, report.cues)


def main() -> None:
    transcript = sample_transcript()
    hour = repeat_to(transcript, 3600)
    words = sum(len(s.words) for s in hour.segments)
    build_cues(transcript)  # warm up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        cues = build_cues(hour)
        runs.append(time.perf_counter() - t0)
    per_hour = sorted(runs)[1] * 3600 / hour.duration
    print(f"layout: {words} words, {hour.duration / 3600:.2f} h of speech -> {len(cues)} cues")
    print(f"layout time: {per_hour:.3f} s per hour of speech (median of 3)  "
          f"target < {TARGET_SECONDS_PER_HOUR} s: {'PASS' if per_hour < TARGET_SECONDS_PER_HOUR else 'MISS'}")
    raw = [Cue(s.start, s.end, s.text.strip()) for s in transcript.segments]
    for name in ("netflix", "bbc"):
        before = share_passing(raw, transcript, name)
        after = share_passing(build_cues(transcript, get_profile(name)), transcript, name)
        print(f"cues meeting {name:8s} on the sample: raw segments {before:6.1%}  ->  layout {after:6.1%}")


if __name__ == "__main__":
    main()
