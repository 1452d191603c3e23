"""Video benchmark: mux speed, and burn-in against a plain ffmpeg re-encode with the same settings.

    .venv/bin/python tests/benchmarks/bench_video.py [--quick]

Targets: mux faster than 50x real time (nothing is re-encoded); burn-in within
1.15x of a plain re-encode of the same video with the same encoder settings,
so drawing the subtitles costs little next to encoding.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.media import find_tools, probe  # noqa: E402
from subtitler.pipeline import Subtitler  # noqa: E402
from subtitler.video import SubtitleTrack, burn, mux  # noqa: E402

MUX_TARGET = 50.0  # times real time
BURN_TARGET = 1.15  # burn time / plain re-encode time


def ffmpeg(*args: str) -> None:
    subprocess.run([find_tools().ffmpeg, "-nostdin", "-v", "error", "-y", *args], check=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    reps = 1 if "--quick" in sys.argv else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # 60 s of real speech on a 640x360 picture: the sample looped and scaled.
        clip = folder / "clip.mp4"
        ffmpeg("-stream_loop", "1", "-i", str(ROOT / "samples" / "sample.mp4"), "-t", "60",
               "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "copy", str(clip))
        duration = probe(clip).duration or 60.0
        job = Subtitler(backend="faster-whisper", formats=["srt"], output_dir=folder)
        subs = job.subtitle(clip).outputs[0]
        mux_times, burn_times, plain_times = [], [], []
        for _ in range(reps):  # interleaved, so machine noise hits all alike
            mux_times.append(timed(lambda: mux(clip, [SubtitleTrack(subs, "en")], folder / "m.mp4",
                                               overwrite=True)))
            burn_times.append(timed(lambda: burn(clip, subs, folder / "b.mp4", overwrite=True,
                                                 crf=23, preset="medium")))
            plain_times.append(timed(lambda: ffmpeg(
                "-i", str(clip), "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264", "-crf", "23",
                "-preset", "medium", "-c:a", "copy", "-movflags", "+faststart", str(folder / "p.mp4"))))
    m, b, p = (statistics.median(x) for x in (mux_times, burn_times, plain_times))
    print(f"clip: {duration:.1f} s, 640x360, H.264/AAC; {reps} interleaved runs, medians")
    print(f"mux:   {m:6.2f} s = {duration / m:7.1f}x real time   target > {MUX_TARGET:.0f}x: "
          f"{'PASS' if duration / m > MUX_TARGET else 'MISS'}")
    print(f"burn:  {b:6.2f} s; plain re-encode {p:6.2f} s; ratio {b / p:.3f}   target <= {BURN_TARGET}: "
          f"{'PASS' if b / p <= BURN_TARGET else 'MISS'}")


if __name__ == "__main__":
    main()
