"""yt-dlp post-processor benchmark: its overhead over yt-dlp alone plus `subtitler` on the download.

    .venv/bin/python tests/benchmarks/bench_ytdlp.py [--reps N]

A web server on 127.0.0.1 serves the sample. Baseline: `yt-dlp URL` (download only), then
`subtitler "sample [sample].mp4" -f srt --no-cache` on the downloaded file, each a command as a user
types it. Plugin: `yt-dlp --use-postprocessor Subtitler:model=tiny.en URL`, one command. Same model
(tiny.en, faster-whisper) and options, nothing cached; runs interleaved, each in a fresh folder,
medians of N. Printed as the ratio plugin / baseline; target: at most 1.05 (+5%).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SRC = ROOT / "plugins" / "yt-dlp-subtitler" / "src"
TARGET = 1.05
MODEL = "tiny.en"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_ytdlp: {' '.join(args[:2])} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    reps = parser.parse_args().reps
    env = dict(os.environ)
    # Installed by `make install`; from a checkout without it, yt-dlp finds it on PYTHONPATH alike.
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_SRC), *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="bench-ytdlp-") as tmp:
        folder = Path(tmp)
        www = folder / "www"
        www.mkdir()
        shutil.copy(ROOT / "samples" / "sample.mp4", www / "sample.mp4")
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/sample.mp4"
        env["SUBTITLER_TRANSCRIPTS_DIR"] = str(folder / "transcripts")  # --no-cache: never read anyway
        baseline, plugin, download = [], [], []
        try:
            for n in range(reps + 1):  # the first round warms the disk cache and bytecode: not counted
                a, b = folder / f"alone{n}", folder / f"plugin{n}"
                a.mkdir()
                b.mkdir()
                fetched = run(["yt_dlp", "--no-progress", url], a, env)
                subtitled = run(["subtitler", "sample [sample].mp4", "-f", "srt", "--model", MODEL,
                                 "--no-cache"], a, env)
                together = run(["yt_dlp", "--no-progress", "--use-postprocessor",
                                f"Subtitler:model={MODEL};format=srt", url], b, env)
                if not (a / "sample [sample].srt").is_file() or not (b / "sample [sample].en.srt").is_file():
                    sys.exit("bench_ytdlp: a run wrote no subtitles")
                if n:
                    baseline.append(fetched + subtitled)
                    plugin.append(together)
                    download.append(fetched)
        finally:
            server.shutdown()
            server.server_close()
    alone, ours = statistics.median(baseline), statistics.median(plugin)
    ratio = ours / alone
    print(f"yt-dlp post-processor, sample (29.4 s), {MODEL}, medians of {reps}:")
    print(f"  yt-dlp alone {statistics.median(download):.2f} s + subtitler on the file = {alone:.2f} s")
    print(f"  yt-dlp --use-postprocessor Subtitler          = {ours:.2f} s")
    print(f"  ratio {ratio:.3f} ({(ratio - 1) * 100:+.1f}%), target <= {TARGET}: "
          f"{'met' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
