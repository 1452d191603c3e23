"""Long real speech with a known transcript, built from the sample's five recorded sentences.

The sample (LibriVox, 29.4 s) is the only real speech with a word-level reference here. Longer
material is made from its sentences in a different shuffled order each pass, with pauses of
varied length between them, so a model conditioned on its own previous text cannot coast on a
loop, and windows cut at silences land in different places each pass.

    samples, text = long_speech(600)            # ~10 minutes, 16 kHz mono float32
    path = write_audio(tmp / "long.m4a", samples)
"""

from __future__ import annotations

import json
import random
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from subtitler.media import SAMPLE_RATE, decode_audio, find_tools

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample.mp4"
REFERENCE = ROOT / "samples" / "sample.reference.json"


@lru_cache(maxsize=1)
def sentences() -> tuple[tuple[np.ndarray, str], ...]:
    """The sample's five sentences: (samples from 0.1 s before to 0.1 s after, reference text)."""
    audio = decode_audio(SAMPLE).samples
    clips = json.loads(REFERENCE.read_text())["clips"]
    out = []
    for clip in clips:
        a, b = round((clip["start"] - 0.1) * SAMPLE_RATE), round((clip["end"] + 0.1) * SAMPLE_RATE)
        out.append((audio[max(0, a):b].copy(), clip["text"]))
    return tuple(out)


def long_speech(seconds: float, seed: int = 1) -> tuple[np.ndarray, str]:
    """At least `seconds` of the sample's sentences (whole passes of all five, each pass shuffled,
    pauses of 0.4-1.6 s), and the reference text of what is said."""
    rng = random.Random(seed)
    parts: list[np.ndarray] = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
    texts: list[str] = []
    total = len(parts[0])
    while total < seconds * SAMPLE_RATE:
        order = list(sentences())
        rng.shuffle(order)
        for samples, text in order:
            pause = np.zeros(int(rng.uniform(0.4, 1.6) * SAMPLE_RATE), np.float32)
            parts += [samples, pause]
            texts.append(text)
            total += len(samples) + len(pause)
    return np.concatenate(parts), " ".join(texts)


def write_audio(path: Path, samples: np.ndarray, bitrate: str = "48k") -> Path:
    """`samples` (16 kHz mono float32) encoded by ffmpeg to `path` (the codec from its suffix:
    .m4a AAC, .wav PCM, .flac...)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    codec = ["-b:a", bitrate] if path.suffix in (".m4a", ".mp4", ".mp3", ".ogg") else []
    subprocess.run([find_tools().ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "pipe:", *codec, str(path)],
                   input=pcm, check=True)
    return path
