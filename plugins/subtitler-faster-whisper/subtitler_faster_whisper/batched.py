"""Batched decoding with faster-whisper's parts: several stretches of speech decoded at once.

The speech (subtitler's VAD) is dealt into up to `batch_size` streams: consecutive regions,
about as much speech in each, joined end to end (SpeechOnly puts the times back on the audio's
clock). Each stream is decoded as the sequential decoder decodes a file, a 30 s window from
where the last one stopped (its last timestamp, so no sentence is cut or lost at a window's
end), and the streams go side by side, one window of each per step: the decoder runs batched.

A window is prompted with its stream's previous window's text (the sequential decoder prompts
with everything before it, up to 223 tokens); with --no-condition-on-previous-text, with
nothing. Measured with tiny.en on the sample's sentences (tests/speech.py), WER batched 8 /
sequential: 29 s 1.4% / 1.4%; 3 min 1.9% / 1.4%; 10 min 6.1% / 7.5%. Prompted with nothing:
2.8%, 2.3%, 2.7%: a resumed window drops its first word on short clips, while on long ones a
prompt holding a sentence said again makes Whisper skip it (the test speech repeats five
sentences; faster-whisper's own batched pipeline prompts nothing and scores 3.2% at 10 min).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from subtitler.plugin import SAMPLE_RATE, DecodeOptions, Segment, SpeechOnly, Word, speech_regions

WINDOW = 30.0  # seconds: Whisper's input
# A stream has at least this much speech: fewer, longer streams for short audio (on a CPU a
# window costs the same batched or not; padding half-empty windows would be waste).
MIN_STREAM = 60.0
# faster-whisper's own values for what the sequential decoder does.
PROMPT_RESET_ON_TEMPERATURE = 0.5
MAX_INITIAL_TIMESTAMP = 1.0
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass
class Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


@dataclass
class Stream:
    """Consecutive speech decoded as one file, and where decoding is (seconds on its joined
    clock)."""

    speech: SpeechOnly
    seek: float = 0.0
    # The last window's tokens, timestamps and all: the next window's prompt.
    context: list[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.speech.samples) / SAMPLE_RATE

    @property
    def done(self) -> bool:
        return self.seek >= self.duration - 0.01


def streams(audio: np.ndarray, vad: bool, most: int) -> list[SpeechOnly]:
    """The audio's speech in at most `most` runs of consecutive regions with about as much speech
    each (without VAD: the whole audio, cut every 30 s)."""
    duration = len(audio) / SAMPLE_RATE
    if vad:
        regions = speech_regions(audio)
    else:
        regions = [(t, min(t + WINDOW, duration)) for t in np.arange(0.0, duration, WINDOW).tolist()]
    total = sum(b - a for a, b in regions)
    k = max(1, min(most, int(total // MIN_STREAM)))
    runs: list[list[tuple[float, float]]] = [[]]
    heard = 0.0
    for a, b in regions:
        if heard >= total * len(runs) / k and len(runs) < k:
            runs.append([])
        runs[-1].append((a, b))
        heard += b - a
    return [SpeechOnly.cut(audio, run) for run in runs if run]


class BatchedDecoder:
    """One run's batched decoding: `model` a faster_whisper.WhisperModel."""

    def __init__(self, model: Any, options: DecodeOptions, language: str | None) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model, self.options = model, options
        self.language = language
        self.tokenizer_for = lambda lang: Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                                                    task=options.task, language=lang)
        self.suppress = get_suppressed_tokens(self.tokenizer_for(language or "en"),
                                              options.suppress_token_ids())

    def features(self, samples: np.ndarray) -> tuple[np.ndarray, int]:
        """Log-mel features of up to a window of audio, padded to a full window, and how many
        frames are audio."""
        from faster_whisper.audio import pad_or_trim

        mel = self.model.feature_extractor(samples)[..., :-1]
        return pad_or_trim(mel), mel.shape[-1]

    def transcribe(self, audio: np.ndarray, batch_size: int,
                   progress: Callable[[float], None]) -> tuple[str | None, list[Segment]]:
        """The language and the segments (on the audio's clock) of `audio`."""
        options, model = self.options, self.model
        found = streams(audio, options.vad, batch_size)
        if not found:  # no speech: nothing to decode, nothing to invent
            return self.language or (None if model.model.is_multilingual else "en"), []
        if self.language is None:
            self.language = self.detect(found[0].samples) if model.model.is_multilingual else "en"
        tokenizer = self.tokenizer_for(self.language)
        first = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        runs = [Stream(speech) for speech in found]
        total = sum(r.duration for r in runs)
        segments: list[Segment] = []
        while active := [r for r in runs if not r.done]:
            # A window is prompted with its stream's previous window's text. CTranslate2 decodes
            # together only prompts of one length: those with context get as much as the
            # shortest has, and the windows go in at most two groups (with context, without).
            keep = min((len(r.context) for r in active if r.context), default=0)
            keep = min(keep, model.max_length // 2 - 1 - len(first))
            groups: dict[bool, list[Stream]] = {}
            for r in active:
                groups.setdefault(bool(r.context) and keep > 0, []).append(r)
            for prompted, group in groups.items():
                prompts = [model.get_prompt(tokenizer, first + (r.context[-keep:] if prompted else []))
                           for r in group]
                segments += self.step(group, prompts, tokenizer)
            progress(len(audio) / SAMPLE_RATE * sum(min(r.seek, r.duration) for r in runs) / total)
        segments.sort(key=lambda seg: seg.start)
        return self.language, segments

    def step(self, group: list[Stream], prompts: list[list[int]], tokenizer: Any) -> list[Segment]:
        """Decode the next window of each stream in `group` together; move each stream on."""
        model = self.model
        windows = [r.speech.samples[round(r.seek * SAMPLE_RATE):round((r.seek + WINDOW) * SAMPLE_RATE)]
                   for r in group]
        feats, frames = zip(*(self.features(w) for w in windows), strict=True)
        features = np.stack(feats)
        decoded, encoder_output = self.generate(features, prompts, tokenizer)
        heard: list[list[dict]] = []
        for r, d, n in zip(group, decoded, frames, strict=True):
            pieces, resume = split_at_timestamps(d.tokens, tokenizer, n / model.frames_per_second,
                                                 all_speech=self.options.vad)
            silent = self.silent(d)
            heard.append([] if silent else pieces)
            for p in heard[-1]:
                p["offset"] = r.seek  # not "seek": add_word_timestamps adds that to the words
            # As the sequential decoder seeks: to the last timestamp when what follows it is
            # unfinished, else past the window.
            r.seek += n / model.frames_per_second if silent or resume is None or resume <= 0 else resume
            fresh = silent or not self.options.condition_on_previous_text \
                or d.temperature > PROMPT_RESET_ON_TEMPERATURE
            r.context = [] if fresh else [t for p in pieces for t in p["said"]]
        kept = [i for i in range(len(group)) if heard[i]]
        if kept:
            # Word times from the cross-attention: one aligning pass over the windows.
            if len(kept) < len(group):  # the encoder's output for these windows only
                encoder_output = model.encode(features[kept])
            model.add_word_timestamps([heard[i] for i in kept], tokenizer, encoder_output,
                                      [frames[i] for i in kept], PREPEND_PUNCTUATIONS,
                                      APPEND_PUNCTUATIONS, 0.0)
        segments: list[Segment] = []
        for r, d, pieces in zip(group, decoded, heard, strict=True):
            said = [to_segment(p, d, tokenizer) for p in pieces]
            segments += r.speech.restore([s for s in said if s.text.strip()])
        return segments

    def detect(self, samples: np.ndarray) -> str:
        features, _ = self.features(samples[: round(WINDOW * SAMPLE_RATE)])
        token = self.model.model.detect_language(self.model.encode(features[None]))[0][0][0]
        return token[2:-2]  # "<|fr|>" -> "fr"

    def generate(self, features: np.ndarray, prompts: list[list[int]],
                 tokenizer: Any) -> tuple[list[Decoded], Any]:
        """Each window decoded as the sequential decoder's generate_with_fallback decodes one:
        at each temperature in turn until its decode passes; the windows still failing are
        decoded together at the next one; when all fail, the best. And the encoder's output
        for all the windows (word timing reuses it)."""
        from faster_whisper.transcribe import get_compression_ratio

        options, model = self.options, self.model
        length_penalty = 1.0 if options.length_penalty is None else options.length_penalty
        tried: list[list[Decoded]] = [[] for _ in prompts]
        pending = list(range(len(prompts)))
        for n, temperature in enumerate(options.temperatures()):
            if temperature > 0:
                how: dict[str, Any] = dict(beam_size=1, num_hypotheses=options.best_of or 1, sampling_topk=0,
                                           sampling_temperature=temperature)
            else:
                how = dict(beam_size=options.beam_size or 1,
                           patience=1.0 if options.patience is None else options.patience)
            encoded = model.encode(features if n == 0 else features[pending])
            if n == 0:
                first = encoded
            results = model.model.generate(
                encoded, [prompts[i] for i in pending], length_penalty=length_penalty,
                max_length=model.max_length, return_scores=True, return_no_speech_prob=True,
                suppress_blank=True, suppress_tokens=self.suppress,
                max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP / model.time_precision), **how)
            still = []
            for i, result in zip(pending, results, strict=True):
                tokens = result.sequences_ids[0]
                avg_logprob = result.scores[0] * (len(tokens) ** length_penalty) / (len(tokens) + 1)
                text = tokenizer.decode(tokens).strip()
                d = Decoded(tokens, avg_logprob, result.no_speech_prob, get_compression_ratio(text),
                            temperature)
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

    def failed(self, d: Decoded) -> bool:
        return self.options.decode_failed(d.compression_ratio, d.avg_logprob)

    def silent(self, d: Decoded) -> bool:
        return self.options.likely_silence(d.no_speech_prob, d.avg_logprob)


def split_at_timestamps(tokens: list[int], tokenizer: Any, duration: float,
                        all_speech: bool = False) -> tuple[list[dict], float | None]:
    """A window's tokens as segments (faster-whisper's dicts: seek, start, end, text tokens), as
    openai-whisper's transcribe splits them: a pair of timestamps between two segments; text
    with no pair at all is one segment. And where to resume: None when the window is done (it
    ends on a single timestamp, or has no pair), else its last timestamp (what follows it is
    unfinished: decoded again from there). `all_speech`: the window is all speech (VAD's), so
    a single timestamp ending more than a second before its end is not "no speech after": what
    Whisper skipped there is decoded from that timestamp too."""
    begin, precision = tokenizer.timestamp_begin, 0.02
    tokens = [t for t in tokens if t != tokenizer.eot]
    stamp = [t >= begin for t in tokens]
    single_ending = len(tokens) >= 2 and stamp[-1] and not stamp[-2]
    pairs = [i for i in range(1, len(tokens)) if stamp[i] and stamp[i - 1]]
    at = lambda token: min((token - begin) * precision, duration)  # noqa: E731

    def segment(part: list[int]) -> dict:
        start = at(part[0]) if part[0] >= begin else 0.0
        end = at(part[-1]) if part[-1] >= begin else duration
        return dict(seek=0, start=start, end=max(start, end), tokens=[t for t in part if t < begin],
                    said=part)

    if not pairs:
        text = [t for t in tokens if t < begin]
        if not text:
            return [], None
        stamps = [t for t in tokens if t >= begin]
        end = at(stamps[-1]) if stamps and stamps[-1] != begin else duration
        start = at(tokens[0]) if stamp[0] else 0.0
        out = [dict(seek=0, start=start, end=max(start, end), tokens=text, said=tokens)]
        return out, (end if all_speech and single_ending and end < duration - 1.0 else None)
    cuts = [*pairs, len(tokens)] if single_ending else pairs
    out, last = [], 0
    for cut in cuts:
        out.append(segment(tokens[last:cut]))
        last = cut
    out = [o for o in out if o["tokens"]]
    resume = at(tokens[-1] if single_ending else tokens[last - 1])
    if single_ending and not (all_speech and resume < duration - 1.0):
        return out, None
    return out, (resume if resume < duration - 0.5 else None)


def to_segment(piece: dict, d: Decoded, tokenizer: Any) -> Segment:
    """A segment on its stream's joined clock (`offset`: where its window began)."""
    seek = piece["offset"]
    words = [Word(w["start"] + seek, w["end"] + seek, w["word"], w["probability"])
             for w in piece.get("words", [])]
    start, end = (words[0].start, words[-1].end) if words else (piece["start"] + seek, piece["end"] + seek)
    return Segment(start, end, tokenizer.decode(piece["tokens"]), words, d.avg_logprob, d.no_speech_prob,
                   d.compression_ratio, d.temperature)
