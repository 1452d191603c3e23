"""Subtitle style profiles: the numbers a cue must respect.

`netflix` follows Netflix's English Timed Text Style Guide and is the default.
Any value can be overridden (`Profile.replace`, or `--max-cps 20` etc. on the
command line). CJK text is measured in characters with narrower limits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    max_line_chars: int  # characters per line (CJK: per character, no spaces)
    max_lines: int
    min_duration: float  # seconds a cue stays on screen, at least...
    max_duration: float  # ...and at most
    max_cps: float  # reading speed: characters per second of display
    min_gap: float  # seconds between consecutive cues
    # A pause this long between words starts a new cue.
    pause: float = 0.6
    # Frames a cue starts before its speech (the frame rate's, else 25 fps); 0: with it.
    lead_in: int = 0
    # In- and out-times on the video's frame boundaries, the minimum gap in whole frames.
    snap_to_frames: bool = False
    # At most this many words on a line (openai-whisper's --max_words_per_line); None: no limit.
    max_words_per_line: int | None = None

    def __post_init__(self) -> None:
        if self.max_line_chars < 1 or self.max_lines < 1:
            raise ValueError("a profile needs at least one line of at least one character")
        if self.max_cps <= 0 or self.max_duration <= 0 or self.min_duration < 0 or self.min_gap < 0:
            raise ValueError("profile durations, gap and reading speed must be positive")

    def replace(self, **changes: object) -> Profile:
        """A copy with some values changed; None values are ignored."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self  # type: ignore[arg-type]

    @property
    def max_cue_chars(self) -> int:
        return self.max_line_chars * self.max_lines


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        # Netflix English: 42 x 2, 5/6 s to 7 s, 17 CPS (adults), 2 frames (83 ms) between cues.
        Profile("netflix", 42, 2, 0.833, 7.0, 17.0, 0.083),
        # BBC: 37 characters (68% of a 16:9 frame), 160-180 words a minute (about 15 CPS).
        Profile("bbc", 37, 2, 1.0, 7.0, 15.0, 0.08),
        # Subtitle Edit's default-like limits, for fast speech or personal use.
        Profile("relaxed", 50, 2, 0.5, 8.0, 25.0, 0.024),
        # Netflix Simplified Chinese: 16 characters a line, 9 characters a second.
        Profile("cjk", 16, 2, 0.833, 7.0, 9.0, 0.083),
    )
}
DEFAULT_PROFILE = "netflix"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})") from None
