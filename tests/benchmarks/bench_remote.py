"""Remote client overhead: 100 files through `subtitler -b tiyaro --jobs 16` against a local fake.

    .venv/bin/python tests/benchmarks/bench_remote.py [--quick]

The fake (tests/fake_tiyaro.py) has an instant engine: each job takes exactly
JOB_SECONDS of "processing" on the server, then answers a canned transcript.
With 16 jobs in flight, 100 jobs need ceil(100/16) = 7 rounds, so the server
alone needs 7 x JOB_SECONDS; everything past that is the client's: start-up,
decoding and encoding each file, uploads, noticing a finished job late.

Targets: client overhead under 5% of the server's processing time, and at
most 2 requests per second per job while polling.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler.media import decode_audio  # noqa: E402
from subtitler.remote import wav_bytes  # noqa: E402
from tests.fake_tiyaro import FakeTiyaro  # noqa: E402

FILES, JOBS = 100, 16
OVERHEAD_TARGET = 0.05
POLL_RATE_TARGET = 2.0  # requests per second per job while polling


def canned(data: bytes, inputs: dict, model: str) -> dict:
    """The instant engine: a fixed two-word transcript."""
    return {"text": " Hello there.", "language": "en", "segments": [
        {"start": 0.1, "end": 0.9, "text": " Hello there.",
         "words": [{"word": " Hello", "start": 0.1, "end": 0.5, "probability": 0.9},
                   {"word": " there.", "start": 0.5, "end": 0.9, "probability": 0.9}]}]}


def main() -> None:
    job_seconds = 4.0 if "--quick" in sys.argv else 10.0
    samples = decode_audio(ROOT / "samples" / "sample.mp4").samples
    with tempfile.TemporaryDirectory() as tmp, FakeTiyaro(result=canned, key="bench-key",
                                                          job_seconds=job_seconds) as fake:
        folder = Path(tmp)
        inputs = []
        for n in range(FILES):  # 2 s each, all different, so each is its own job
            clip = folder / f"clip{n:03}.wav"
            clip.write_bytes(wav_bytes(samples[n * 4000: n * 4000 + 32000]))
            inputs.append(str(clip))
        env = {**os.environ, "TIYARO_API_KEY": "bench-key", "TIYARO_BASE_URL": fake.base_url,
               "SUBTITLER_STATE_DIR": str(folder / "state"),
               "SUBTITLER_TRANSCRIPTS_DIR": str(folder / "transcripts")}  # a cold cache
        command = [sys.executable, "-m", "subtitler", *inputs, "-b", "tiyaro", "--jobs", str(JOBS),
                   "-o", str(folder / "out")]
        started, clock = time.perf_counter(), time.monotonic()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"bench_remote: the run failed:\n{proc.stderr[-2000:]}")
        done = len(list((folder / "out").glob("*.srt")))
        server = math.ceil(FILES / JOBS) * job_seconds
        overhead = wall / server - 1
        polls = len(fake.requests("poll"))
        # While polling: from a job's first poll to its last, the most requests per second of any job.
        poll_rate = max((j.polls - 1) / (j.last_poll - j.first_poll) for j in fake.jobs.values()
                        if j.polls > 1 and j.last_poll and j.first_poll and j.last_poll > j.first_poll)
        print(f"remote client: {done}/{FILES} files, --jobs {JOBS}, "
              f"{job_seconds:.0f} s per job on the server")
        print(f"  wall {wall:.1f} s vs the server's own {server:.0f} s ({math.ceil(FILES / JOBS)} rounds): "
              f"client overhead {overhead:+.1%} (target < {OVERHEAD_TARGET:.0%}) "
              f"{'met' if overhead < OVERHEAD_TARGET else 'MISSED'}")
        jobs = sorted(fake.jobs.values(), key=lambda j: j.submitted)
        late = [j.finished - j.submitted - job_seconds for j in jobs if j.finished]
        print(f"  where it goes: first job submitted {jobs[0].submitted - clock:.2f} s after the start; "
              f"a finished job noticed {sum(late) / len(late):.2f} s late on average (polls at least "
              f"0.5 s apart); the rest is handing a slot to the next file")
        print(f"  polls: {polls} for {FILES} jobs, at most {poll_rate:.2f} per second for any job "
              f"(target <= {POLL_RATE_TARGET:.0f}) {'met' if poll_rate <= POLL_RATE_TARGET else 'MISSED'}; "
              f"max jobs in flight at the server: {fake.max_in_flight}")


if __name__ == "__main__":
    main()
