"""Batched decoding for openai-whisper: windows of speech decoded several at once.

whisper.transcribe decodes one 30 s window after another, each prompted with the text before it,
so nothing runs in parallel but the beams. Here the speech regions are packed into windows of at
most 30 s of joined speech (`pack_windows`), each window decoded on its own, `batch_size` windows
per call to whisper's decoder. Windows are independent: no previous text conditions them (that is
what lets them run together); an initial prompt is given to every window alike.

What whisper.transcribe does around its decoder is done here window by window, with its own
pieces: temperature fallback on a repetitive or improbable decode (only the failed windows are
decoded again, batched again), the no-speech skip, segments split at timestamp tokens, and word
timestamps by `whisper.timing.add_word_timestamps`, and its seeking: a decode that stops before
its window's end (it often does, on two timestamps in a row) leaves the rest of the window as a
piece decoded again in a later batch, from where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import whisper
from whisper.audio import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE
from whisper.decoding import DecodingResult, DecodingTask
from whisper.timing import add_word_timestamps
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import get_end

from subtitler.plugin import DecodeOptions, Segment, SpeechOnly, Word, pack_windows

# Called with the seconds of the original audio transcribed so far.
Progress = Callable[[float], None]

# Seconds per timestamp token: whisper's decoder sees the mel two frames per token (0.02 s).
TIME_PRECISION = 2 * HOP_LENGTH / SAMPLE_RATE


@dataclass(frozen=True)
class Window:
    """Some speech regions joined end to end, as one 30 s input of the model."""

    speech: SpeechOnly  # the joined samples, and the way back to the original clock
    mel: torch.Tensor  # (n_mels, N_FRAMES) on the CPU, padded as whisper.transcribe pads its last window
    frames: int  # mel frames of speech, before the padding

    @property
    def seconds(self) -> float:
        return self.frames * HOP_LENGTH / SAMPLE_RATE

    @property
    def end(self) -> float:
        """Where the window's speech ends on the original clock."""
        return self.speech.regions[-1][1]


def make_window(model: Any, audio: np.ndarray, regions: list[tuple[float, float]]) -> Window:
    speech = SpeechOnly.cut(audio, regions)
    # As whisper.transcribe: the mel of the samples followed by 30 s of silence, cut to the
    # content's frames, then zero-padded to a whole window.
    mel = whisper.log_mel_spectrogram(speech.samples, model.dims.n_mels, padding=N_SAMPLES)
    frames = min(N_FRAMES, mel.shape[-1] - N_FRAMES)
    return Window(speech, whisper.pad_or_trim(mel[:, :frames], N_FRAMES), frames)


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


def split_at_timestamps(tokens: list[int], tokenizer: Tokenizer,
                        seconds: float) -> tuple[list[tuple[float, float, list[int]]], float]:
    """(start, end, tokens) of each segment in a piece's decoded tokens, as whisper.transcribe
    splits them (a segment ends at each pair of consecutive timestamp tokens), and how far into
    the piece's `seconds` the decode got: text after the last pair is left for the next decode."""
    begin = tokenizer.timestamp_begin
    stamp = [t >= begin for t in tokens]

    def time(token: int) -> float:
        return (token - begin) * TIME_PRECISION

    cuts = [i + 1 for i in range(len(tokens) - 1) if stamp[i] and stamp[i + 1]]
    if not cuts:
        # One segment, ending at its last timestamp if it has one past <|0.00|>; the piece is done.
        stamps = [t for t in tokens if t >= begin]
        end = time(stamps[-1]) if stamps and stamps[-1] != begin else seconds
        return [(0.0, end, tokens)], seconds
    single_ending = stamp[-2:] == [False, True]  # nothing said after the last timestamp
    if single_ending:
        cuts.append(len(tokens))
    segments = [(time(tokens[a]), time(tokens[b - 1]), tokens[a:b])
                for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
    return segments, seconds if single_ending else time(tokens[cuts[-1] - 1])


def ends_with_single_timestamp(tokens: list[int], tokenizer: Tokenizer) -> bool:
    return [t >= tokenizer.timestamp_begin for t in tokens[-2:]] == [False, True]


@dataclass(frozen=True)
class Piece:
    """What is left of a window to decode: from mel frame `seek` to the window's end."""

    window: int  # its index
    seek: int
    # The end of the last word decoded before it in its window (word timing measures pauses from it).
    last_speech: float = 0.0

    def offset(self) -> float:
        return self.seek * HOP_LENGTH / SAMPLE_RATE


def piece_mel(window: Window, piece: Piece) -> torch.Tensor:
    return whisper.pad_or_trim(window.mel[:, piece.seek:window.frames], N_FRAMES)


def decode_piece(model: Any, tokenizer: Tokenizer, window: Window, piece: Piece,
                 result: DecodingResult, fp16: bool) -> tuple[list[dict], Piece | None]:
    """One decoded piece's segments (whisper.transcribe's dicts, words included, on the window's
    clock) and the piece left to decode after it, as whisper.transcribe seeks: None when done."""
    frames = window.frames - piece.seek
    offset = piece.offset()
    tokens = list(result.tokens)
    parts, decoded = split_at_timestamps(tokens, tokenizer, frames * HOP_LENGTH / SAMPLE_RATE)
    segments = [{"seek": piece.seek, "start": offset + start, "end": offset + end, "tokens": part,
                 "text": tokenizer.decode([t for t in part if t < tokenizer.eot])}
                for start, end, part in parts]
    add_word_timestamps(segments=segments, model=model, tokenizer=tokenizer,
                        mel=_on_device(model, piece_mel(window, piece), fp16), num_frames=frames,
                        last_speech_timestamp=piece.last_speech)
    seek = piece.seek + round(decoded * FRAMES_PER_SECOND)
    last_word_end = get_end(segments)
    if not ends_with_single_timestamp(tokens, tokenizer) and last_word_end is not None \
            and last_word_end > offset:
        seek = round(last_word_end * FRAMES_PER_SECOND)  # whisper.transcribe: go on from the last word
    for s in segments:
        if s["start"] == s["end"] or not s["text"].strip():  # whisper.transcribe empties these
            s["text"], s["tokens"], s["words"] = "", [], []
    if seek >= window.frames or seek <= piece.seek:  # done (or stuck: never decode the same again)
        return segments, None
    last_speech = last_word_end if last_word_end is not None else piece.last_speech
    return segments, Piece(piece.window, seek, last_speech)


def to_segments(window: Window, segments: list[dict], result_of: list[DecodingResult]) -> list[Segment]:
    """A window's whisper segments as ours, on the original audio's clock."""
    out = [
        Segment(s["start"], s["end"], s["text"],
                [Word(w["start"], w["end"], w["word"], w["probability"]) for w in s["words"]],
                r.avg_logprob, r.no_speech_prob, r.compression_ratio, r.temperature)
        for s, r in zip(segments, result_of, strict=True)
    ]
    return window.speech.restore(out)


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
    decoded `batch_size` pieces at a time. Language None: no speech to detect it on."""
    windows = [make_window(model, audio, r) for r in pack_windows(regions)]
    if not windows:
        return options.language or (None if model.is_multilingual else "en"), []
    language = options.language or detect_language(model, windows[0], fp16)
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages,
                              language=language, task=options.task)
    found: list[list[dict]] = [[] for _ in windows]  # whisper's segments of each window
    results: list[list[DecodingResult]] = [[] for _ in windows]  # the decode of each segment
    unfinished = [Piece(i, 0) for i in range(len(windows))]
    done = 0  # windows before this one are decoded to their end
    while unfinished:
        # Windows in order, and a window's rest before new windows: the progress moves on steadily.
        batch, unfinished = unfinished[:batch_size], unfinished[batch_size:]
        mels = _on_device(model, torch.stack([piece_mel(windows[p.window], p) for p in batch]), fp16)
        rest = []
        for piece, result in zip(batch, decode_with_fallback(model, mels, options, language, fp16),
                                 strict=True):
            if is_silent(result, options):
                continue  # whisper.transcribe skips the rest of its window; so does a piece
            segments, left = decode_piece(model, tokenizer, windows[piece.window], piece, result, fp16)
            found[piece.window] += segments
            results[piece.window] += [result] * len(segments)
            rest += [left] if left else []
        unfinished = rest + unfinished
        pending = {p.window for p in unfinished}
        while done < len(windows) and done not in pending:
            done += 1
        if progress and done:
            progress(windows[done - 1].end)
    segments = [s for i, w in enumerate(windows) for s in to_segments(w, found[i], results[i])]
    return language, segments


def _on_device(model: Any, mel: torch.Tensor, fp16: bool) -> torch.Tensor:
    return mel.to(model.device).to(torch.float16 if fp16 else torch.float32)
