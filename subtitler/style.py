"""How subtitles look: font, size, colours, outline or box, margins, position.

Sizes are pixels of the video. The ASS writer sets PlayResX/PlayResY to the
video's size, so libass draws them at exactly that size (with libass's
default 384x288 reference, sizes come out tiny or huge). A size left as None
scales with the picture height.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# When the picture size is unknown (audio input, old transcript): full HD.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1920, 1080


@dataclass(frozen=True)
class Style:
    font: str = "DejaVu Sans"
    # Pixels; None: 5.5% of the picture height (about 59 px at 1080p), a common broadcast size.
    size: int | None = None
    # Colours as #RRGGBB, with an optional alpha byte #RRGGBBAA (00 opaque).
    colour: str = "#FFFFFF"
    outline_colour: str = "#000000"
    # The box's colour (with `box`), else the shadow's; opaque unless given an alpha.
    back_colour: str = "#000000"
    # Outline thickness in pixels; None: 7% of the font size.
    outline: float | None = None
    shadow: float = 0.0
    # An opaque box behind the text instead of an outline.
    box: bool = False
    # Pixels from the bottom (or top) edge; None: 5% of the picture height.
    margin_v: int | None = None
    # Pixels from the left and right edges; None: 5% of the picture width.
    margin_h: int | None = None
    position: str = "bottom"  # bottom | top
    bold: bool = False
    # Word timing in the files (highlight.py): SRT/WebVTT one cue per word with it underlined;
    # ASS \k karaoke tags; WebVTT inline word timestamps.
    highlight_words: bool = False
    karaoke: bool = False
    word_timing: bool = False

    def replace(self, **changes: object) -> Style:
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self  # type: ignore[arg-type]

    def resolved(self, width: int, height: int) -> Style:
        """A copy with every automatic value computed for a picture of this size."""
        size = self.size or max(12, round(height * 0.055))
        return dataclasses.replace(
            self,
            size=size,
            outline=self.outline if self.outline is not None else max(1.0, round(size * 0.07, 1)),
            margin_v=self.margin_v if self.margin_v is not None else round(height * 0.05),
            margin_h=self.margin_h if self.margin_h is not None else round(width * 0.05),
        )


def parse_colour(text: str) -> tuple[int, int, int, int]:
    """'#RRGGBB' or '#RRGGBBAA' -> (r, g, b, a), a = 0 opaque .. 255 transparent."""
    value = text.strip().lstrip("#")
    if len(value) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"colour must look like #RRGGBB or #RRGGBBAA, not {text!r}")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    a = int(value[6:8], 16) if len(value) == 8 else 0
    return r, g, b, a
