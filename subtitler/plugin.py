"""What a backend plugin may use: the contract, and the core's helpers for engines.

A plugin imports from here only, so the core can move its modules around
without breaking it:

    from subtitler.plugin import API_VERSION, Backend, DecodeOptions, Report, Transcript

    class MyBackend(Backend):
        api_version = API_VERSION
        name = "mine"
        def transcribe(self, audio, options, report, prepared=None) -> Transcript: ...

See README.md, "Writing a backend plugin", and `subtitler.testing` for tests.
"""

from .backends import API_VERSION, Backend, BackendSettings, Setting, missing
from .batching import WINDOW, decode_in_rounds, decode_pieces, first_window, rest_after
from .errors import (
    BackendUnavailable,
    RemoteAuthError,
    RemoteError,
    RemoteJobFailed,
    RemoteNotFound,
    RemoteNoTimings,
    RemoteTimeout,
    RemoteTooLarge,
    SubtitlerError,
    UnsupportedOption,
)
from .events import Report
from .files import atomic_write
from .languages import language_code
from .media import SAMPLE_RATE
from .models import bundled_ct2_dir, cache_dir, load_failure, model_fingerprint, model_source
from .options import DecodeOptions, batch_size_for, check_english_only
from .remote import (
    DEFAULT_MAX_ANSWER,
    DEFAULT_UPLOAD_FORMAT,
    UPLOAD_FORMATS,
    ServiceClient,
    encode_audio,
)
from .specs import EngineSpec
from .splitting import split_at_silences, stitch
from .timestamps import Part, Split, split_at_timestamps
from .transcript import Segment, Transcript, Word
from .vad import SpeechOnly, pack_windows, speech_regions, vad_options
from .words import join_split_words

__all__ = [
    "API_VERSION", "atomic_write", "Backend", "BackendSettings", "BackendUnavailable", "batch_size_for",
    "bundled_ct2_dir", "cache_dir", "check_english_only", "decode_in_rounds", "decode_pieces",
    "DecodeOptions",
    "DEFAULT_MAX_ANSWER", "DEFAULT_UPLOAD_FORMAT", "encode_audio", "EngineSpec", "first_window", "rest_after",
    "join_split_words", "language_code", "load_failure", "missing", "model_fingerprint", "model_source",
    "pack_windows", "Part", "RemoteAuthError", "RemoteError", "RemoteJobFailed", "RemoteNotFound",
    "RemoteNoTimings", "RemoteTimeout", "RemoteTooLarge", "Report", "SAMPLE_RATE", "Segment",
    "ServiceClient", "Setting", "speech_regions", "SpeechOnly", "Split", "split_at_silences",
    "split_at_timestamps", "stitch", "SubtitlerError", "Transcript", "UnsupportedOption", "UPLOAD_FORMATS",
    "vad_options", "WINDOW", "Word",
]
