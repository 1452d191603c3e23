"""Long inputs for the benchmarks, built once with ffmpeg and kept under build/bench-media.

    path, text = speech_file(600)        # ~10 min of real recorded speech (tests/speech.py)
    path = speech_then_silence(3600)     # that speech, then silence up to 1 h

The speech is the sample's sentences (tests/speech.long_speech: shuffled passes,
varied pauses) with its reference text. The long silent tails are made from one
10-minute block of silence and joined to the speech with ffmpeg's concat demuxer
and `-c copy`, so a 10-hour file takes seconds to make and a few MB of disk.
Everything is AAC at 16 kHz mono, so the blocks join without re-encoding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.media import SAMPLE_RATE, find_tools, probe  # noqa: E402
from tests.speech import long_speech, write_audio  # noqa: E402

MEDIA = ROOT / "build" / "bench-media"
BITRATE = "32k"
SILENCE_BLOCK = 600  # seconds


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_tools().ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True)


def _built(path: Path, make: object) -> Path:
    """`path`, made by `make(tmp)` first when missing (atomically: a killed build leaves nothing)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        make(tmp)  # type: ignore[operator]
        tmp.replace(path)
    return path


def speech_file(seconds: float, seed: int = 1) -> tuple[Path, str]:
    """At least `seconds` of real speech (tests/speech.long_speech) as AAC, and its reference text."""
    samples, text = long_speech(seconds, seed)
    path = MEDIA / f"speech-{seconds:g}s-seed{seed}.m4a"
    return _built(path, lambda tmp: write_audio(tmp, samples, BITRATE)), text


def _silence_block() -> Path:
    return _built(MEDIA / f"silence-{SILENCE_BLOCK}s.m4a", lambda tmp: _ffmpeg(
        "-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=mono", "-t", str(SILENCE_BLOCK),
        "-c:a", "aac", "-b:a", BITRATE, str(tmp)))


def speech_then_silence(total: float, speech_seconds: float = 600) -> Path:
    """`speech_file(speech_seconds)` followed by whole blocks of silence up to about `total`
    seconds (10 h: the 10-minute speech, then 9 h 50 min of silence)."""
    speech, _ = speech_file(speech_seconds)
    blocks = max(0, round((total - speech_seconds) / SILENCE_BLOCK))
    if blocks == 0:
        return speech
    silence = _silence_block()

    def make(tmp: Path) -> None:
        listing = tmp.with_suffix(".txt")
        listing.write_text("".join(f"file '{p}'\n" for p in [speech, *[silence] * blocks]))
        try:
            _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp))
        finally:
            listing.unlink()

    return _built(MEDIA / f"speech-{speech_seconds:g}s-then-silence-{total:g}s.m4a", make)


def duration(path: Path) -> float:
    return probe(path).duration or 0.0
