"""The benchmarks' own parts: the long inputs they build, the memory meter, bench_gpu's refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from subtitler.media import SAMPLE_RATE, decode_audio, probe
from tests.benchmarks import bench_memory, long_media

ROOT = Path(__file__).resolve().parents[2]


def test_speech_then_silence_is_the_speech_then_silence(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Joined with -c copy: the speech's length plus whole blocks of silence, speech first, built once."""
    monkeypatch.setattr(long_media, "MEDIA", tmp_path)
    monkeypatch.setattr(long_media, "SILENCE_BLOCK", 10)
    speech, text = long_media.speech_file(20)
    path = long_media.speech_then_silence(40, speech_seconds=20)
    speech_s, total_s = probe(speech).duration, probe(path).duration
    assert speech_s is not None and total_s is not None
    assert 20 <= speech_s < 45  # whole passes of the five sentences (~30 s each)
    assert total_s == pytest.approx(speech_s + 20, abs=0.3)
    samples = decode_audio(path).samples
    cut = round(speech_s * SAMPLE_RATE)
    assert np.abs(samples[:cut]).max() > 0.1  # the sentences
    assert np.abs(samples[cut + SAMPLE_RATE:]).max() < 1e-3  # then silence
    assert len(text.split()) > 30
    built = path.stat().st_mtime_ns
    assert long_media.speech_then_silence(40, speech_seconds=20) == path
    assert path.stat().st_mtime_ns == built  # a rerun does not rebuild
    assert not list(tmp_path.glob(".*partial*"))


def test_memory_meter_reads_the_childs_peak_and_stops_a_runaway() -> None:
    grow = [sys.executable, "-c", "import time; b = bytearray(300 << 20); time.sleep(1)"]
    seconds, peak, killed, rc = bench_memory.measure(grow, {}, cap=4 << 30, timeout=60)
    assert (killed, rc) == (None, 0) and peak >= 300 << 20
    seconds, peak, killed, rc = bench_memory.measure(grow, {}, cap=100 << 20, timeout=60)
    assert killed == "memory" and rc != 0 and peak > 100 << 20


def test_bench_gpu_refuses_in_one_line_without_cuda() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmarks" / "bench_gpu.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("bench_gpu: error: no CUDA GPU usable here")
    assert "--device cpu" in done.stderr
