"""subtitler backend: faster-whisper (CTranslate2).

int8 on CPU, float16 on GPU by default. The bundled models are CTranslate2
folders already, so they load directly with no hub.

Batched (`batch_size` > 1; auto: always, on a GPU and on a CPU): windows of
speech decoded several at a time with faster-whisper's parts (batched.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from subtitler.plugin import (
    API_VERSION,
    SAMPLE_RATE,
    Backend,
    BackendSettings,
    DecodeOptions,
    EngineSpec,
    Report,
    Segment,
    SpeechOnly,
    Transcript,
    UnsupportedOption,
    Word,
    batch_size_for,
    check_english_only,
    join_split_words,
    load_failure,
    missing,
    model_fingerprint,
    model_source,
    vad_options,
)

from .batched import BatchedDecoder

# auto batches at any length on a CPU too: faster-whisper's sequential decoder goes back for the
# last moment of a VAD-joined window and often decodes it at every temperature (tiny.en, the
# 29 s sample: 5.1 s against 1.3 s batched, the same WER; 8 s: equal; 60 s: 3.5 against 2.0 s).
CPU_BATCHED_FROM = 0.0
# On a CPU, CTranslate2's decoder pays most of a step's cost whatever the batch: tiny.en int8 on
# 2 cores decodes 1 window in 1.42 s, 8 in 3.46 s (0.43 s each), 12 in 4.72 s (0.39 s each), 16
# in 6.46 s (0.40 s each). So fewer, fuller batches: 12 (the 10 minutes' 19 windows go in 2
# batches, not 3). A batch's memory grows with it: about 25 MB a window for tiny.en, more for
# wider and deeper models (--batch-size sets it).
CPU_BATCH_SIZE = 12

# --compute-type names this engine takes, beside "auto".
COMPUTE_TYPES = ("int8", "int8_float16", "int8_float32", "float16", "float32", "bfloat16")


def engine_kwargs(options: DecodeOptions) -> dict[str, Any]:
    """DecodeOptions as faster-whisper's transcribe() arguments.

    openai-whisper's None defaults become faster-whisper's equivalents:
    patience None = 1.0, length_penalty None = 1.0 (divide by length).
    With `vad`, faster-whisper cuts out what subtitler.vad's settings call
    non-speech and maps the times back onto the original timeline itself.
    """
    return dict(
        language=options.language,
        task=options.task,
        temperature=list(options.temperatures()),
        beam_size=options.beam_size or 1,
        best_of=options.best_of or 1,
        patience=1.0 if options.patience is None else options.patience,
        length_penalty=1.0 if options.length_penalty is None else options.length_penalty,
        compression_ratio_threshold=options.compression_ratio_threshold,
        log_prob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        condition_on_previous_text=options.condition_on_previous_text,
        initial_prompt=options.initial_prompt,
        suppress_tokens=options.suppress_token_ids(),
        word_timestamps=True,
        vad_filter=options.vad,
        vad_parameters=vad_options() if options.vad else None,
    )


class FasterWhisperBackend(Backend):
    api_version = API_VERSION
    supported_options = Backend.supported_options | {"batch_size"}
    name = "faster-whisper"
    description = "faster-whisper (CTranslate2): int8 on CPU, float16 on GPU"
    # `auto` on a CPU: int8 is the fastest engine there. On a GPU whisper's gpu_priority wins.
    auto_priority = 20

    def __init__(self, spec: EngineSpec, settings: BackendSettings | None = None) -> None:
        super().__init__(spec, settings)
        device, compute_type = self.device, self.compute_type
        import ctranslate2
        from faster_whisper import WhisperModel

        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if compute_type == "auto":
            compute_type = "float16" if device == "cuda" else "int8"
        elif compute_type not in COMPUTE_TYPES:
            raise UnsupportedOption(
                f"faster-whisper compute type must be auto or one of {', '.join(COMPUTE_TYPES)}"
            )
        self.device, self.compute_type = device, compute_type
        source, local = model_source(self.model_name)
        try:
            self.model = WhisperModel(source, device=device, compute_type=compute_type,
                                      cpu_threads=self.threads, local_files_only=local)
        except Exception as e:  # hub unreachable, bad folder, no CUDA...
            raise load_failure("faster-whisper", self.model_name, e) from None

    @classmethod
    def unavailable_reason(cls, settings: BackendSettings | None = None) -> str | None:
        absent = missing("faster_whisper")
        return "faster-whisper is not installed (pip install faster-whisper)" if absent else None

    @classmethod
    def cuda_available(cls) -> bool:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0

    @classmethod
    def fingerprint(cls, spec: EngineSpec, settings: BackendSettings) -> Any:
        return model_fingerprint(spec.model or cls.default_model)

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        check_english_only(self.model_name, self.model.model.is_multilingual, options)
        duration = len(audio) / SAMPLE_RATE
        size = batch_size_for(options, duration, self.device, cpu_batched_from=CPU_BATCHED_FROM,
                              cpu_batch_size=CPU_BATCH_SIZE)
        if size > 1:
            return self._batched([(0.0, audio)], options, report, size)[0]
        kwargs = engine_kwargs(options)
        speech = SpeechOnly.detect(audio) if options.vad else None
        if speech is not None and speech.regions:
            # The speech joined and its times mapped back by subtitler.vad, as the whisper engine
            # and the batched way do (faster-whisper's own places a word by its middle only).
            audio, kwargs = speech.samples, {**kwargs, "vad_filter": False, "vad_parameters": None}
        else:
            speech = None  # no speech: faster-whisper's own VAD answers as it always has
        segments_iter, info = self.model.transcribe(audio, **kwargs)
        report.progress(0.0)  # VAD and language detection are done: decoding starts
        segments = []
        for s in segments_iter:  # a generator: decoding happens as we iterate
            words = [Word(w.start, w.end, w.word, w.probability) for w in s.words or []]
            segments.append(Segment(s.start, s.end, s.text, words, s.avg_logprob,
                                    s.no_speech_prob, s.compression_ratio, s.temperature))
            report.progress(speech.original_time(s.end, is_end=True) if speech else s.end)
        if speech is not None:
            segments = speech.restore(segments)
        report.progress(duration)  # with VAD, trailing non-speech yields no segment
        detected = info.language_probability if options.language is None else None
        return self._transcript(info.language, duration, segments, options, size, detected)

    def transcribe_pieces(self, pieces: Iterable[tuple[float, np.ndarray]], options: DecodeOptions,
                          report: Report, prepared: Any = None) -> list[Transcript]:
        """Batched, the pieces' windows share batches across the joins; one at a time, as
        Backend hears pieces."""
        # In pieces: an input longer than a piece, whatever `auto`'s threshold.
        size = batch_size_for(options, math.inf, self.device, cpu_batched_from=CPU_BATCHED_FROM,
                              cpu_batch_size=CPU_BATCH_SIZE)
        if size == 1:
            return super().transcribe_pieces(pieces, options, report, prepared)
        check_english_only(self.model_name, self.model.model.is_multilingual, options)
        return self._batched(pieces, options, report, size)

    def _batched(self, pieces: Iterable[tuple[float, np.ndarray]], options: DecodeOptions, report: Report,
                 size: int) -> list[Transcript]:
        """One or more consecutive pieces decoded `size` windows at a time (batched.py); their
        offsets unused: progress is on the whole clock."""
        lengths: list[float] = []

        def samples() -> Iterator[np.ndarray]:
            for _, audio in pieces:
                lengths.append(len(audio) / SAMPLE_RATE)
                yield audio

        decoder = BatchedDecoder(self.model, options, options.language)
        language, heard = decoder.transcribe_pieces(samples(), size, report.progress)
        report.progress(sum(lengths))  # trailing non-speech is never decoded
        return [self._transcript(language, length, segments, options, size, decoder.language_probability)
                for length, segments in zip(lengths, heard, strict=True)]

    def _transcript(self, language: str | None, duration: float, segments: list[Segment],
                    options: DecodeOptions, batch_size: int,
                    language_probability: float | None) -> Transcript:
        meta = {"backend": self.name, "model": self.model_name,
                "device": self.device, "compute_type": self.compute_type,
                "batch_size": batch_size, "options": options.to_dict()}
        if language_probability is not None:  # the language was detected, this sure
            meta["language_probability"] = round(float(language_probability), 4)
        return Transcript(language, duration, join_split_words(segments), meta)
