"""Batched decoding for openai-whisper: windows of speech decoded several at once.

whisper.transcribe decodes one 30 s window after another, each prompted with the text before it,
so nothing runs in parallel but the beams. subtitler.batching plans the batched way: VAD's speech
in windows of at most 30 s cut in pauses, decoded `batch_size` at a time, each on its own (no
window is prompted with earlier text; an initial prompt goes to every window), in rounds: what
Whisper left of a window (it stopped early) is decoded in the next round.

Here a batch of windows goes through whisper's decoder at once, and what whisper.transcribe
does around its decoder is done window by window with its own pieces: temperature fallback on a
repetitive or improbable decode (only the failed windows are decoded again, batched again), the
no-speech skip, segments at timestamp pairs (subtitler.timestamps), and word timestamps by
`whisper.timing.add_word_timestamps`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import whisper
from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE
from whisper.decoding import DecodingResult, DecodingTask
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer

from subtitler.plugin import (
    DecodeOptions,
    Segment,
    Word,
    decode_pieces,
    first_window,
    split_at_timestamps,
)

# Called with the seconds of the original audio transcribed so far.
Progress = Callable[[float], None]



@dataclass(frozen=True)
class Window:
    """Speech (regions joined end to end) as one 30 s input of the model."""

    mel: torch.Tensor  # (n_mels, N_FRAMES) on the CPU, padded as whisper.transcribe pads its last window
    frames: int  # mel frames of speech, before the padding

    @property
    def seconds(self) -> float:
        return self.frames * HOP_LENGTH / SAMPLE_RATE


def make_window(model: Any, samples: np.ndarray) -> Window:
    # As whisper.transcribe: the mel of the samples followed by 30 s of silence, cut to the
    # content's frames, then padded to a whole window: with the mel of silence, not zeros.
    mel = whisper.log_mel_spectrogram(samples, model.dims.n_mels, padding=N_SAMPLES)
    frames = min(N_FRAMES, mel.shape[-1] - N_FRAMES)
    return Window(mel[:, :N_FRAMES], frames)


def decoding_options(options: DecodeOptions, language: str, temperature: float,
                     fp16: bool) -> whisper.DecodingOptions:
    """DecodingOptions for one temperature, as whisper.transcribe builds them: beam search (and its
    patience) at temperature 0, best_of sampling above it."""
    sampling = temperature > 0
    return whisper.DecodingOptions(
        task=options.task,
        language=language,
        temperature=temperature,
        best_of=options.best_of if sampling else None,
        # openai-whisper spells greedy as beam_size None.
        beam_size=None if sampling or options.greedy else options.beam_size,
        patience=None if sampling else options.patience,
        length_penalty=options.length_penalty,
        prompt=options.initial_prompt,
        suppress_tokens=options.suppress_tokens,
        without_timestamps=False,
        fp16=fp16,
    )


def needs_fallback(result: DecodingResult, options: DecodeOptions) -> bool:
    """whisper.transcribe's test: too repetitive or too improbable, unless it is silence."""
    return (options.decode_failed(result.compression_ratio, result.avg_logprob)
            and not options.likely_silence(result.no_speech_prob, result.avg_logprob))


def is_silent(result: DecodingResult, options: DecodeOptions) -> bool:
    """whisper.transcribe's no-speech skip: the model says no speech and its text is not confident."""
    if options.no_speech_threshold is None or result.no_speech_prob <= options.no_speech_threshold:
        return False
    return not (options.logprob_threshold is not None and result.avg_logprob > options.logprob_threshold)


class BatchedDecodingTask(DecodingTask):
    """openai-whisper's DecodingTask, able to decode several windows with beams or best-of samples.

    openai-whisper 20250625 repeats each window's tokens once per beam (or sample) but not its
    encoded audio, which the decoder's cross-attention then broadcasts: right for one window,
    a shape error for several (20 token rows against 4 windows). The audio is repeated here as
    the tokens are, as earlier openai-whisper releases did.
    """

    def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
        return super()._get_audio_features(mel).repeat_interleave(self.n_group, dim=0)

    def _detect_language(self, audio_features: torch.Tensor, tokens: torch.Tensor) -> tuple:
        return super()._detect_language(audio_features[:: self.n_group], tokens)  # once per window


def decode(model: Any, mels: torch.Tensor, options: whisper.DecodingOptions) -> list[DecodingResult]:
    """whisper.decode for a batch of windows (n_windows, n_mels, N_FRAMES)."""
    return BatchedDecodingTask(model, options).run(mels)


def decode_with_fallback(model: Any, mels: torch.Tensor, options: DecodeOptions, language: str,
                         fp16: bool) -> list[DecodingResult]:
    """Decode a batch of windows; those that fail are decoded again together at the next
    temperature, until they pass or the temperatures run out (the last decode is kept)."""
    results: list[DecodingResult | None] = [None] * len(mels)
    pending = list(range(len(mels)))
    for temperature in options.temperatures():
        decoded = decode(model, mels[pending], decoding_options(options, language, temperature, fp16))
        for i, result in zip(pending, decoded, strict=True):
            results[i] = result
        pending = [i for i in pending if needs_fallback(results[i], options)]
        if not pending:
            break
    return results  # type: ignore[return-value]  # every window was decoded at least once


def decode_batch(model: Any, tokenizer: Tokenizer, samples: list[np.ndarray], options: DecodeOptions,
                 language: str, fp16: bool) -> list[tuple[list[Segment], float | None]]:
    """Decode some windows together: for each, its segments (timed from its start, words
    included) and where Whisper stopped, if it did (subtitler.batching)."""
    windows = [make_window(model, w) for w in samples]
    mels = _on_device(model, torch.stack([w.mel for w in windows]), fp16)
    out: list[tuple[list[Segment], float | None]] = []
    for window, result in zip(windows, decode_with_fallback(model, mels, options, language, fp16),
                              strict=True):
        if is_silent(result, options):
            out.append(([], None))  # whisper.transcribe skips the window
            continue
        split = split_at_timestamps(list(result.tokens), tokenizer.timestamp_begin, tokenizer.eot,
                                    window.seconds, all_speech=options.vad)
        segments = [{"seek": 0, "start": p.start, "end": p.end, "tokens": p.tokens,
                     "text": tokenizer.decode(p.tokens)} for p in split.parts]
        add_word_timestamps(segments=segments, model=model, tokenizer=tokenizer,
                            mel=_on_device(model, window.mel, fp16), num_frames=window.frames,
                            last_speech_timestamp=0.0)
        out.append(([Segment(s["start"], s["end"], s["text"],
                             [Word(w["start"], w["end"], w["word"], w["probability"]) for w in s["words"]],
                             result.avg_logprob, result.no_speech_prob, result.compression_ratio,
                             result.temperature)
                     for s in segments if s["text"].strip()], split.resume))
    return out


def detect_language(model: Any, window: Window, fp16: bool) -> str:
    """The language of the first window, as whisper.transcribe detects it on its first 30 s."""
    if not model.is_multilingual:
        return "en"
    _, probs = model.detect_language(_on_device(model, window.mel, fp16))
    return max(probs, key=probs.get)


def transcribe_batched(model: Any, audio: np.ndarray, regions: list[tuple[float, float]],
                       options: DecodeOptions, batch_size: int, fp16: bool,
                       progress: Progress | None = None) -> tuple[str | None, list[Segment]]:
    """The language and the segments (on the audio's clock) of the speech `regions` of `audio`,
    decoded `batch_size` windows at a time (subtitler.batching). Language None: no speech to
    detect it on."""
    language, (segments,) = transcribe_pieces_batched(model, [(audio, regions)], options, batch_size,
                                                      fp16, progress)
    return language, segments


def transcribe_pieces_batched(model: Any, pieces: Iterable[tuple[np.ndarray, list[tuple[float, float]]]],
                              options: DecodeOptions, batch_size: int, fp16: bool,
                              progress: Progress | None = None) -> tuple[str | None, list[list[Segment]]]:
    """transcribe_batched for a long input's consecutive pieces, each (its samples, its speech
    regions), pulled one at a time: each piece's segments on its own clock, batches filled
    across the joins (batching.decode_pieces). The language is detected on the first speech."""
    language = options.language
    tokenizer = None

    def with_language() -> Iterator[tuple[np.ndarray, list[tuple[float, float]]]]:
        nonlocal language
        for audio, regions in pieces:
            if regions and language is None:
                language = detect_language(model, make_window(model, first_window(audio, regions)), fp16)
            yield audio, regions

    def decode(batch: list[np.ndarray]) -> list[tuple[list[Segment], float | None]]:
        nonlocal tokenizer
        if tokenizer is None:  # the language is known before the first batch
            tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                                      language=language, task=options.task)
        return decode_batch(model, tokenizer, batch, options, language, fp16)

    heard = decode_pieces(with_language(), batch_size, decode, progress)
    return language, heard


def _on_device(model: Any, mel: torch.Tensor, fp16: bool) -> torch.Tensor:
    return mel.to(model.device).to(torch.float16 if fp16 else torch.float32)
