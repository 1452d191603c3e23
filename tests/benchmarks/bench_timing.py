"""Timing refinement benchmark (issue 16): cue in-times and word starts against forced alignments,
before and after refinement, for both local engines; and the refinement's cost per hour of audio.

    .venv/bin/python tests/benchmarks/bench_timing.py [MODEL] [ENGINE]

(MODEL: tiny.en unless given, e.g. base; ENGINE: both local engines unless given.)

The references are forced alignments made without subtitler or Whisper (samples/README.md): the
sample's, and voices.mp4's (other speakers, a noise floor). "Before" is the engine's own word
times (`--no-refine-timing`), "after" the same transcript refined (the default). Figures: cue
in-times within 100 ms of the first word's reference start, word starts within 100 ms, mean
absolute word-start error, WER (the words are untouched: the same before and after). The cost:
energy and refinement over an hour of the sample's audio and words (tiled), against the engine's
time for an hour at the rate it transcribed the sample (target: under 1 %).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from subtitler import DecodeOptions  # noqa: E402
from subtitler.backends import load_backend  # noqa: E402
from subtitler.cues import build_cues  # noqa: E402
from subtitler.events import Report  # noqa: E402
from subtitler.media import decode_audio  # noqa: E402
from subtitler.timing import energy, refine_transcript, refine_words  # noqa: E402
from subtitler.transcript import Transcript, Word  # noqa: E402
from tests.accuracy import cue_start_errors, wer, word_start_errors  # noqa: E402

CLIPS = ("sample", "voices")
ENGINES = ("faster-whisper", "whisper")
TARGET_SHARE = 0.01


def figures(reference: dict, transcript: Transcript) -> str:
    cues = cue_start_errors(reference, transcript, build_cues(transcript))
    hits, mean = word_start_errors(reference, transcript)
    within = sum(abs(e) <= 0.1 for e in cues)
    return (f"cue in-times {within}/{len(cues)} ({within / len(cues):4.0%})  words {hits:4.0%}  "
            f"mean {mean * 1000:3.0f} ms  WER {wer(reference, transcript):.3f}")


def cost_per_hour(audio: np.ndarray, words: list[Word], seconds: float) -> float:
    """Seconds to measure the energy of, and refine, an hour of this audio and its words (tiled)."""
    copies = int(np.ceil(3600 / seconds))
    hour = np.tile(audio, copies)
    tiled = [Word(w.start + k * seconds, w.end + k * seconds, w.text) for k in range(copies) for w in words]
    t0 = time.perf_counter()
    refine_words(tiled, energy(hour))
    return (time.perf_counter() - t0) * 3600 / (copies * seconds)


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "tiny.en"
    engines = sys.argv[2:] or ENGINES
    options = DecodeOptions(refine_timing=False)
    engine_rate, refine_rate = {}, {}
    for name in engines:
        engine = load_backend(name, model)
        for clip in CLIPS:
            path = ROOT / "samples" / f"{clip}.mp4"
            reference = json.loads(path.with_suffix(".reference.json").read_text())
            audio = decode_audio(path)
            t0 = time.perf_counter()
            before = engine.transcribe(audio.samples, options, Report())
            engine_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            after = refine_transcript(before, energy(audio.samples))
            refine_seconds = time.perf_counter() - t0
            print(f"{clip:6s} {name:14s} before: {figures(reference, before)}")
            print(f"{'':6s} {'':14s} after:  {figures(reference, after)}")
            if clip == "sample":
                engine_rate[name] = engine_seconds * 3600 / audio.duration
                refine_rate[name] = cost_per_hour(audio.samples, before.words, audio.duration)
            print(f"{'':21s} engine {engine_seconds:.2f} s, refinement {refine_seconds * 1000:.1f} ms "
                  f"for {audio.duration:.1f} s of audio")
    print()
    for name in engines:
        share = refine_rate[name] / engine_rate[name]
        print(f"refinement per hour of audio ({name} words): {refine_rate[name]:.2f} s; the engine "
              f"({model}, this machine): {engine_rate[name]:.0f} s; {share:.2%} of engine time "
              f"(target under {TARGET_SHARE:.0%}) {'OK' if share < TARGET_SHARE else 'OVER'}")


if __name__ == "__main__":
    main()
