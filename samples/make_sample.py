#!/usr/bin/env python3
"""Build samples/sample.mp4 and samples/sample.reference.json.

Source: five LibriVox clips (public domain) from the pocketsphinx 5.1.1 sdist
test data (BSD-2), with pocketsphinx's forced word alignments as reference.
Stdlib only; ffmpeg/ffprobe are called with argument lists (no shell).

    python samples/make_sample.py [--source DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import array
import json
import math
import re
import subprocess
import sys
import tarfile
import tempfile
import wave
from pathlib import Path

PKG = "pocketsphinx==5.1.1"
LIBRIVOX = "test/data/librivox"
CLIPS = ["0870", "0880", "0890", "0920", "0930"]
STEM = "sense_and_sensibility_01_austen_64kb-{}"
RATE, FPS = 16000, 15
LEAD_S, GAP_S = 0.5, 1.0  # silence before the first clip / between clips
# Trailing silence pads the total to whole video frames *and* whole samples
# (multiples of 0.2 s), so video and audio have exactly the same length.
PAD_UNIT = RATE // math.gcd(RATE, FPS)


def fetch_source(tmp: Path) -> Path:
    """Download the sdist and extract only the librivox files we use."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--no-binary", ":all:", PKG, "-d", str(tmp)], check=True)
    sdist = next(tmp.glob("pocketsphinx-*.tar.gz"))
    out = tmp / "src"
    (out / LIBRIVOX).mkdir(parents=True)
    wanted = {STEM.format(c) + ext for c in CLIPS for ext in (".wav", ".txt", ".json")}
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            name = m.name.split("/", 1)[-1]  # drop "pocketsphinx-5.1.1/"
            if m.isfile() and name.startswith(LIBRIVOX + "/") and Path(name).name in wanted:
                # Write by basename ourselves: no path traversal from the archive.
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                (out / LIBRIVOX / Path(name).name).write_bytes(data)
    return out


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            sys.exit(f"{path}: expected 16 kHz mono 16-bit PCM")
        return w.readframes(w.getnframes())


def build(src: Path) -> tuple[dict, bytes]:
    """Concatenate the clips with exact silences; return reference + PCM."""
    lib = src / LIBRIVOX
    pcm = bytearray(b"\0\0" * round(LEAD_S * RATE))
    clips, words, texts = [], [], []
    for i, cid in enumerate(CLIPS):
        if i:
            pcm += b"\0\0" * round(GAP_S * RATE)
        start = len(pcm) // 2 / RATE  # exact: offsets come from sample counts
        pcm += read_pcm(lib / (STEM.format(cid) + ".wav"))
        end = len(pcm) // 2 / RATE
        text = (lib / (STEM.format(cid) + ".txt")).read_text().strip().lower()
        texts.append(text)
        clips.append({"id": cid, "start": round(start, 3), "end": round(end, 3), "text": text})
        align = json.loads((lib / (STEM.format(cid) + ".json")).read_text())
        for w in align["w"]:
            if w["t"].startswith("<"):  # <sil>, <s>, </s> and other fillers
                continue
            words.append({"text": re.sub(r"\(\d+\)$", "", w["t"]),  # "and(2)" -> "and"
                          "start": round(start + w["b"], 3),
                          "end": round(start + w["b"] + w["d"], 3)})
    pcm += b"\0\0" * (-(len(pcm) // 2) % PAD_UNIT)
    ref = {
        "source": f"pocketsphinx 5.1.1 sdist ({PKG}): {LIBRIVOX}/"
                  + STEM.format("{" + ",".join(CLIPS) + "}") + ".{wav,txt,json}; LibriVox "
                  "recording of Jane Austen, Sense and Sensibility, chapter 1",
        "licence": "pocketsphinx test data: BSD-2-Clause, Copyright (c) 1999-2016 Carnegie Mellon "
                   "University; LibriVox recording: public domain",
        "text": " ".join(texts),
        "duration": round(len(pcm) // 2 / RATE, 3),
        "clips": clips,
        "words": words,
    }
    return ref, bytes(pcm)


def encode(pcm: bytes, wav: Path, mp4: Path) -> None:
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    dur = len(pcm) // 2 / RATE
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}:duration={dur}", "-i", str(wav),
        "-map", "0:v", "-map", "1:a", "-t", f"{dur}",
        "-map_metadata", "-1", "-fflags", "+bitexact",  # no version/date tags: reproducible
        "-c:v", "libx264", "-preset", "medium", "-crf", "30", "-pix_fmt", "yuv420p",
        # One x264 thread: frame threading makes the bytes depend on the core count.
        "-g", "150", "-threads", "1", "-flags:v", "+bitexact",
        "-c:a", "aac", "-b:a", "48k", "-ac", "1", "-ar", str(RATE), "-flags:a", "+bitexact",
        "-movflags", "+faststart", str(mp4)], check=True)


def verify(mp4: Path, ref: dict, pcm: bytes) -> None:
    """Decode the mp4 audio and check every clip sits where the reference says."""
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time,duration",
         "-show_entries", "format=duration", "-of", "json", str(mp4)],
        check=True, capture_output=True).stdout)
    for s in probe["streams"]:
        print(f"ffprobe {s['codec_type']}: start_time={s['start_time']} duration={s['duration']}")
    print(f"ffprobe container duration={probe['format']['duration']}"
          f"  expected {ref['duration']:.3f}")
    dec = array.array("h", subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(mp4), "-map", "0:a:0", "-f", "s16le",
         "-ac", "1", "-ar", str(RATE), "-"], check=True, capture_output=True).stdout)
    orig = array.array("h", pcm)
    print(f"decoded {len(dec)} samples ({len(dec) / RATE:.4f} s), source {len(orig)} samples")
    for clip in ref["clips"]:
        first = next(w for w in ref["words"] if w["start"] >= clip["start"])
        # 1) Sample-level: best lag of decoded vs source over 0.5 s of speech (AAC priming check).
        a = int(first["start"] * RATE)
        best = max(range(-64, 65), key=lambda k: sum(
            orig[i] * dec[i + k] for i in range(a, a + RATE // 2)))
        # 2) Energy onset: first 10 ms frame whose RMS, and that of the next 4 frames,
        # exceeds 3x the clip's noise floor (5th percentile), i.e. sustained speech.
        rms = [math.sqrt(sum(x * x for x in dec[t:t + 160]) / 160)
               for t in range(round(clip["start"] * RATE), round(clip["end"] * RATE), 160)]
        thr = 3 * sorted(rms)[len(rms) // 20]
        onset = clip["start"] + next(i for i in range(len(rms))
                                     if min(rms[i:i + 5]) > thr) / 100
        ok = best == 0 and abs(onset - first["start"]) <= 0.1
        print(f"clip {clip['id']}: start {clip['start']:.3f} first word '{first['text']}' "
              f"{first['start']:.3f}  onset {onset:.3f} (diff {onset - first['start']:+.3f} s)  "
              f"lag {best} samples  {'OK' if ok else 'FAIL'}")
        if not ok:
            sys.exit(f"verification failed for clip {clip['id']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path,
                    help="unpacked pocketsphinx-5.1.1 sdist (default: pip download it)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        src = args.source or fetch_source(tmp)
        ref, pcm = build(src)
        args.out.mkdir(parents=True, exist_ok=True)
        mp4 = args.out / "sample.mp4"
        encode(pcm, tmp / "sample.wav", mp4)
    (args.out / "sample.reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    verify(mp4, ref, pcm)
    print(f"total duration {ref['duration']:.3f} s; {mp4.name} {mp4.stat().st_size} bytes")


if __name__ == "__main__":
    main()
