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
