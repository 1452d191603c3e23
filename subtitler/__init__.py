"""subtitler: subtitles for videos, with Whisper.

    import subtitler
    result = subtitler.subtitle("clip.mp4", formats=["srt", "vtt"])
    print(result.outputs, result.transcript.text)
"""

# First: the modules below (the plugin contract's messages) read it.
__version__ = "0.3.0"

from .batch import Batch  # noqa: E402
from .cache import Cache  # noqa: E402
from .errors import SubtitlerError  # noqa: E402
from .events import Events  # noqa: E402
from .inputs import Input, find_inputs  # noqa: E402
from .job import Job, Outcome  # noqa: E402
from .options import DecodeOptions  # noqa: E402
from .pipeline import Result, Subtitler, subtitle, transcribe  # noqa: E402
from .specs import EngineSpec, JobSpec, OutputSpec, RenderSpec, TranscriptionSpec, VideoSpec  # noqa: E402
from .transcript import Segment, Source, Transcript, Word  # noqa: E402

__all__ = [
    "Batch", "Cache", "DecodeOptions", "EngineSpec", "Events", "Input", "Job", "JobSpec", "Outcome",
    "OutputSpec", "RenderSpec", "Result", "Segment", "Source", "Subtitler", "SubtitlerError",
    "Transcript", "TranscriptionSpec", "VideoSpec", "Word", "find_inputs", "subtitle", "transcribe",
    "__version__",
]
