"""subtitler backend: faster-whisper (CTranslate2).

int8 on CPU, float16 on GPU by default. The bundled models are CTranslate2
folders already, so they load directly with no hub.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from subtitler.backends import Backend, Progress, missing
from subtitler.errors import UnsupportedOption
from subtitler.models import load_failure, model_source
from subtitler.options import DecodeOptions, check_english_only
from subtitler.transcript import Segment, Transcript, Word
from subtitler.vad import vad_options

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
    name = "faster-whisper"
    description = "faster-whisper (CTranslate2): int8 on CPU, float16 on GPU"

    def __init__(self, model: str | None = None, device: str = "auto",
                 compute_type: str = "auto", threads: int | None = None,
                 timeout: float | None = None) -> None:
        super().__init__(model, device, compute_type, threads, timeout)
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
    def unavailable_reason(cls) -> str | None:
        absent = missing("faster_whisper")
        return "faster-whisper is not installed (pip install faster-whisper)" if absent else None

    @classmethod
    def cuda_available(cls) -> bool:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0

    def transcribe(self, audio: np.ndarray, options: DecodeOptions,
                   progress: Progress | None = None) -> Transcript:
        check_english_only(self.model_name, self.model.model.is_multilingual, options)
        segments_iter, info = self.model.transcribe(audio, **engine_kwargs(options))
        if progress:
            progress(0.0)  # VAD and language detection are done: decoding starts
        segments = []
        for s in segments_iter:  # a generator: decoding happens as we iterate
            words = [Word(w.start, w.end, w.word, w.probability) for w in s.words or []]
            segments.append(Segment(s.start, s.end, s.text, words, s.avg_logprob,
                                    s.no_speech_prob, s.compression_ratio, s.temperature))
            if progress:
                progress(s.end)
        if progress:
            progress(info.duration)  # with VAD, trailing non-speech yields no segment
        return Transcript(info.language, info.duration, segments, {
            "backend": self.name, "model": self.model_name,
            "device": self.device, "compute_type": self.compute_type,
            "options": options.to_dict(),
        })

