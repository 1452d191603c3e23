"""Batch benchmark: 20 copies of the sample through `subtitler DIR -o OUT`, then again.

    .venv/bin/python tests/benchmarks/bench_batch.py

Baseline, in this process: the engine alone (faster-whisper tiny.en, the
default on a CPU, model loaded and warm) on one copy's decoded audio, times
20. The batch run is the real command in a subprocess, start-up, model load,
decoding and writing included. Targets: the batch within 1.1x of 20 engine
runs (the model loads once, decoding overlaps the engine); the unchanged
re-run under 2 s (nothing decoded); a layout change re-renders in well under
a second per file.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.backends import load_backend  # noqa: E402
from subtitler.events import Report  # noqa: E402
from subtitler.media import decode_audio  # noqa: E402
from subtitler.options import DecodeOptions  # noqa: E402

COPIES = 20
BATCH_TARGET = 1.1
CACHED_TARGET = 2.0  # seconds for the unchanged re-run


def timed_run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    report = Path(args[args.index("--report") + 1])
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "subtitler", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_batch: the run failed:\n{proc.stderr[-2000:]}")
    return wall, json.loads(report.read_text())


def main() -> None:
    sample = ROOT / "samples" / "sample.mp4"
    audio = decode_audio(sample).samples
    engine = load_backend("faster-whisper", "tiny.en")
    engine.transcribe(audio, DecodeOptions(), Report())  # warm
    one = statistics.median(_time(lambda: engine.transcribe(audio, DecodeOptions(), Report()))
                            for _ in range(3))
    baseline = COPIES * one
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = folder / "videos"
        for n in range(COPIES):
            (videos / f"part{n // 5}").mkdir(parents=True, exist_ok=True)
            shutil.copy(sample, videos / f"part{n // 5}" / f"take{n:02}.mp4")
        env = {**os.environ, "SUBTITLER_TRANSCRIPTS_DIR": str(folder / "cache")}  # a cold cache
        base = [str(videos), "-o", str(folder / "subs"), "-b", "faster-whisper"]
        wall, first = timed_run([*base, "--report", str(folder / "r1.json")], env)
        again, second = timed_run([*base, "--report", str(folder / "r2.json")], env)
        layout, third = timed_run([*base, "--profile", "bbc", "--report", str(folder / "r3.json")], env)
    media = first["summary"]["media_seconds"]
    ratio = wall / baseline
    print(f"batch: {COPIES} copies of the sample ({media:.0f} s of speech), faster-whisper tiny.en")
    print(f"  engine alone, warm: {one:.2f} s per copy, x{COPIES} = {baseline:.1f} s")
    print(f"  batch run, everything included: {wall:.1f} s = {ratio:.3f}x the engine alone "
          f"(target <= {BATCH_TARGET}) {'met' if ratio <= BATCH_TARGET else 'MISSED'}; "
          f"{first['summary']['decoded']} files decoded, {first['summary'].get('done', 0)} done")
    print(f"  unchanged re-run: {again:.2f} s, {second['summary']['decoded']} decoded, "
          f"{second['summary'].get('up-to-date', 0)} up to date (target < {CACHED_TARGET:.0f} s) "
          f"{'met' if again < CACHED_TARGET else 'MISSED'}")
    print(f"  layout change (--profile bbc): {layout:.2f} s, {third['summary'].get('rendered', 0)} "
          f"re-rendered from cached transcripts, {third['summary']['decoded']} decoded")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
