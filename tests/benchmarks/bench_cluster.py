"""Cluster benchmark: 20 copies of the sample through a local 2-node Ray cluster vs one machine.

    .venv/bin/python tests/benchmarks/bench_cluster.py      # or: make bench-cluster

On this machine (2 cores): the local run is the real command with one engine and 2 threads;
the cluster run is the same command with `--cluster` on a head and a worker node started here
(1 CPU each, one actor each, 1 engine thread each, all on 127.0.0.1: tests/ray_cluster.py).
Printed: the ratio of the two, Ray's fixed costs (starting the nodes, once; and per run:
connecting and starting the actors, from a one-file run against the same file locally), and
the per-file figures a larger cluster is worked out from: engine seconds per file per actor,
and what the driver spends per file (decoding, compressing the audio for the object store)
and sends (bytes per file).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.cluster import _Payload  # noqa: E402
from subtitler.media import decode_audio  # noqa: E402
from tests.ray_cluster import LocalCluster, driver_env  # noqa: E402

COPIES = 20
ENGINE = ["--no-cache", "-b", "faster-whisper", "-m", "tiny.en", "-f", "srt"]


def timed_run(args: list[str], report: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "subtitler", *args, "--report", str(report)],
                          env=driver_env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_cluster: the run failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(report.read_text())


def mean_timing(report: dict, stage: str) -> float:
    values = [o["timings"].get(stage, 0.0) for o in report["inputs"]]
    return sum(values) / len(values)


def main() -> None:
    sample = ROOT / "samples" / "sample.mp4"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos, one = folder / "videos", folder / "one"
        videos.mkdir()
        one.mkdir()
        for n in range(COPIES):
            shutil.copy(sample, videos / f"take{n:02}.mp4")
        shutil.copy(sample, one / "take.mp4")

        local, local_report = timed_run([str(videos), "-o", str(folder / "local"), *ENGINE, "--threads", "2"],
                                        folder / "local.json")
        local_one, _ = timed_run([str(one), "-o", str(folder / "local1"), *ENGINE, "--threads", "1"],
                                 folder / "local1.json")
        t0 = time.perf_counter()
        cluster = LocalCluster(workers=1)
        try:
            cluster.start()
            nodes_up = time.perf_counter() - t0
            on = ["--cluster", cluster.address, "--threads", "1"]
            cluster_one, _ = timed_run([str(one), "-o", str(folder / "cluster1"), *ENGINE, *on],
                                       folder / "cluster1.json")
            wall, report = timed_run([str(videos), "-o", str(folder / "cluster"), *ENGINE, *on],
                                     folder / "cluster.json")
        finally:
            cluster.stop()
        same = all((folder / "local" / p.name).read_bytes() == p.read_bytes()
                   for p in (folder / "cluster").glob("*.srt"))

    media = report["summary"]["media_seconds"]
    nodes = report["cluster"]["nodes"]
    files = sum(n["files"] for n in nodes.values())
    engine = sum(n["engine_seconds"] for n in nodes.values()) / files
    in_run = mean_timing(report, "decode")
    t = time.perf_counter()
    audio = decode_audio(sample).samples
    decode = time.perf_counter() - t
    t = time.perf_counter()
    payload = _Payload.of(audio)
    encode = time.perf_counter() - t
    per_driver_core = 3600 / (decode + encode)
    print(f"cluster: {COPIES} copies of the sample ({media:.0f} s of speech), faster-whisper tiny.en int8")
    print(f"  local, one engine, 2 threads: {local:.1f} s "
          f"({local_report['summary'].get('done', 0)} done)")
    print(f"  Ray, 2 nodes x 1 CPU, 2 actors x 1 thread: {wall:.1f} s = {wall / local:.3f}x the local run; "
          f"srt files identical to the local run's: {same} (the thread counts differ)")
    print(f"  Ray's fixed costs: starting the head and a worker node {nodes_up:.1f} s (once); per run "
          f"{cluster_one - local_one:+.1f} s (one file: {cluster_one:.1f} s on the cluster, "
          f"{local_one:.1f} s locally, both 1 thread)")
    for name, n in nodes.items():
        print(f"  node {name}: {n['files']} files, {n['audio_seconds']:.1f} s of audio, "
              f"{n['engine_seconds']:.1f} s of engine time")
    print(f"  per file (29.4 s of speech): engine {engine:.2f} s per 1-CPU actor "
          f"({3600 / engine:.0f} files/hour per actor); the driver alone: decode {decode:.2f} s "
          f"({in_run:.2f} s in the run, beside the engines), FLAC "
          f"{encode:.2f} s, {len(payload.data) / 1e3:.0f} kB sent "
          f"({len(payload.data) / (2 * len(audio)):.0%} of 16-bit PCM): one driver core feeds "
          f"{per_driver_core:.0f} files/hour")
    print(f"  ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main()
