"""The yt-dlp plugin: `--use-postprocessor "Subtitler:model=base;format=srt,vtt"`.

yt-dlp's plugin discovery imports this module (the `yt_dlp_plugins` namespace package, found on
sys.path) and takes the public classes defined here whose names end in `PP`; the work is in
yt_dlp_subtitler.
"""

from yt_dlp_subtitler import SubtitlerPostProcessor

__all__ = ["SubtitlerPP"]


class SubtitlerPP(SubtitlerPostProcessor):
    """Subtitles each downloaded video with subtitler (see yt_dlp_subtitler)."""
