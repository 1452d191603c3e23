"""Decoding options: the names Tiyaro's Whisper API uses, openai-whisper's defaults.

Plus `vad`, subtitler's own: voice activity detection before decoding, on by default.

One set of options for every engine, so a command line or config file means
the same thing whichever backend runs it. Each backend maps them onto its
engine and refuses, with `UnsupportedOption`, what it cannot honour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import UnsupportedOption
from .languages import language_code

TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class DecodeOptions:
    # None: detect the spoken language.
    language: str | None = None
    task: str = "transcribe"
    temperature: float = 0.0
    # Added to the temperature on each fallback; None disables fallback.
    temperature_increment_on_fallback: float | None = 0.2
    # None or 1: greedy decoding.
    beam_size: int | None = 5
    best_of: int | None = 5
    patience: float | None = None
    # None: simple length normalisation (openai-whisper's meaning).
    length_penalty: float | None = None
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    initial_prompt: str | None = None
    # Comma-separated token ids; "-1" means the model's usual non-speech symbols.
    suppress_tokens: str = "-1"
    # subtitler's own option, not one of Tiyaro's: decode only the regions a
    # voice activity detector finds speech in, so silence and music get no
    # invented text (see subtitler.vad).
    vad: bool = True
    # subtitler's own too: how many ~30 s windows of speech a local engine decodes at once.
    # 1: one after another, each conditioned on the last (Whisper's own way); more: batched
    # (no conditioning across windows; faster on long files and on a GPU); None: the engine
    # picks by device and length (`batch_size_for`).
    batch_size: int | None = None
    # subtitler's own, done in the core for every engine: word and cue times moved onto where the
    # speech starts and stops (timing.py).
    refine_timing: bool = True

    def __post_init__(self) -> None:
        if self.language is not None:
            code = language_code(self.language)
            if code is None:
                raise UnsupportedOption(
                    f"unknown language {self.language!r} (give a code like 'en' or a name)"
                )
            object.__setattr__(self, "language", code)  # frozen: normalise once, here
        if self.task not in TASKS:
            raise UnsupportedOption(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.beam_size is not None and self.beam_size < 1:
            raise UnsupportedOption("beam_size must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise UnsupportedOption("batch_size must be at least 1 (or none: the engine picks)")
        if self.best_of is not None and self.best_of < 1:
            raise UnsupportedOption("best_of must be at least 1")
        if not 0.0 <= self.temperature <= 1.0:
            raise UnsupportedOption("temperature must be between 0 and 1")
        if self.temperature_increment_on_fallback is not None and self.temperature_increment_on_fallback <= 0:
            raise UnsupportedOption("temperature_increment_on_fallback must be positive (or None)")
        if self.patience is not None and not self.greedy and self.patience <= 0:
            raise UnsupportedOption("patience must be positive")
        # openai-whisper accepts only 0..1 and would fail mid-run; refuse it up front for every engine.
        if self.length_penalty is not None and not 0.0 <= self.length_penalty <= 1.0:
            raise UnsupportedOption("length_penalty must be between 0 and 1 (or none)")
        if self.patience is not None and self.greedy:
            raise UnsupportedOption("patience needs beam search (beam_size > 1)")
        self.suppress_token_ids()  # validates the string

    @property
    def greedy(self) -> bool:
        return self.beam_size is None or self.beam_size == 1

    def temperatures(self) -> tuple[float, ...]:
        """The fallback schedule, computed exactly as openai-whisper's CLI does."""
        inc = self.temperature_increment_on_fallback
        if inc is None:
            return (self.temperature,)
        temps = []
        t = self.temperature
        while t <= 1.0 + 1e-6:
            temps.append(round(t, 6))
            t += inc
        return tuple(temps)

    def decode_failed(self, compression_ratio: float, avg_logprob: float) -> bool:
        """Whisper's test of a decode to try again at a higher temperature: too repetitive (a
        loop) or too improbable."""
        limit = self.compression_ratio_threshold
        loop = limit is not None and compression_ratio > limit
        return loop or (self.logprob_threshold is not None and avg_logprob < self.logprob_threshold)

    def likely_silence(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """Whisper's test of a failed decode that is silence, not worth another temperature:
        likely no speech, and improbable text."""
        return (self.no_speech_threshold is not None and no_speech_prob > self.no_speech_threshold
                and self.logprob_threshold is not None and avg_logprob < self.logprob_threshold)

    def suppress_token_ids(self) -> list[int]:
        text = self.suppress_tokens.strip()
        if not text:
            return []
        try:
            return [int(t) for t in text.split(",")]
        except ValueError:
            raise UnsupportedOption(
                f"suppress_tokens must be comma-separated token ids, not {self.suppress_tokens!r}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults."""
        default = DecodeOptions()
        return {k: v for k, v in asdict(self).items() if getattr(default, k) != v}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# Options the core carries out whatever the engine: no backend needs to support them.
CORE_OPTIONS = frozenset({"refine_timing"})


def check_english_only(model: str, multilingual: bool, options: DecodeOptions) -> None:
    """An English-only model cannot transcribe other languages nor translate."""
    if multilingual:
        return
    if options.language not in (None, "en"):
        raise UnsupportedOption(
            f"model {model!r} is English-only: it cannot transcribe language "
            f"{options.language!r} (choose a multilingual model, e.g. --model base)"
        )
    if options.task == "translate":
        raise UnsupportedOption(
            f"model {model!r} is English-only: it cannot translate (choose e.g. --model base)"
        )


# `batch_size` None: what the engines pick. A GPU decodes a batch of windows in about the time of
# one; on a CPU batching pays once there are several windows to share the work, or sooner for an
# engine whose sequential decoder costs more on short audio (faster-whisper's: below).
GPU_BATCH_SIZE = 16
CPU_BATCH_SIZE = 8
CPU_BATCHED_FROM = 120.0  # seconds of audio


def batch_size_for(options: DecodeOptions, seconds: float, device: str,
                   cpu_batched_from: float = CPU_BATCHED_FROM, cpu_batch_size: int = CPU_BATCH_SIZE) -> int:
    """How many windows an engine on `device` ("cuda", "cpu") decodes at once for `seconds` of
    audio: the option's value when given, else batched on a GPU, and on a CPU `cpu_batch_size`
    from `cpu_batched_from` seconds of audio."""
    if options.batch_size is not None:
        return options.batch_size
    if device == "cuda":
        return GPU_BATCH_SIZE
    return cpu_batch_size if seconds >= cpu_batched_from else 1
