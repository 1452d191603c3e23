"""subtitler: subtitles for videos, with Whisper.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])
    print(result.outputs, result.transcript.text)
"""

from .errors import SubtitlerError
from .options import DecodeOptions
from .pipeline import Result, Subtitler, subtitle, transcribe
from .transcript import Segment, Transcript, Word

__version__ = "0.1.0"

__all__ = [
    "DecodeOptions", "Result", "Segment", "Subtitler", "SubtitlerError", "Transcript", "Word",
    "subtitle", "transcribe", "__version__",
]
