"""Silence, noise and music give no subtitles; speech still comes through, on time.

The three non-speech inputs are made with real ffmpeg (lavfi sources), 60 s
each, and go through the same audio decoding as any input. Without VAD,
tiny.en invents "You You" on digital silence (both engines); with it, the
decoder is never even asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from subtitler.cleanup import collapse_repetitions
from subtitler.events import Report
from subtitler.media import decode_audio
from subtitler.options import DecodeOptions
from subtitler.transcript import Segment, Transcript, Word
from subtitler.vad import SpeechOnly, speech_regions
from tests.accuracy import timing_hits, wer
from tests.conftest import ffmpeg

BACKENDS = ("faster-whisper", "whisper")
SAMPLE_RATE = 16000

# A melody of harmonic notes, a new pitch every 0.5 s, each decaying like a plucked
# string, over a sustained two-note bass: tonal and rhythmic, like music, with no voice.
_NOTE = "220*pow(2,trunc(mod(2*t,8))*2/12)"
_MUSIC = (f"exp(-3*mod(t,0.5))*(0.25*sin(2*PI*{_NOTE}*t)+0.12*sin(4*PI*{_NOTE}*t)"
          f"+0.06*sin(6*PI*{_NOTE}*t))+0.08*sin(2*PI*110*t)+0.06*sin(2*PI*165*t)")
SOURCES = {
    "silence": "anullsrc=r=16000:cl=mono",
    "noise": "anoisesrc=r=16000:color=pink:amplitude=0.2:seed=1",
    "music": f"aevalsrc='{_MUSIC}':s=16000:c=mono",
}


@pytest.fixture(scope="module")
def no_speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """60 s of each non-speech input, as 16 kHz mono WAV decoded the usual way."""
    folder = tmp_path_factory.mktemp("no-speech")
    audio = {}
    for name, source in SOURCES.items():
        path = folder / f"{name}.wav"
        ffmpeg("-f", "lavfi", "-i", source, "-t", "60", "-ac", "1", "-ar", "16000", str(path))
        audio[name] = decode_audio(path).samples
    return audio


def test_inputs_are_what_they_claim(no_speech) -> None:
    for name, samples in no_speech.items():
        assert len(samples) == 60 * SAMPLE_RATE, name
    assert not np.any(no_speech["silence"])
    # Loud enough that a detector could be fooled: not near-silence in disguise.
    assert np.sqrt(np.mean(no_speech["noise"] ** 2)) > 0.03
    assert np.sqrt(np.mean(no_speech["music"] ** 2)) > 0.05


@pytest.mark.parametrize("kind", SOURCES)
def test_vad_finds_no_speech(no_speech, kind) -> None:
    assert speech_regions(no_speech[kind]) == []


@pytest.mark.slow
@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("name", BACKENDS)
def test_no_speech_gives_no_words(backends, no_speech, name, kind) -> None:
    t = backends[name].transcribe(no_speech[kind], DecodeOptions(), Report())
    assert t.segments == [] and t.words == [] and t.text == ""
    assert t.language == "en"  # English-only tiny.en
    assert t.duration == pytest.approx(60.0)


def test_vad_finds_the_sample_sentences(sample_audio, reference) -> None:
    """One region per spoken sentence: the 1 s pauses between them split it."""
    regions = speech_regions(sample_audio.samples)
    assert len(regions) == len(reference["clips"])
    for (start, end), clip in zip(regions, reference["clips"], strict=True):
        assert clip["start"] - 0.3 <= start and end <= clip["end"] + 0.3


def test_joined_speech_maps_back_to_the_original_clock() -> None:
    audio = np.arange(10 * SAMPLE_RATE, dtype=np.float32)
    speech = SpeechOnly.cut(audio, [(1.0, 2.5), (4.0, 5.0), (8.0, 10.0)])
    # Joined: [0, 1.5) is 1.0-2.5, [1.5, 2.5) is 4.0-5.0, [2.5, 4.5) is 8.0-10.0.
    assert len(speech.samples) == int(4.5 * SAMPLE_RATE)
    assert speech.samples[int(1.5 * SAMPLE_RATE)] == 4.0 * SAMPLE_RATE
    joined = (0.0, 1.2, 1.5, 2.0, 2.5, 4.5)
    assert [speech.original_time(t) for t in joined] == [1.0, 2.2, 4.0, 4.5, 8.0, 10.0]
    assert speech.original_time(1.5, is_end=True) == 2.5  # an end at a cut closes the region before
    words = [Word(1.2, 1.4, " a"), Word(1.45, 1.7, " b"), Word(1.6, 2.0, " c")]
    (s,) = speech.restore([Segment(1.0, 2.2, " a b c", words)])
    # " b" sits mostly after the cut, so it moves with the second region, both ends; its start,
    # before the cut, stays in its region (what was cut out is not speech).
    assert [(w.start, w.end) for w in s.words] == [(2.2, 2.4), (4.0, 4.2), (4.1, 4.5)]
    assert (s.start, s.end) == (2.2, 4.5)
    (bare,) = speech.restore([Segment(1.0, 1.5, " no words")])
    assert (bare.start, bare.end) == (2.0, 2.5)


@contextmanager
def decoder_calls(backend) -> Iterator[list[int]]:
    """Counts the engine's audio-window decodes while the block runs."""
    calls: list[int] = []
    if backend.name == "whisper":
        model, attr = backend.model, "decode"  # whisper.transcribe's per-window call
    else:
        model, attr = backend.model, "encode"  # faster-whisper encodes each window it decodes
    real = getattr(model, attr)

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    setattr(model, attr, counting)
    try:
        yield calls
    finally:
        delattr(model, attr)  # the class's own method again


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_vad_reaches_engine(backends, no_speech, name) -> None:
    """vad=True: silence never reaches the decoder; vad=False: it does (and may be 'heard')."""
    silence = no_speech["silence"][: 5 * SAMPLE_RATE]
    with decoder_calls(backends[name]) as calls:
        backends[name].transcribe(silence, DecodeOptions(), Report())
    assert calls == []
    with decoder_calls(backends[name]) as calls:
        backends[name].transcribe(silence, DecodeOptions(vad=False), Report())
    assert calls


# Speech survives VAD: test_end_to_end.py::test_accuracy_on_real_speech transcribes the sample with
# the default options, VAD on, and holds it to the same word error rate and timing thresholds.


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_speech_after_music_keeps_absolute_times(backends, no_speech, sample_audio, reference, name) -> None:
    """20 s of music, then the sample: the music is skipped and every time stays on the file's clock."""
    lead = 20.0
    audio = np.concatenate([no_speech["music"][: int(lead * SAMPLE_RATE)], sample_audio.samples])
    t = backends[name].transcribe(audio, DecodeOptions(), Report())
    shifted = {**reference, "words": [{**w, "start": w["start"] + lead} for w in reference["words"]]}
    assert t.words and t.words[0].start >= lead
    assert wer(reference, t) <= 0.10
    assert timing_hits(shifted, t) >= 0.9


@pytest.mark.slow
def test_no_speech_file_gives_empty_valid_subtitles(fw_backend, media_dir: Path) -> None:
    """Through the whole pipeline: a file of music writes subtitle files with no cues, and warns."""
    import srt
    import webvtt

    from subtitler.pipeline import Subtitler

    clip = media_dir / "music-only.wav"
    ffmpeg("-f", "lavfi", "-i", SOURCES["music"], "-t", "20", "-ac", "1", "-ar", "16000", str(clip))
    warned: list[str] = []
    pipeline = Subtitler(backend="faster-whisper", formats=("srt", "vtt"), output_dir=media_dir / "out",
                         warn=warned.append, engine=fw_backend)  # the session's loaded model
    result = pipeline.subtitle(clip)
    assert len(warned) == 1 and "no speech found" in warned[0]
    srt_path, vtt_path = result.outputs
    assert list(srt.parse(srt_path.read_text(encoding="utf-8"))) == []
    assert list(webvtt.read(str(vtt_path))) == []
    assert result.transcript.segments == []


def _loops(t: Transcript) -> int:
    """Phrases (up to 16 words) said 3+ times in a row in a segment, plus repeated segments."""
    found = 0
    keys = []
    for segment in t.segments:
        words = [w.text.strip(" ,.!?").lower() for w in segment.words]
        for n in range(1, 17):
            found += sum(words[i:i + n] == words[i + n:i + 2 * n] == words[i + 2 * n:i + 3 * n]
                         for i in range(len(words) - 3 * n + 1))
        keys.append(" ".join(words))
    return found + sum(a == b for a, b in zip(keys, keys[1:], strict=False))


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_real_repetition_loop_is_collapsed(backends, no_speech, name) -> None:
    """With every guard off, tiny.en loops on pink noise; the repetition guard undoes it."""
    # One window after another, each prompted with the last: how Whisper loops (batched windows,
    # unprompted, did not on this noise).
    unguarded = DecodeOptions(vad=False, no_speech_threshold=None, logprob_threshold=None,
                              compression_ratio_threshold=None, batch_size=1)
    t = backends[name].transcribe(no_speech["noise"], unguarded, Report())
    assert _loops(t), f"expected a loop from {name}, got {t.text[:200]!r}"
    cleaned = collapse_repetitions(t)
    assert _loops(cleaned) == 0
    # openai-whisper repeats a whole segment: the copy goes. faster-whisper squeezes each 198-word
    # loop into 0.4 s: even its first occurrence is said at 200 characters a second, so the guard
    # drops it whole (noise, after all, says nothing).
    assert len(cleaned.words) <= len(t.words) / 2
    assert cleaned.meta["repetitions_removed"]
