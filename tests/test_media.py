"""Media in: real ffmpeg on real files in many containers; clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from subtitler.errors import EmptyAudio, InputNotFound, NoAudioStream, NotMedia
from subtitler.media import SAMPLE_RATE, decode_audio, find_tools, probe

from .conftest import SAMPLE, ffmpeg

# Container -> ffmpeg arguments that make a 6 s clip of the sample in it.
CONTAINERS = {
    "mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
    "mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "libopus"],
    "mov": ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
    "webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
    "mp3": ["-vn", "-c:a", "libmp3lame"],
    "wav": ["-vn", "-c:a", "pcm_s16le"],
    "flac": ["-vn", "-c:a", "flac"],
    "m4a": ["-vn", "-c:a", "aac"],
}


@pytest.fixture(scope="module")
def containers(media_dir):
    out = {}
    for ext, args in CONTAINERS.items():
        path = media_dir / f"clip.{ext}"
        ffmpeg("-i", str(SAMPLE), "-t", "6", *args, str(path))
        out[ext] = path
    return out


@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_decodes_every_container_to_16k_mono(containers, ext):
    audio = decode_audio(containers[ext])
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(6.0, abs=0.1)
    # Real speech, not silence: the first sentence is loud somewhere in here.
    assert np.abs(audio.samples).max() > 0.1
    assert (audio.info.video is not None) == (ext in ("mp4", "mkv", "mov", "webm"))


def test_progress_reports_seconds(containers):
    seen, totals = [], set()
    decode_audio(containers["wav"], progress=lambda done, total: (seen.append(done), totals.add(total)))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(6.0, abs=0.05)
    assert all(abs(t - 6.0) < 0.05 for t in totals)  # the whole, from the probe
    assert len(seen) >= 6  # about one report per second of audio


def test_audio_stream_choice(media_dir):
    """Stream 0 is a tone, stream 1 is the speech: --audio-stream picks."""
    path = media_dir / "two_tracks.mkv"
    ffmpeg("-i", str(SAMPLE), "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
           "-map", "0:v", "-map", "1:a", "-map", "0:a", "-t", "6", "-c:v", "copy", "-c:a", "flac", str(path))
    info = probe(path)
    assert len(info.audio) == 2
    tone, speech = decode_audio(path, 0).samples, decode_audio(path, 1).samples
    spectrum = np.abs(np.fft.rfft(tone[:SAMPLE_RATE]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 Hz bins over 1 s
    assert not np.allclose(tone[: len(speech)], speech[: len(tone)])
    with pytest.raises(NoAudioStream, match="no audio stream 2"):
        decode_audio(path, 2)


def _picture_time_of_source_zero(path) -> float:
    """Where on `path`'s picture clock the sample's audio content at t=0 plays.

    Found from the audio itself: cross-correlate speech from the sample with
    the decoded audio (lag in samples), then add the stream's offset.
    """
    source = decode_audio(SAMPLE).samples
    audio = decode_audio(path)
    probe_at = 1 * SAMPLE_RATE  # a second of the first sentence
    needle = source[probe_at : probe_at + SAMPLE_RATE // 2]
    hay = audio.samples[: 4 * SAMPLE_RATE]
    scores = np.correlate(hay, needle, mode="valid")
    lag = (int(np.argmax(scores)) - probe_at) / SAMPLE_RATE
    return lag + audio.offset


def test_audio_starting_after_the_picture_stays_in_sync(media_dir):
    """Audio delayed by 2 s against the picture: its speech lands 2 s later on the picture clock."""
    path = media_dir / "late_audio.mp4"
    ffmpeg("-i", str(SAMPLE), "-itsoffset", "2", "-i", str(SAMPLE), "-map", "0:v", "-map", "1:a",
           "-c", "copy", str(path))
    assert decode_audio(path).offset > 1.5
    assert _picture_time_of_source_zero(path) == pytest.approx(2.0, abs=0.01)


def test_streams_with_nonzero_start_stay_in_sync(media_dir):
    """MPEG-TS starts its clock at ~1.4 s and the AAC priming puts audio 64 ms before the picture."""
    path = media_dir / "clip.ts"
    ffmpeg("-i", str(SAMPLE), "-t", "4", "-c", "copy", "-f", "mpegts", str(path))
    info = probe(path)
    assert info.start_time > 1.0
    assert _picture_time_of_source_zero(path) == pytest.approx(0.0, abs=0.01)


def test_probe_without_ffprobe_matches(monkeypatch, containers):
    """With only an ffmpeg binary (the imageio-ffmpeg case), probing still works."""
    with_ffprobe = probe(containers["mkv"])
    monkeypatch.setenv("SUBTITLER_FFPROBE", "")
    find_tools.cache_clear()
    try:
        assert find_tools().ffprobe is None
        fallback = probe(containers["mkv"])
        assert [a.index for a in fallback.audio] == [a.index for a in with_ffprobe.audio]
        assert fallback.video and fallback.video.width == with_ffprobe.video.width
        assert fallback.duration == pytest.approx(with_ffprobe.duration, abs=0.02)
        assert decode_audio(containers["mkv"]).duration == pytest.approx(6.0, abs=0.1)
        with pytest.raises(NotMedia):
            probe(SAMPLE.parent / "sample.reference.json")
    finally:
        monkeypatch.undo()
        find_tools.cache_clear()


def test_missing_file(tmp_path):
    with pytest.raises(InputNotFound, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_not_media(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(NotMedia, match="not a media file"):
        probe(path)


def test_no_audio_stream(media_dir):
    path = media_dir / "silent_film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:d=1", "-c:v", "libx264", "-preset", "ultrafast", str(path))
    with pytest.raises(NoAudioStream, match="no audio stream"):
        decode_audio(path)


def test_zero_length_audio(media_dir):
    path = media_dir / "empty_audio.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x90:d=1", "-f", "lavfi", "-i", "anullsrc=d=1",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
           "-frames:a", "0", str(path))
    assert len(probe(path).audio) == 1
    with pytest.raises(EmptyAudio, match="empty"):
        decode_audio(path)
