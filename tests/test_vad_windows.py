"""pack_windows: VAD speech regions packed into ~30 s windows for batched decoding (no engine)."""

from __future__ import annotations

import pytest

from subtitler.plugin import pack_windows


def joined(window: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in window)


def test_regions_fill_windows_in_order_up_to_the_limit():
    regions = [(0.0, 10.0), (11.0, 21.0), (22.0, 32.0), (40.0, 45.0)]
    windows = pack_windows(regions, 30.0)
    assert windows == [[(0.0, 10.0), (11.0, 21.0), (22.0, 32.0)], [(40.0, 45.0)]]


def test_a_region_that_would_overflow_starts_the_next_window():
    windows = pack_windows([(0.0, 20.0), (21.0, 32.0), (33.0, 40.0)], 30.0)
    assert windows == [[(0.0, 20.0)], [(21.0, 32.0), (33.0, 40.0)]]


def test_a_long_region_is_cut_into_pieces_of_the_limit():
    windows = pack_windows([(5.0, 75.0)], 30.0)
    assert windows == [[(5.0, 35.0)], [(35.0, 65.0)], [(65.0, 75.0)]]


def test_the_piece_left_of_a_long_region_shares_a_window_with_what_follows():
    windows = pack_windows([(0.0, 40.0), (41.0, 50.0)], 30.0)
    assert windows == [[(0.0, 30.0)], [(30.0, 40.0), (41.0, 50.0)]]


def test_every_second_of_speech_is_kept_once_and_no_window_is_over():
    # Irregular regions, as a VAD returns them: nothing lost, nothing doubled, nothing reordered.
    regions, t = [], 0.0
    for k in range(60):
        length = 0.3 + (k * 7.3) % 41
        regions.append((round(t, 3), round(t + length, 3)))
        t += length + 0.5 + (k % 3)
    windows = pack_windows(regions, 30.0)
    flat = [r for w in windows for r in w]
    assert all(a < b for a, b in flat)
    assert all(flat[i][1] <= flat[i + 1][0] for i in range(len(flat) - 1))
    assert sum(b - a for a, b in flat) == pytest.approx(sum(b - a for a, b in regions))
    assert max(joined(w) for w in windows) <= 30.0 + 1e-6
    # Packed, not one region per window: two neighbours together would have fitted in one.
    assert all(joined(w) + (windows[i + 1][0][1] - windows[i + 1][0][0]) > 30.0
               for i, w in enumerate(windows[:-1]))


def test_plain_audio_without_vad_is_cut_into_consecutive_windows():
    assert pack_windows([(0.0, 70.5)]) == [[(0.0, 30.0)], [(30.0, 60.0)], [(60.0, 70.5)]]


def test_no_speech_no_windows():
    assert pack_windows([]) == []


def test_given_the_audio_a_long_region_is_cut_in_its_quiet_moments():
    """Speech without a VAD pause longer than a window: cut where it is quietest (a breath),
    not at 30 s exactly, so no word is cut in two."""
    import numpy as np

    from subtitler.media import SAMPLE_RATE

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(70 * SAMPLE_RATE) * 0.3).astype(np.float32)
    for quiet in (22.0, 47.0):  # two breaths, 0.4 s each
        audio[int(quiet * SAMPLE_RATE):int((quiet + 0.4) * SAMPLE_RATE)] *= 0.001
    windows = pack_windows([(0.0, 70.0)], 30.0, audio)
    cuts = [w[-1][1] for w in windows[:-1]]
    assert len(cuts) == 2 and all(q < c < q + 0.4 for q, c in zip((22.0, 47.0), cuts, strict=True))
    assert windows[-1][-1][1] == 70.0
    assert all(joined(w) <= 30.0 for w in windows)


def test_what_follows_a_time_on_the_joined_clock_and_segments_split_at_joins():
    import numpy as np

    from subtitler.transcript import Segment, Word
    from subtitler.vad import SpeechOnly

    regions = [(10.0, 20.0), (50.0, 55.0), (100.0, 130.0)]
    speech = SpeechOnly.cut(np.zeros(200 * 16000, np.float32), regions)
    # Joined clock: 0-10 is 10-20, 10-15 is 50-55, 15-45 is 100-130.
    assert speech.after(12.0) == [(52.0, 55.0), (100.0, 130.0)]
    assert speech.after(12.0, overlap=0.5) == [(51.5, 55.0), (100.0, 130.0)]
    assert speech.after(10.2, overlap=0.5) == [(50.0, 55.0), (100.0, 130.0)]  # not before its region
    across = Segment(9.0, 16.0, " a b c",
                     [Word(9.0, 9.5, " a"), Word(11.0, 11.5, " b"), Word(15.5, 16.0, " c")])
    whole, = speech.restore([across])
    assert (whole.start, whole.end, whole.text) == (19.0, 101.0, " a b c")
    parts = speech.restore([across], split=True)
    assert [(s.start, s.end, s.text) for s in parts] == [
        (19.0, 19.5, " a"), (51.0, 51.5, " b"), (100.5, 101.0, " c")]


def test_a_word_reaching_into_the_next_regions_speech_is_that_regions():
    """Whisper's words follow each other without gaps where its text has no punctuation: the pause
    at a join goes to the word after it, which starts early, its middle before the join (base,
    sequential, voices.mp4: " feels" 0.7 s early, then put 2 s off its voice, at the end of the
    utterance before). A word reaching past the next region's leading pad is that region's."""
    import numpy as np

    from subtitler.transcript import Segment, Word
    from subtitler.vad import SETTINGS, SpeechOnly

    pad = SETTINGS["speech_pad_ms"] / 1000
    regions = [(0.82, 2.89), (4.25, 7.72)]
    speech = SpeechOnly.cut(np.zeros(8 * 16000, np.float32), regions)
    # Joined clock: the join at 2.07; base's words as it timed them there.
    words = [Word(1.14, 1.50, " meters"), Word(1.50, 2.38, " feels"), Word(2.38, 2.74, " like")]
    restored, = speech.restore([Segment(1.14, 2.74, " meters feels like", words)])
    assert [(w.start, w.end) for w in restored.words] == [(1.96, 2.32), (4.25, 4.56), (4.56, 4.92)]
    # A last word whose end runs into the next region's pad only (no further) stays where it was.
    late = [Word(1.50, 2.07 + pad - 0.02, " meters")]
    kept, = speech.restore([Segment(1.50, 2.25, " meters", late)])
    assert (kept.words[0].start, kept.words[0].end) == (2.32, 2.89)
