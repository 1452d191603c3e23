"""Peak memory against input length: the `subtitler` command on 10 minutes, 1 hour and 10 hours.

    .venv/bin/python tests/benchmarks/bench_memory.py [--quick] [--no-remote] [--strict]

Each case runs `python -m subtitler INPUT -b faster-whisper -m tiny.en -f srt` in a child
process with a cold transcript cache (--no-cache, fresh state folders), so it really decodes
and transcribes, and reads the child's peak resident memory from the kernel (os.wait4's
ru_maxrss). The inputs (built once under build/bench-media, see long_media.py):

  10 min  real speech: the sample's sentences, ~613 s (tests/speech.long_speech)
  1 h     that speech, then silence up to 1 h
  10 h    that speech, then silence up to 10 h
  (--speech-hour: the 1 h input is an hour of real speech instead, all of it transcribed)

Transcribing 10 hours of speech takes hours on this 2-core machine; silence costs every stage
but the decoder (demuxing, ffmpeg's decode, the 16 kHz samples held, voice activity detection,
the times mapped back) and ends in the same subtitle file, so what grows with the length of the
input shows. Target (issue 12): the 1 h and 10 h peaks within 1.5x of the 10 min one.

A child is killed when its memory passes CAP (a share of the machine's available memory), and
its peak is then reported as "> CAP": an engine holding everything at once would otherwise take
the machine down. The remote case (unless --no-remote) runs `-b tiyaro` against the local fake
service (tests/fake_tiyaro.py, 127.0.0.1) on 10 min and 1 h: the client's own peak. --quick
runs 10 min and 1 h only. Exit status 0 (it is a report) unless --strict and a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.long_media import duration, speech_file, speech_then_silence  # noqa: E402
from tests.fake_tiyaro import FakeTiyaro  # noqa: E402

MODEL = "tiny.en"
FLAT = 1.5  # the target: peak at 1 h and 10 h / peak at 10 min
CASE_TIMEOUT = 900.0  # seconds for one run, whatever happens


@dataclass
class Case:
    label: str  # "10 min"
    what: str  # how the input was made
    path: Path


@dataclass
class Run:
    case: Case
    backend: str
    seconds: float  # wall
    peak: int  # bytes; with `killed`, the RSS it had passed
    killed: str | None  # why the child was stopped, or None
    rc: int | None


def cases(quick: bool, speech_hour: bool = False) -> list[Case]:
    speech, _ = speech_file(600)
    hour = (Case("1 h", "real speech (long_speech 3600 s)", speech_file(3600)[0]) if speech_hour else
            Case("1 h", "the 10 min speech + 50 min silence", speech_then_silence(3600)))
    out = [Case("10 min", "real speech (long_speech 600 s)", speech), hour]
    if not quick:
        out.append(Case("10 h", "the 10 min speech + 9 h 50 min silence", speech_then_silence(36000)))
    return out


def available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 << 30


def rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(command: list[str], env: dict[str, str], cap: int,
            timeout: float) -> tuple[float, int, str | None, int]:
    """Run `command`; (wall seconds, peak RSS bytes, why it was killed or None, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    killed: list[str] = []
    seen = [0]
    done = threading.Event()

    def guard() -> None:  # the kernel's peak comes at the end; this only stops a runaway early
        while not done.wait(0.2):
            rss = rss_of(proc.pid)
            seen[0] = max(seen[0], rss)
            why = ("memory" if rss > cap else
                   "timeout" if time.perf_counter() - start > timeout else None)
            if why:
                killed.append(why)
                os.killpg(proc.pid, signal.SIGKILL)
                return

    watcher = threading.Thread(target=guard, daemon=True)
    watcher.start()
    assert proc.stderr is not None
    errors = proc.stderr.read()  # until the child closes it (it exits)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    watcher.join()
    seconds = time.perf_counter() - start
    peak = max(usage.ru_maxrss * 1024, seen[0])  # ru_maxrss is in KiB on Linux
    if proc.returncode != 0 and not killed:
        print(f"    exit {proc.returncode}: {errors.decode(errors='replace').strip()[-400:]}")
    return seconds, peak, (killed[0] if killed else None), proc.returncode


def gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def run_case(case: Case, backend: str, folder: Path, env: dict[str, str], cap: int) -> Run:
    state = folder / f"{backend}-{case.label.replace(' ', '')}"
    env = {**env, "SUBTITLER_STATE_DIR": str(state / "state"),
           "SUBTITLER_TRANSCRIPTS_DIR": str(state / "transcripts")}  # a cold cache
    command = [sys.executable, "-m", "subtitler", str(case.path), "-b", backend, "-f", "srt",
               "-o", str(state / "out"), "--no-cache", "--overwrite", "--no-progress"]
    if backend != "tiyaro":
        command += ["-m", MODEL]
    seconds, peak, killed, rc = measure(command, env, cap, CASE_TIMEOUT)
    run = Run(case, backend, seconds, peak, killed, rc)
    shown = f"> {gib(cap)} (killed)" if killed == "memory" else gib(peak)
    print(f"  {backend:<15} {case.label:<7} {duration(case.path):>8.0f} s audio: peak RSS {shown}, "
          f"{seconds:.0f} s{' (killed: timeout)' if killed == 'timeout' else ''}"
          f"{f' (exit {rc})' if rc and not killed else ''}", flush=True)
    return run


def canned(data: bytes, inputs: dict, model: str) -> dict:
    """The fake service's engine: a fixed sentence (the client's memory is what is measured)."""
    return {"text": " Hello there.", "language": "en", "segments": [
        {"start": 0.5, "end": 1.5, "text": " Hello there.",
         "words": [{"word": " Hello", "start": 0.5, "end": 1.0, "probability": 0.9},
                   {"word": " there.", "start": 1.0, "end": 1.5, "probability": 0.9}]}]}


def report(runs: list[Run], cap: int) -> list[tuple[str, bool]]:
    checks = []
    for backend in dict.fromkeys(r.backend for r in runs):
        mine = [r for r in runs if r.backend == backend]
        base = mine[0]
        for r in mine[1:]:
            if r.killed == "memory":
                checks.append((f"{backend}: {r.case.label} peak > {gib(cap)} (killed) vs "
                               f"{gib(base.peak)} at {base.case.label}", False))
            elif r.killed or base.killed:
                checks.append((f"{backend}: {r.case.label}: not measured (a run timed out)", False))
            else:
                ratio = r.peak / base.peak
                checks.append((f"{backend}: peak RSS at {r.case.label} / at {base.case.label} = "
                               f"{gib(r.peak)} / {gib(base.peak)} = {ratio:.2f}x (target <= {FLAT}x)",
                               ratio <= FLAT))
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10 min and 1 h only")
    parser.add_argument("--speech-hour", action="store_true",
                        help="make the 1 h input an hour of real speech (slow: it is all transcribed)")
    parser.add_argument("--no-remote", action="store_true", help="skip the tiyaro client against the fake")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    cap = int(available_memory() * 0.6)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, {gib(available_memory())} available; a child is killed past "
          f"{gib(cap)}; faster-whisper {MODEL}, -f srt, --no-cache; peak RSS = the child's ru_maxrss")
    started = time.perf_counter()
    inputs = cases(args.quick, args.speech_hour)
    for c in inputs:
        size = c.path.stat().st_size / 1e6
        print(f"  input {c.label:<7} {duration(c.path):>8.0f} s, {size:.1f} MB: {c.what}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="subtitler-bench-memory-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ)
        for c in inputs:
            runs.append(run_case(c, "faster-whisper", folder, env, cap))
        if not args.no_remote:
            with FakeTiyaro(result=canned, key="bench-key") as fake:
                remote_env = {**env, "TIYARO_API_KEY": "bench-key", "TIYARO_BASE_URL": fake.base_url,
                              "TIYARO_POLL_INTERVAL": "0.05"}
                for c in inputs[:2]:  # the fake holds each upload in memory: 10 h would be ~1 GB
                    runs.append(run_case(c, "tiyaro", folder, remote_env, cap))
    print()
    checks = report(runs, cap)
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 1 if args.strict and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
