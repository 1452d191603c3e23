"""Timing refinement (issue 16): cue in-times and word starts on the speech, frame snapping.

The references are forced alignments made without subtitler or Whisper: the sample's shipped by
pocketsphinx, voices.mp4's made by samples/make_voices.py the same way (samples/README.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from subtitler import DecodeOptions, Subtitler
from subtitler.cues import Cue, build_cues
from subtitler.media import decode_audio, probe
from subtitler.profiles import get_profile
from subtitler.timing import audio_energy, energy, finish_times, refine_transcript, refine_words
from subtitler.transcript import Segment, Source, Transcript, Word

from .accuracy import cue_start_errors, normalize, word_start_errors
from .conftest import ROOT

CLIPS = {"sample": ROOT / "samples" / "sample.mp4", "voices": ROOT / "samples" / "voices.mp4"}


@pytest.fixture(scope="module")
def heard(backends):
    """Each clip as each engine hears it without refinement, and the same refined: (before, after)."""
    out = {}
    for clip, path in CLIPS.items():
        loudness = energy(decode_audio(path).samples)
        for name, engine in backends.items():
            job = Subtitler(backend=name, engine=engine, cache=False,
                            options=DecodeOptions(refine_timing=False))
            before = job.transcribe(path)
            out[clip, name] = (before, refine_transcript(before, loudness))
    return out


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("name", ["faster-whisper", "whisper"])
def test_refined_timing_against_forced_alignment(heard, clip, name):
    reference = json.loads(CLIPS[clip].with_suffix(".reference.json").read_text())
    before, after = heard[clip, name]
    assert normalize(after.text) == normalize(before.text)  # the words (so the WER) are untouched
    cues_before = cue_start_errors(reference, before, build_cues(before))
    cues_after = cue_start_errors(reference, after, build_cues(after))
    share = sum(abs(e) <= 0.1 for e in cues_after) / len(cues_after)
    print(f"{clip} {name}: cue in-times within 100 ms {sum(abs(e) <= 0.1 for e in cues_before)}/"
          f"{len(cues_before)} -> {share:.2f}; words {word_start_errors(reference, before)} -> "
          f"{word_start_errors(reference, after)}")
    assert sum(abs(e) <= 0.1 for e in cues_before) / len(cues_before) < 0.95  # what the issue saw
    assert share >= 0.95
    hits, mean = word_start_errors(reference, after)
    hits0, mean0 = word_start_errors(reference, before)
    assert hits > hits0 + 0.2 and mean < mean0 - 0.04
    assert hits >= 0.80
    # The target (57.6 ms measured for faster-whisper on the sample, batched by default).
    assert mean < 0.060


def test_pipeline_refines_by_default(heard, backends):
    """The job refines every engine's times (the same as refine_transcript), unless told not to."""
    before, after = heard["voices", "faster-whisper"]
    job = Subtitler(backend="faster-whisper", engine=backends["faster-whisper"], cache=False)
    refined = job.transcribe(CLIPS["voices"])
    assert [(w.start, w.end) for w in refined.words] == [(w.start, w.end) for w in after.words]
    assert refined.meta["timing"] == "refined" and "timing" not in before.meta


def _noisy_speech(onsets: list[float], seconds: float = 6.0) -> np.ndarray:
    """Noise at -54 dBFS with a 0.4 s voiced burst (harmonics of 150 Hz) at each onset."""
    rng = np.random.default_rng(16)
    x = rng.normal(0, 0.002, round(seconds * 16000)).astype(np.float32)
    t = np.arange(round(0.4 * 16000)) / 16000
    burst = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) * 0.1
    for onset in onsets:
        a = round(onset * 16000)
        x[a:a + len(burst)] += burst.astype(np.float32)
    return x


def test_refine_words_moves_starts_onto_onsets():
    """Words Whisper put 0.3 s late, or 0.3 s early in the silence, start at their voice's onset."""
    onsets = [1.0, 2.5, 4.0]
    words = [Word(1.3, 1.4, " one"), Word(2.2, 2.9, " two"), Word(4.25, 4.4, " three")]
    refined = refine_words(words, energy(_noisy_speech(onsets)))
    assert [w.text for w in refined] == [w.text for w in words]
    for w, onset in zip(refined, onsets, strict=True):
        assert abs(w.start - onset) <= 0.03, refined
        assert abs(w.end - (onset + 0.4)) <= 0.05, refined


@pytest.mark.parametrize("fps", [24000 / 1001, 25.0, 30000 / 1001])
def test_snap_to_frames(fps):
    """Every time on a frame boundary, and at least 2 frames (Netflix) between cues."""
    rng = np.random.default_rng(7)
    times, at = [], 0.37
    for _ in range(200):
        start = at + rng.uniform(0.083, 0.5)
        end = start + rng.uniform(0.9, 5.0)
        times.append((start, end))
        at = end
    snapped = finish_times(times, 0.083, 7.0, lead_in_frames=2, fps=fps, media_end=at + 1)
    for (start, end), (a, b) in zip(snapped, times, strict=True):
        for t in (start, end):
            assert -1e-9 <= t - round(t * fps) / fps < 0.001  # the frame's start, to the ms above
        assert -0.5 / fps - 1e-9 <= a - start <= 2.5 / fps + 1e-9  # a lead-in where the gap allows
        assert -0.5 / fps - 1e-9 <= end - b <= 0.5 / fps + 1e-9 or b - end <= 2.5 / fps  # or kept the gap
    gaps = [round((b[0] - a[1]) * fps) for a, b in zip(snapped, snapped[1:], strict=False)]
    assert min(gaps) >= 2


def _transcript_json(folder, fps: float | None) -> str:
    words = [Word(0.61 + 1.3 * k, 1.4 + 1.3 * k, f" word{k}.") for k in range(8)]
    text = "".join(w.text for w in words)
    t = Transcript("en", 12.0, [Segment(words[0].start, words[-1].end, text, words)],
                   source=Source(input="clip.mp4", width=320, height=180, video_duration=12.0,
                                 media_duration=12.0, frame_rate=fps))
    path = folder / "clip.json"
    path.write_text(t.to_json())
    return str(path)


def test_cli_snap_to_frames_and_lead_in(tmp_path):
    """`--snap-to-frames --lead-in 2` on a saved transcript: frames of its video's rate (23.976)."""
    import srt

    saved = _transcript_json(tmp_path, 24000 / 1001)
    proc = subprocess.run([sys.executable, "-m", "subtitler", saved, "-f", "srt", "-o", str(tmp_path / "out"),
                           "--snap-to-frames", "--lead-in", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subs = list(srt.parse((tmp_path / "out" / "clip.srt").read_text()))
    fps = 24000 / 1001
    assert len(subs) == 8
    for k, s in enumerate(subs):
        for t in (s.start.total_seconds(), s.end.total_seconds()):
            assert -1e-9 <= t - round(t * fps) / fps < 0.001  # the frame's start, in milliseconds
        speech = 0.61 + 1.3 * k
        assert speech - 2.5 / fps <= s.start.total_seconds() <= speech - 1.5 / fps
    gaps = [(b.start - a.end).total_seconds() * fps for a, b in zip(subs, subs[1:], strict=False)]
    assert min(gaps) >= 2 - 0.05


def test_frame_rate_from_the_probe(tmp_path):
    from .conftest import ffmpeg

    clip = tmp_path / "ntsc.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=30000/1001:duration=1", "-c:v", "libx264",
           "-preset", "ultrafast", str(clip))
    assert math.isclose(probe(clip).video.frame_rate, 30000 / 1001)
    assert probe(ROOT / "samples" / "voices.mp4").video.frame_rate == 25.0


def test_profile_defaults_keep_layout():
    """Without --lead-in or --snap-to-frames the layout's times are left as they were."""
    words = [Word(0.5, 0.9, " Hello"), Word(1.0, 1.6, " there.")]
    t = Transcript("en", 3.0, [Segment(0.5, 1.6, "Hello there.", words)], source=Source(frame_rate=25.0))
    assert build_cues(t) == [Cue(0.5, 1.6, "Hello there.")]
    snapped = build_cues(t, get_profile("netflix").replace(snap_to_frames=True))
    assert snapped == [Cue(0.52, 1.6, "Hello there.")]


def test_energy_of_pieces_is_that_of_the_whole():
    """A long input is read a piece at a time: its energy frames are those of the whole audio."""
    x = _noisy_speech([0.5, 2.0], seconds=3.0)
    pieces = [x[:12345], x[12345:12400], x[12400:40001], x[40001:]]
    assert np.allclose(audio_energy(pieces), energy(x))


@pytest.mark.parametrize(("model", "moved"), [("tiny.en", -0.12), ("base", 0.05), ("large-v3", 0.0)])
def test_inner_words_move_by_their_models_lag(model, moved):
    """Inside running speech (one steady voiced stretch: no dip to snap to) a word moves by how late
    its model's times are measured to be; a model not measured keeps its own."""
    x = _noisy_speech([1.0 + 0.4 * k for k in range(5)])  # 2 s of speech without a pause
    words = [Word(1.0, 1.6, " one"), Word(1.6, 2.2, " two"), Word(2.2, 3.0, " three")]
    t = Transcript("en", 6.0, [Segment(1.0, 3.0, "one two three", words)], meta={"model": model})
    refined = refine_transcript(t, energy(x)).words
    assert abs(refined[0].start - 1.0) <= 0.03  # the onset
    assert [round(w.start - v.start, 2) for w, v in zip(refined[1:], words[1:], strict=True)] == [moved] * 2


def test_a_word_given_the_pause_before_it_starts_at_its_onset():
    """Where Whisper's words follow each other without gaps (no punctuation), a model early after
    pauses (base) gives the pause to the word after it, which starts in the speech before, too far
    from the onset to be near it (base on the sample: " is" 0.3 s early). The word whose time
    covers the quiet and the onset starts there."""
    x = _noisy_speech([1.0, 1.4, 2.0])  # speech 1.0-1.8, quiet, speech from 2.0
    words = [Word(1.0, 1.45, " one"), Word(1.45, 2.3, " two")]
    t = Transcript("en", 6.0, [Segment(1.0, 2.3, "one two", words)], meta={"model": "base"})
    refined = refine_transcript(t, energy(x)).words
    assert abs(refined[0].start - 1.0) <= 0.03
    assert abs(refined[1].start - 2.0) <= 0.03, refined


@pytest.mark.engine
def test_base_keeps_each_utterances_first_word_with_its_utterance():
    """faster-whisper base, one window at a time, on voices.mp4: its words follow each other without
    gaps (no punctuation), and the first word of each utterance after a voice-activity join started
    early enough to be put at the end of the utterance before, 2 s off (2/6 cue in-times)."""
    from subtitler.backends import load_backend

    reference = json.loads(CLIPS["voices"].with_suffix(".reference.json").read_text())
    job = Subtitler(backend="faster-whisper", engine=load_backend("faster-whisper", "base"), cache=False,
                    options=DecodeOptions(batch_size=1))
    refined = job.transcribe(CLIPS["voices"])
    errors = cue_start_errors(reference, refined, build_cues(refined))
    hits, mean = word_start_errors(reference, refined)
    print(f"voices, faster-whisper base, sequential: cue in-times {errors}, words {hits:.2f}, {mean:.3f} s")
    assert all(abs(e) <= 0.1 for e in errors)
    assert hits >= 0.8 and mean < 0.060
