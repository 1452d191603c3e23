"""Batched decoding with faster-whisper's parts: several windows of speech decoded at once.

subtitler.batching plans it: VAD's speech in windows of at most 30 s cut in pauses, decoded
`batch_size` at a time, in rounds (what Whisper left of a window goes in the next round). Here a
batch of windows is decoded by CTranslate2's `generate` and `align`: temperature fallback and the
no-speech skip as the sequential decoder does them, text without timestamp tokens (as
faster-whisper's own BatchedInferencePipeline decodes), words timed by the cross-attention.

Without timestamps, because a window of VAD's speech needs none: its segments come from its
words and the pauses it was joined at, and where Whisper stopped early shows as speech left
after its last word (batching.rest_after). Measured with tiny.en on 10 minutes of speech: 15%
less decoding and a lower WER (3.2% against 4.5% with timestamps; the pipeline's 3.4%).

No window is prompted with earlier text (the windows are independent: that is what lets them run
together; --condition-on-previous-text does not apply); an initial prompt goes to every window.
Measured: `make bench` (bench_long.py) and README, "Speed".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from subtitler.plugin import (
    SAMPLE_RATE,
    WINDOW,
    DecodeOptions,
    Segment,
    Word,
    decode_pieces,
    first_window,
    rest_after,
    speech_regions,
)

# faster-whisper's own values for what the sequential decoder does.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"

@dataclass
class Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


class BatchedDecoder:
    """One run's batched decoding: `model` a faster_whisper.WhisperModel."""

    def __init__(self, model: Any, options: DecodeOptions, language: str | None) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model, self.options = model, options
        self.language = language
        self.language_probability: float | None = None  # when the language was detected
        self.tokenizer_for = lambda lang: Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                                    task=options.task, language=lang)
        self.suppress = get_suppressed_tokens(self.tokenizer_for(language or "en"),
                                              options.suppress_token_ids())
        self.tokenizer: Any = None
        self.prompt: list[int] | None = None  # once the language is known

    def features(self, samples: np.ndarray) -> tuple[np.ndarray, int]:
        """Log-mel features of up to a window of audio, and how many frames are audio.

        The audio is padded with silence to a whole window before the mel is taken, as
        openai-whisper pads it, not the mel with zeros afterwards (as faster-whisper does): a
        zero is not silence in Whisper's normalised log-mel but a faint sound, and on it Whisper
        often stops before a window's last sentence (measured with tiny.en on 10 minutes of
        speech: 16 of 18 windows stopped early, against 9 padded with silence).
        """
        from faster_whisper.audio import pad_or_trim

        extractor = self.model.feature_extractor
        missing = round(WINDOW * SAMPLE_RATE) - len(samples)
        mel = extractor(samples, padding=max(0, missing) + extractor.hop_length)[..., :-1]
        return pad_or_trim(mel), len(samples) // extractor.hop_length

    def transcribe_pieces(self, pieces: Iterable[np.ndarray], batch_size: int,
                          progress: Callable[[float], None]) -> tuple[str | None, list[list[Segment]]]:
        """The language and each piece's segments (on its own clock) of a long input's
        consecutive pieces, pulled one at a time; batches are filled across the joins
        (batching.decode_pieces). The language is detected on the first speech."""
        is_multilingual = self.model.model.is_multilingual

        def with_speech() -> Iterator[tuple[np.ndarray, list[tuple[float, float]]]]:
            for audio in pieces:
                regions = speech_regions(audio) if self.options.vad else [(0.0, len(audio) / SAMPLE_RATE)]
                if regions and self.language is None:
                    self.language, self.language_probability = (
                        self.detect(first_window(audio, regions)) if is_multilingual else ("en", 1.0))
                yield audio, regions

        heard = decode_pieces(with_speech(), batch_size, self.decode_batch, progress)
        # No speech anywhere: nothing to decode, nothing to invent, no language heard.
        return self.language or (None if is_multilingual else "en"), heard

    def decode_batch(self, batch: list[np.ndarray]) -> list[tuple[list[Segment], float | None]]:
        """`step` with the prompt for the language heard (known before the first batch)."""
        if self.prompt is None:
            self.tokenizer = self.tokenizer_for(self.language)
            initial = self.options.initial_prompt
            self.prompt = self.model.get_prompt(
                self.tokenizer, self.tokenizer.encode(" " + initial.strip()) if initial else [],
                without_timestamps=True)
        return self.step(batch, self.prompt, self.tokenizer)

    def step(self, batch: list[np.ndarray], prompt: list[int],
             tokenizer: Any) -> list[tuple[list[Segment], float | None]]:
        """Decode the windows in `batch` together: for each, its segments (from its start) and
        where Whisper stopped, if it did (subtitler.batching)."""
        model = self.model
        feats, frames = zip(*(self.features(w) for w in batch), strict=True)
        features = np.stack(feats)
        decoded, encoded = self.generate(features, [prompt] * len(batch), tokenizer)
        heard: list[list[dict]] = []
        for d, n in zip(decoded, frames, strict=True):
            text = [] if self.silent(d) else [t for t in d.tokens if t < tokenizer.eot]
            # The window's text as one segment: restoring it onto the audio's clock splits it
            # where the window joins stretches of speech (batching.decode_in_rounds).
            heard.append([as_dict(len(heard) * WINDOW, n / model.frames_per_second, text,
                                  model.frames_per_second)] if text else [])
        kept = [i for i in range(len(batch)) if heard[i]]
        if kept:
            self.align([heard[i] for i in kept], self.take(encoded, features, kept),
                       [frames[i] for i in kept], tokenizer)
        out = []
        for k, (d, said) in enumerate(zip(decoded, heard, strict=True)):
            segments = [s for s in (to_segment(p, d, tokenizer, k * WINDOW) for p in said) if s.text.strip()]
            stop = None
            if self.options.vad:  # without VAD a window's end may be silence, not speech left unsaid
                segments, stop = rest_after(segments, frames[k] / model.frames_per_second)
            out.append((segments, stop))
        return out

    def align(self, said: list[list[dict]], encoded: Any, frames: list[int], tokenizer: Any) -> None:
        """Word times from the cross-attention, put in `said`'s segments. On a CPU a window at a
        time, as `encode` (8 windows of tiny.en: 0.64-0.76 s alone, 0.94-1.16 s together); every
        window then starts as after a pause, wherever it sits in a batch."""
        model = self.model
        if model.model.device != "cpu" or len(said) == 1:
            model.add_word_timestamps(said, tokenizer, encoded, frames, PREPEND_PUNCTUATIONS,
                                      APPEND_PUNCTUATIONS, 0.0)
            return
        rows = np.asarray(encoded)
        for k, (window, n) in enumerate(zip(said, frames, strict=True)):
            model.add_word_timestamps([window], tokenizer, _storage(rows[k:k + 1]), [n], PREPEND_PUNCTUATIONS,
                                      APPEND_PUNCTUATIONS, 0.0)

    def take(self, encoded: Any, features: np.ndarray, rows: list[int]) -> Any:
        """The encoder's output for some of the windows: sliced on a CPU, encoded again elsewhere
        (CTranslate2 gives no view of a GPU's StorageView to slice)."""
        if len(rows) == len(features):
            return encoded
        if encoded.device == "cpu":
            return _storage(np.asarray(encoded)[rows])
        return self.model.encode(features[rows])

    def encode(self, features: np.ndarray) -> Any:
        """The encoder's output for a batch's windows. On a CPU a window at a time: there
        CTranslate2's encoder does no better per window in a batch, worse (tiny.en int8 on 2
        cores: 0.33 s a window alone, 0.40 s in a batch of 8), while its decoder gains."""
        if self.model.model.device != "cpu" or len(features) == 1:
            return self.model.encode(features)
        return _storage(np.concatenate([np.asarray(self.model.encode(features[i:i + 1]))
                                        for i in range(len(features))]))

    def detect(self, samples: np.ndarray) -> tuple[str, float]:
        """The language of the first window, and its probability."""
        features, _ = self.features(samples[: round(WINDOW * SAMPLE_RATE)])
        token, probability = self.model.model.detect_language(self.model.encode(features[None]))[0][0]
        return token[2:-2], probability  # "<|fr|>" -> "fr"

    def generate(self, features: np.ndarray, prompts: list[list[int]],
                 tokenizer: Any) -> tuple[list[Decoded], Any]:
        """Each window decoded as the sequential decoder's generate_with_fallback decodes one:
        at each temperature in turn until its decode passes; the windows still failing are
        decoded together at the next one; when all fail, the best. And the encoder's output
        for all the windows (word timing reuses it)."""
        options = self.options
        tried: list[list[Decoded]] = [[] for _ in prompts]
        pending = list(range(len(prompts)))
        for n, temperature in enumerate(options.temperatures()):
            if n == 0:
                first = encoded = self.encode(features)
            else:  # the failed windows only
                encoded = self.take(first, features, pending)
            results = self.decode(encoded, [prompts[i] for i in pending], temperature, tokenizer)
            still = []
            for i, d in zip(pending, results, strict=True):
                tried[i].append(d)
                if self.failed(d) and not self.silent(d):
                    still.append(i)
            pending = still
            if not pending:
                break
        limit = options.compression_ratio_threshold
        out = []
        for i, attempts in enumerate(tried):
            if i in pending:  # every temperature failed: the likeliest that is not a loop
                fine = [d for d in attempts if limit is None or d.compression_ratio <= limit]
                out.append(max(fine or attempts, key=lambda d: d.avg_logprob))
            else:
                out.append(attempts[-1])
        return out, first

    def decode(self, encoded: Any, prompts: list[list[int]], temperature: float,
               tokenizer: Any) -> list[Decoded]:
        """One decode of each window at one temperature: beam search at 0, sampling above."""
        from faster_whisper.transcribe import get_compression_ratio

        options, model = self.options, self.model
        length_penalty = 1.0 if options.length_penalty is None else options.length_penalty
        if temperature > 0:
            how: dict[str, Any] = dict(beam_size=1, num_hypotheses=options.best_of or 1, sampling_topk=0,
                                       sampling_temperature=temperature)
        else:
            how = dict(beam_size=options.beam_size or 1,
                       patience=1.0 if options.patience is None else options.patience)
        results = model.model.generate(
            encoded, prompts, length_penalty=length_penalty,
            max_length=model.max_length, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=self.suppress, **how)
        out = []
        for result in results:
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * (len(tokens) ** length_penalty) / (len(tokens) + 1)
            text = tokenizer.decode([t for t in tokens if t < tokenizer.eot]).strip()
            out.append(Decoded(tokens, avg_logprob, result.no_speech_prob, get_compression_ratio(text),
                               temperature))
        return out

    def failed(self, d: Decoded) -> bool:
        return self.options.decode_failed(d.compression_ratio, d.avg_logprob)

    def silent(self, d: Decoded) -> bool:
        return self.options.likely_silence(d.no_speech_prob, d.avg_logprob)


def _storage(rows: np.ndarray) -> Any:
    """Encoder output rows (on a CPU) as CTranslate2 takes them."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))


def as_dict(offset: float, duration: float, tokens: list[int], frames_per_second: float) -> dict:
    """A window's text as faster-whisper's word timing takes a segment: times on a clock where
    each window of the batch starts `offset` = 30 s after the one before (the word timing
    carries the end of the last speech from one window to the next, to tell a word after a
    pause)."""
    return dict(seek=round(offset * frames_per_second), start=offset, end=offset + duration, tokens=tokens)


def to_segment(piece: dict, d: Decoded, tokenizer: Any, offset: float) -> Segment:
    """A segment on its window's joined clock (`offset`: as_dict's)."""
    words = [Word(w["start"] - offset, w["end"] - offset, w["word"], w["probability"])
             for w in piece.get("words", [])]
    if words:
        start, end = words[0].start, words[-1].end
    else:
        start, end = piece["start"] - offset, piece["end"] - offset
    return Segment(start, end, tokenizer.decode(piece["tokens"]), words, d.avg_logprob, d.no_speech_prob,
                   d.compression_ratio, d.temperature)
