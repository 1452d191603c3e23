#!/usr/bin/env python3
"""Build samples/voices.mp4 and samples/voices.reference.json: a second real-speech clip for
timing tests, other speakers than the sample's.

Source: six short utterances of the pocketsphinx 5.1.1 sdist test data (BSD-2): goforward.raw,
forever/input_2_16k.wav and cards/00{1,2,3,5}.wav, transcripts as pocketsphinx's own tests and
cards.transcription give them. Unlike the sample's clips these ship no word alignments, so they
are made here the way the shipped ones were: pocketsphinx 5.1.1's forced alignment
(`Decoder(lm=None).set_align_text(text)`, its bundled en-us acoustic model, 10 ms frames) on
each utterance with the half second of silence around it; run on the sample's clips, this
reproduces their shipped .json word times to the frame. Nothing of subtitler (nor Whisper)
takes part in the reference.

Layout as in the sample (0.5 s before, 1.0 s between utterances), but under a steady noise floor
(white noise at -54 dBFS RMS, fixed seed) so that silence is not digital zero; 25 fps video.

Needs the `pocketsphinx==5.1.1` wheel (not a dependency of subtitler: install it in a scratch
environment to regenerate) and ffmpeg:

    python samples/make_voices.py [--source DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import array
import json
import random
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_sample  # noqa: E402  (fetch_source, read_pcm, encode, verify)

RATE, FPS = 16000, 25
LEAD_S, GAP_S = 0.5, 1.0
NOISE_RMS = 65  # of 32768: -54 dBFS
UTTERANCES = [  # (file under test/data, transcript)
    ("goforward.raw", "go forward ten meters"),
    ("forever/input_2_16k.wav", "feels like these days go on forever"),
    ("cards/001.wav", "ten of clubs"),
    ("cards/002.wav", "four queen of clubs"),
    ("cards/003.wav", "seven of clubs"),
    ("cards/005.wav", "eight of spades four of clubs seven of hearts"),
]


def fetch_all(tmp: Path) -> Path:
    """The sdist's test/data folder (make_sample extracts only librivox: extract the rest too)."""
    import tarfile

    make_sample.fetch_source(tmp)
    with tarfile.open(next(tmp.glob("pocketsphinx-*.tar.gz"))) as tar:
        tar.extractall(tmp / "all", filter="data")
    return next((tmp / "all").glob("pocketsphinx-*"))


def align(pcm: bytes, text: str) -> list[tuple[str, float, float]]:
    """pocketsphinx's forced alignment of `text` on 16 kHz s16le `pcm`: (word, start, end) in s."""
    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, loglevel="FATAL")
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    frate = decoder.config["frate"]
    return [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame / frate, (s.end_frame + 1) / frate)
            for s in decoder.seg() if not s.word.startswith(("<", "("))]


def build(data: Path) -> tuple[dict, bytes]:
    pcm = bytearray(b"\0\0" * round(LEAD_S * RATE))
    clips, texts = [], []
    for i, (name, text) in enumerate(UTTERANCES):
        if i:
            pcm += b"\0\0" * round(GAP_S * RATE)
        start = len(pcm) // 2 / RATE
        pcm += (data / name).read_bytes() if name.endswith(".raw") else make_sample.read_pcm(data / name)
        clips.append({"id": name, "start": round(start, 3), "end": round(len(pcm) // 2 / RATE, 3),
                      "text": text})
        texts.append(text)
    pcm += b"\0\0" * (-(len(pcm) // 2) % (RATE // FPS))  # whole video frames
    samples = array.array("h", pcm)
    rng = random.Random(16)
    for k in range(len(samples)):
        samples[k] = max(-32768, min(32767, samples[k] + round(rng.gauss(0, NOISE_RMS))))
    words = []
    for clip in clips:
        # Aligned with the half second of (noisy) silence on each side, as it is heard in the clip:
        # the aligner then has silence to place before the first word and after the last.
        a, b = round((clip["start"] - LEAD_S) * RATE), round((clip["end"] + LEAD_S) * RATE)
        aligned = align(samples[a:b].tobytes(), clip["text"])
        if [w for w, _, _ in aligned] != clip["text"].split():
            sys.exit(f"{clip['id']}: alignment {aligned} does not match its transcript")
        words += [{"text": w, "start": round(a / RATE + s, 3), "end": round(a / RATE + e, 3)}
                  for w, s, e in aligned]
    ref = {
        "source": "pocketsphinx 5.1.1 sdist (pocketsphinx==5.1.1): test/data/{"
                  + ",".join(n for n, _ in UTTERANCES) + "}; word times: pocketsphinx 5.1.1 forced "
                  "alignment (en-us model) of each utterance, made by samples/make_voices.py",
        "licence": "pocketsphinx test data: BSD-2-Clause, Copyright (c) 1999-2016 Carnegie Mellon University",
        "text": " ".join(texts),
        "duration": round(len(samples) / RATE, 3),
        "clips": clips,
        "words": words,
    }
    return ref, samples.tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path,
                    help="unpacked pocketsphinx-5.1.1 sdist (default: pip download it)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    make_sample.FPS = FPS  # encode() reads it
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        data = (args.source or fetch_all(tmp)) / "test" / "data"
        ref, pcm = build(data)
        args.out.mkdir(parents=True, exist_ok=True)
        mp4 = args.out / "voices.mp4"
        make_sample.encode(pcm, tmp / "voices.wav", mp4)
    (args.out / "voices.reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    make_sample.verify(mp4, ref, pcm)  # the sample's checks: in place, first word at its onset
    print(f"total duration {ref['duration']:.3f} s; {mp4.name} {mp4.stat().st_size} bytes")


if __name__ == "__main__":
    main()
