"""subtitler backend: openai-whisper on torch.

CUDA with fp16 when a GPU is there, else CPU fp32 with a set thread count
(openai-whisper's speed swings 5-20x when torch's threads fight other work).
The bundled CTranslate2 models are converted once into openai-whisper
checkpoints, alignment heads included, and cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import math
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from subtitler.plugin import (
    API_VERSION,
    Backend,
    BackendSettings,
    BackendUnavailable,
    DecodeOptions,
    EngineSpec,
    Report,
    Segment,
    SpeechOnly,
    Transcript,
    UnsupportedOption,
    Word,
    batch_size_for,
    bundled_ct2_dir,
    cache_dir,
    check_english_only,
    join_split_words,
    load_failure,
    missing,
    model_fingerprint,
    model_source,
    speech_regions,
)

# Called with the seconds of audio transcribed so far.
Progress = Callable[[float], None]

# Bumped when convert.py changes what it writes, so stale caches are redone.
CONVERTER_VERSION = 1
# openai-whisper's mel frames per second (hop of 160 samples at 16 kHz).
_FRAMES_PER_SECOND = 100


def engine_kwargs(options: DecodeOptions, fp16: bool) -> dict[str, Any]:
    """DecodeOptions as whisper.transcribe() arguments (transcribe-level + DecodingOptions)."""
    kwargs: dict[str, Any] = dict(
        language=options.language,
        task=options.task,
        temperature=options.temperatures(),
        # beam_size 1 is greedy; openai-whisper spells greedy as None.
        beam_size=None if options.greedy else options.beam_size,
        best_of=options.best_of,
        patience=options.patience,
        length_penalty=options.length_penalty,
        compression_ratio_threshold=options.compression_ratio_threshold,
        logprob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        condition_on_previous_text=options.condition_on_previous_text,
        initial_prompt=options.initial_prompt,
        suppress_tokens=options.suppress_tokens,
        word_timestamps=True,
        fp16=fp16,
    )
    return kwargs


class WhisperBackend(Backend):
    api_version = API_VERSION
    supported_options = Backend.supported_options | {"batch_size"}
    name = "whisper"
    description = "openai-whisper on torch: CUDA + fp16 on a GPU, fp32 on CPU"
    # `auto`: on a CPU after faster-whisper (int8 is faster there); on a GPU first (fp16, batched).
    auto_priority = 10
    gpu_priority = 30

    def __init__(self, spec: EngineSpec, settings: BackendSettings | None = None) -> None:
        super().__init__(spec, settings)
        device, compute_type = self.device, self.compute_type
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "float32"
        if compute_type not in ("float16", "float32"):
            raise UnsupportedOption("the whisper backend computes in float16 or float32 only")
        if device == "cpu" and compute_type == "float16":
            raise UnsupportedOption("the whisper backend cannot compute float16 on a CPU")
        self.device, self.compute_type = device, compute_type
        if device == "cpu":
            torch.set_num_threads(self.threads)
        try:
            self.model = _load_model(self.model_name, device)
        except (BackendUnavailable, UnsupportedOption):
            raise
        except Exception as e:  # hub unreachable, corrupt file, CUDA errors...
            raise load_failure("whisper", self.model_name, e) from None

    @classmethod
    def unavailable_reason(cls, settings: BackendSettings | None = None) -> str | None:
        absent = missing("torch", "whisper")
        return f"{absent} is not installed (pip install openai-whisper torch)" if absent else None

    @classmethod
    def cuda_available(cls) -> bool:
        import torch

        return torch.cuda.is_available()

    @classmethod
    def fingerprint(cls, spec: EngineSpec, settings: BackendSettings) -> Any:
        # The converter's version: a converted checkpoint from a newer converter hears differently.
        return [CONVERTER_VERSION, model_fingerprint(spec.model or cls.default_model)]

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        import whisper

        check_english_only(self.model_name, self.model.is_multilingual, options)
        duration = len(audio) / 16000
        size = batch_size_for(options, duration, self.device)
        if size > 1:
            return self._transcribe_batched([(0.0, audio)], options, report, size)[0]
        kwargs = engine_kwargs(options, fp16=self.compute_type == "float16")
        # openai-whisper counts mel frames of whole windows: its last count can pass the audio's end.
        progress: Progress | None = lambda seconds: report.progress(min(seconds, duration))  # noqa: E731
        speech = SpeechOnly.detect(audio) if options.vad else None
        if speech is not None and not speech.regions:  # nothing to decode, nothing to invent
            if progress:
                progress(duration)
            return self._transcript(options.language or self._default_language(), duration, [],
                                    options, 1)
        if speech is not None:
            # Decode the speech joined end to end, as faster-whisper's vad_filter does, so both
            # engines see the same audio (openai-whisper's language detection included).
            audio = speech.samples
            progress = _on_original_clock(progress, speech)
        if progress:
            progress(0.0)  # VAD is done: decoding starts
        with _progress_into(progress):
            # verbose=None: openai-whisper prints nothing (False would print the language).
            result = whisper.transcribe(self.model, audio, verbose=None, **kwargs)
        segments = [
            Segment(
                s["start"], s["end"], s["text"],
                [Word(w["start"], w["end"], w["word"], w["probability"]) for w in s.get("words", [])],
                s["avg_logprob"], s["no_speech_prob"], s["compression_ratio"], s["temperature"],
            )
            for s in result["segments"]
        ]
        if speech is not None:
            segments = speech.restore(segments)
            if progress:
                progress(duration)  # trailing non-speech never reaches the frame count
        return self._transcript(result["language"], duration, segments, options, 1)

    def transcribe_pieces(self, pieces: Iterable[tuple[float, np.ndarray]], options: DecodeOptions,
                          report: Report, prepared: Any = None) -> list[Transcript]:
        """Batched, the pieces' windows share batches across the joins; one at a time, as
        Backend hears pieces."""
        size = batch_size_for(options, math.inf, self.device)  # in pieces: longer than a piece
        if size == 1:
            return super().transcribe_pieces(pieces, options, report, prepared)
        check_english_only(self.model_name, self.model.is_multilingual, options)
        return self._transcribe_batched(pieces, options, report, size)

    def _transcribe_batched(self, pieces: Iterable[tuple[float, np.ndarray]], options: DecodeOptions,
                            report: Report, size: int) -> list[Transcript]:
        """`size` windows of speech decoded at once (see batched.py), over one or more consecutive
        pieces (their offsets unused: progress is on the whole clock); without VAD, the audio is
        cut into plain consecutive 30 s windows."""
        from .batched import transcribe_pieces_batched

        lengths: list[float] = []

        def with_speech() -> Iterator[tuple[np.ndarray, list[tuple[float, float]]]]:
            for _, audio in pieces:
                lengths.append(len(audio) / 16000)
                yield audio, speech_regions(audio) if options.vad else [(0.0, lengths[-1])]

        report.progress(0.0)
        language, heard = transcribe_pieces_batched(self.model, with_speech(), options, size,
                                                    fp16=self.compute_type == "float16",
                                                    progress=report.progress)
        report.progress(sum(lengths))  # trailing non-speech is never decoded
        return [self._transcript(language or self._default_language(), length, segments, options, size)
                for length, segments in zip(lengths, heard, strict=True)]

    def _default_language(self) -> str | None:
        # What openai-whisper reports when nothing was decoded: English-only models say "en".
        return None if self.model.is_multilingual else "en"

    def _transcript(self, language: str | None, duration: float, segments: list[Segment],
                    options: DecodeOptions, batch_size: int) -> Transcript:
        return Transcript(language, duration, join_split_words(segments), {
            "backend": self.name, "model": self.model_name,
            "device": self.device, "compute_type": self.compute_type,
            "options": options.to_dict(),
            "batch_size": batch_size,  # the windows decoded at once (1: sequential, whisper's own)
        })


def _on_original_clock(progress: Progress | None, speech: SpeechOnly) -> Progress | None:
    """A progress callback fed times on the joined speech's clock, reporting the file's."""
    if progress is None:
        return None
    report = progress
    return lambda seconds: report(speech.original_time(seconds))


def _load_model(name: str, device: str) -> Any:
    import whisper

    from .convert import convert, load_converted

    ct2_dir = bundled_ct2_dir(name)
    if ct2_dir is None:
        source, local = model_source(name)
        if not local:
            return whisper.load_model(source, device=device)  # openai-whisper's own download
        path = Path(source)
        if path.is_file():
            return whisper.load_model(str(path), device=device)
        if not (path / "model.bin").exists():
            raise BackendUnavailable(f"{path}: neither a whisper checkpoint nor a CTranslate2 model folder")
        ct2_dir = path
    # Key the cache on the source's identity, so a changed model converts again.
    stat = (ct2_dir / "model.bin").stat()
    key = hashlib.sha256(f"{ct2_dir.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CONVERTER_VERSION}"
                         .encode()).hexdigest()[:12]
    checkpoint = cache_dir() / "whisper" / f"{Path(name).name}-{key}.pt"
    if not checkpoint.exists():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        convert(ct2_dir, checkpoint)
    return load_converted(checkpoint, device=device)


# Patching whisper's progress bar is process-wide: one transcription at a time.
_progress_lock = threading.Lock()


@contextlib.contextmanager
def _progress_into(progress: Progress | None) -> Iterator[None]:
    """Route openai-whisper's frame progress (its tqdm bar) into `progress` as seconds.

    openai-whisper has no progress callback; it only draws a tqdm bar in mel
    frames. While transcribing, its module's `tqdm` is swapped for a shim
    that reports seconds to our callback instead of drawing.
    """
    if progress is None:
        yield
        return
    # Not `import whisper.transcribe`: the package shadows that module with its function.
    wt = importlib.import_module("whisper.transcribe")

    class _Bar:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.frames = 0

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int) -> None:
            self.frames += n
            progress(self.frames / _FRAMES_PER_SECOND)

    with _progress_lock:
        original = wt.tqdm
        wt.tqdm = types.SimpleNamespace(tqdm=_Bar)
        try:
            yield
        finally:
            wt.tqdm = original

