"""Voice activity detection: where the speech is, before Whisper sees the audio.

Whisper invents text on silence, noise and music ("Thanks for watching!");
decoding only the speech avoids it. Both local engines use the Silero VAD
that faster-whisper ships inside its wheel (an ONNX file run by onnxruntime,
no hub), with the same settings, and decode the same thing: the speech
regions joined end to end, times then mapped back onto the original clock
(what faster-whisper's own `vad_filter` does; `SpeechOnly` does it for others).

faster-whisper is imported only when VAD runs: the core does not need it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BackendUnavailable
from .transcript import Segment, Word

if TYPE_CHECKING:
    from faster_whisper.vad import VadOptions

SAMPLE_RATE = 16000

# Tuned for subtitles. faster-whisper's own defaults (2000 ms silence, 400 ms
# pad) suit long-form transcription; subtitles want regions split at the
# sub-second pauses between sentences, so no word's time can stretch over a
# pause, and a small pad, so a cue does not appear long before its first word.
SETTINGS: dict[str, Any] = {
    "threshold": 0.5,
    "min_speech_duration_ms": 250,  # shorter blips are clicks and breaths, not words
    "min_silence_duration_ms": 500,
    "speech_pad_ms": 200,
}


def vad_options(**overrides: Any) -> VadOptions:
    """faster-whisper's VadOptions with subtitler's settings (and any overrides)."""
    try:
        from faster_whisper.vad import VadOptions
    except ImportError as e:
        raise BackendUnavailable(
            f"voice activity detection needs faster-whisper (pip install faster-whisper): {e}"
        ) from None
    return VadOptions(**{**SETTINGS, **overrides})


def speech_regions(audio: np.ndarray, **overrides: Any) -> list[tuple[float, float]]:
    """(start, end) seconds of each speech region in 16 kHz mono float32 `audio`, in order.

    An empty list means no speech at all.
    """
    options = vad_options(**overrides)
    from faster_whisper.vad import get_speech_timestamps  # importable: vad_options checked

    if len(audio) == 0:
        return []
    chunks = get_speech_timestamps(np.asarray(audio, dtype=np.float32), options)  # 16 kHz
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in chunks]


@dataclass(frozen=True)
class SpeechOnly:
    """The speech regions of some audio joined end to end, and the way back to its clock."""

    samples: np.ndarray
    regions: list[tuple[float, float]]
    # End of each region on the joined clock, and how far it moved to get there.
    _ends: list[float]
    _shifts: list[float]

    @classmethod
    def cut(cls, audio: np.ndarray, regions: list[tuple[float, float]]) -> SpeechOnly:
        bounds = [(round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)) for a, b in regions]
        pieces = [audio[a:b] for a, b in bounds]
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        ends, shifts, done = [], [], 0
        for a, b in bounds:
            shifts.append((a - done) / SAMPLE_RATE)
            done += b - a
            ends.append(done / SAMPLE_RATE)
        return cls(samples, list(regions), ends, shifts)

    @classmethod
    def detect(cls, audio: np.ndarray) -> SpeechOnly:
        return cls.cut(audio, speech_regions(audio))

    def region_of(self, t: float, is_end: bool = False) -> int:
        """Which region a time on the joined clock falls in; a region's own end belongs to it."""
        i = (bisect.bisect_left if is_end else bisect.bisect_right)(self._ends, t)
        return min(i, len(self._ends) - 1)

    def original_time(self, t: float, region: int | None = None, is_end: bool = False) -> float:
        """A time on the joined clock, on the original audio's clock."""
        if not self._shifts:
            return t
        shift = self._shifts[self.region_of(t, is_end) if region is None else region]
        return round(t + shift, 3)  # to the millisecond: no 6.159999999999999

    def after(self, t: float, overlap: float = 0.0) -> list[tuple[float, float]]:
        """The regions (on the original clock) of what follows `t` on the joined clock, from
        `overlap` seconds before it (not before its region's start)."""
        if not self.regions:
            return []
        i = self.region_of(t)
        start = max(self.regions[i][0], self.original_time(t, i) - overlap)
        return [(start, self.regions[i][1])] * bool(start < self.regions[i][1]) + self.regions[i + 1:]

    def restore(self, segments: list[Segment], split: bool = False) -> list[Segment]:
        """Segments timed on the joined clock, retimed onto the original one.

        As faster-whisper does: both ends of a word move with the region
        holding its middle, so no word straddles a cut, and a segment with
        words spans exactly its words; unless the word reaches into the speech
        of a later region (past its leading pad): then it is that region's.
        Whisper's words follow each other without gaps where the text has no
        punctuation, so the pause at a join goes to a neighbour, mostly the
        word after it, which then starts up to 0.7 s early (base, sequential:
        the middle of "feels" before the join, the word 2 s off its voice).
        A word's ends stay inside its region (what was cut out is no speech).
        `split`: a segment is cut where its words go from one region to another
        (no segment spans what was cut out, and joined stretches far apart come
        back apart).
        """
        if not self.regions:
            return segments
        out = []
        reach = SETTINGS["speech_pad_ms"] / 1000
        region = 0
        for s in segments:
            runs: list[list[Word]] = []
            last = None
            for w in s.words:
                # Never back into a region before the previous word's: the words stay in order.
                region = max(self.region_of((w.start + w.end) / 2), self.region_of(w.end - reach), region)
                lo, hi = self.regions[region]
                if not runs or (split and region != last):
                    runs.append([])
                runs[-1].append(replace(w, start=min(max(self.original_time(w.start, region), lo), hi),
                                        end=max(min(self.original_time(w.end, region), hi), lo)))
                last = region
            for words in runs:
                text = s.text if len(runs) == 1 else "".join(w.text for w in words)
                out.append(replace(s, start=words[0].start, end=words[-1].end, words=words, text=text))
            if not runs:
                out.append(replace(s, start=self.original_time(s.start),
                                   end=self.original_time(s.end, is_end=True), words=[]))
        return out


def pack_windows(regions: list[tuple[float, float]], max_seconds: float = 30.0,
                 audio: np.ndarray | None = None) -> list[list[tuple[float, float]]]:
    """Consecutive speech regions grouped into windows of at most `max_seconds` of joined speech.

    Whisper hears 30 s at a time, so a batched decoder packs the regions into such windows, each
    decoded on its own. Regions keep their order and are never reordered across windows; one
    longer than `max_seconds` (speech without a pause) is cut into pieces: in its quietest
    moments when the `audio` is given (so no word is cut in two), else every `max_seconds`.
    """
    windows: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    filled = 0.0
    for piece in _pieces(regions, max_seconds, audio):
        length = piece[1] - piece[0]
        if current and filled + length > max_seconds + 1e-9:  # float sums: 10 + 20 may be 30.000001
            windows.append(current)
            current, filled = [], 0.0
        current.append(piece)
        filled += length
    if current:
        windows.append(current)
    return windows


def _pieces(regions: list[tuple[float, float]], max_seconds: float,
            audio: np.ndarray | None) -> list[tuple[float, float]]:
    """The regions, each longer than `max_seconds` cut into consecutive pieces no longer."""
    from .splitting import split_at_silences  # splitting needs media, which needs this module

    out = []
    for start, end in regions:
        if end - start <= max_seconds + 1e-9:
            out.append((start, end))
        elif audio is not None:
            first = round(start * SAMPLE_RATE)
            # The latest of equally quiet cuts: a window of digital silence runs its whole length.
            for a, b in split_at_silences(audio[first:round(end * SAMPLE_RATE)], max_seconds, latest=True):
                out.append((start + a / SAMPLE_RATE, min(end, start + b / SAMPLE_RATE)))
        else:
            while end - start > max_seconds + 1e-9:
                out.append((start, start + max_seconds))
                start += max_seconds
            out.append((start, end))
    return out
