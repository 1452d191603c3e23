"""subtitler: subtitles for videos, with Whisper.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])
    print(result.outputs, result.transcript.text)
"""

from .batch import Batch, Outcome
from .cache import Cache
from .errors import SubtitlerError
from .inputs import Input, find_inputs
from .options import DecodeOptions
from .pipeline import Result, Subtitler, subtitle, transcribe
from .transcript import Segment, Transcript, Word

__version__ = "0.2.0"

__all__ = [
    "Batch", "Cache", "DecodeOptions", "Input", "Outcome", "Result", "Segment", "Subtitler",
    "SubtitlerError", "Transcript", "Word", "find_inputs", "subtitle", "transcribe", "__version__",
]
