"""Each decoding option demonstrably reaches each engine.

The real engines run on real speech. A recording spy sits at each engine's
decoding boundary and delegates every call to the real engine:

- faster-whisper: `WhisperModel.model`, the CTranslate2 Whisper whose
  `generate(encoder_output, prompts, **kwargs)` decodes one window at one temperature;
- openai-whisper: the model's `decode(mel, DecodingOptions)`, which
  `whisper.transcribe` calls once per window per temperature.

Options that act on the decode call are read from what the spy recorded (kwargs,
DecodingOptions, prompt tokens); options that act in the transcribe loop (the
fallback thresholds, the temperature schedule, conditioning on previous text)
are shown by their effect on the sequence of recorded calls and on the output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from subtitler.backends import Backend, load_backend
from subtitler.errors import UnsupportedOption
from subtitler.events import Report
from subtitler.options import DecodeOptions
from subtitler.pipeline import Subtitler

BACKENDS = ("faster-whisper", "whisper")
SAMPLE_RATE = 16000
FULL_SCHEDULE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# The decoding options of Tiyaro's Whisper API, which every engine must honour.
TIYARO_OPTIONS = (
    "language", "task", "temperature", "temperature_increment_on_fallback", "beam_size", "best_of",
    "patience", "length_penalty", "compression_ratio_threshold", "logprob_threshold",
    "no_speech_threshold", "condition_on_previous_text", "initial_prompt", "suppress_tokens",
)


# --------------------------------------------------------------------------- spies


@dataclasses.dataclass
class Call:
    """One real decoding call: one audio window at one temperature."""

    # The window decoded; every fallback of one window gets this same object.
    window: Any
    temperature: float
    # Tokens of earlier text given as the prompt (initial prompt, previous windows).
    context: list[int]
    # The engine's own parameters for this call: generate()'s kwargs or DecodingOptions as a dict.
    settings: dict[str, Any]
    # The tokens the engine decoded.
    output: list[int]
    # faster-whisper: the whole prompt (sot sequence included); whisper: None (it builds its own).
    prompt: list[int] | None = None


class Spy:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.calls: list[Call] = []
        self.detections = 0

    def windows(self) -> list[list[Call]]:
        """The calls grouped by audio window, in order."""
        groups: list[list[Call]] = []
        for call in self.calls:
            if groups and groups[-1][0].window is call.window:
                groups[-1].append(call)
            else:
                groups.append([call])
        return groups

    def temperatures(self, window: int = 0) -> tuple[float, ...]:
        return tuple(c.temperature for c in self.windows()[window])


class _CT2WhisperSpy:
    """Stands in for faster-whisper's ctranslate2.models.Whisper: forwards everything."""

    def __init__(self, real: Any, spy: Spy, sot: int, sot_prev: int) -> None:
        self._real, self._spy, self._sot, self._sot_prev = real, spy, sot, sot_prev

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def generate(self, features: Any, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        results = self._real.generate(features, prompts, *args, **kwargs)
        prompt = list(prompts[0])
        start = prompt.index(self._sot)
        context = prompt[1:start] if prompt[0] == self._sot_prev else []
        self._spy.calls.append(Call(
            window=features,
            temperature=kwargs.get("sampling_temperature", 0.0),
            context=context,
            settings=dict(kwargs),
            output=list(results[0].sequences_ids[0]),
            prompt=prompt,
        ))
        return results

    def detect_language(self, *args: Any, **kwargs: Any) -> Any:
        self._spy.detections += 1
        return self._real.detect_language(*args, **kwargs)


@contextmanager
def engine_spy(backend: Backend) -> Iterator[Spy]:
    """Record every real decoding call `backend` makes; the fixtures are shared, so restore after."""
    spy = Spy(backend)
    if backend.name == "faster-whisper":
        tok = backend.model.hf_tokenizer
        real = backend.model.model
        backend.model.model = _CT2WhisperSpy(real, spy, tok.token_to_id("<|startoftranscript|>"),
                                             tok.token_to_id("<|startofprev|>"))
        try:
            yield spy
        finally:
            backend.model.model = real
        return

    model = backend.model
    real_decode, real_detect = model.decode, model.detect_language

    def decode(mel: Any, options: Any) -> Any:
        result = real_decode(mel, options)
        spy.calls.append(Call(
            window=mel,
            temperature=options.temperature,
            context=list(options.prompt or []),
            settings=dataclasses.asdict(options),
            output=list(result.tokens),
        ))
        return result

    def detect_language(*args: Any, **kwargs: Any) -> Any:
        spy.detections += 1
        return real_detect(*args, **kwargs)

    model.decode, model.detect_language = decode, detect_language
    try:
        yield spy
    finally:  # drop the instance attributes: the class's methods show through again
        del model.decode, model.detect_language


def encode(backend: Backend, text: str) -> list[int]:
    if backend.name == "faster-whisper":
        return backend.model.hf_tokenizer.encode(text, add_special_tokens=False).ids
    return _whisper_tokenizer(backend).encode(text)


def decode_text(backend: Backend, tokens: list[int]) -> str:
    if backend.name == "faster-whisper":
        return backend.model.hf_tokenizer.decode(tokens)
    return _whisper_tokenizer(backend).decode(tokens)


def special(backend: Backend, name: str) -> int:
    if backend.name == "faster-whisper":
        return backend.model.hf_tokenizer.token_to_id(name)
    return _whisper_tokenizer(backend).special_tokens[name]


def _whisper_tokenizer(backend: Backend) -> Any:
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(backend.model.is_multilingual, num_languages=backend.model.num_languages)


def picked(settings: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: settings.get(k, "<absent>") for k in expected}


def run(backend: Backend, audio: np.ndarray, **options: Any) -> tuple[Spy, Any]:
    with engine_spy(backend) as spy:
        transcript = backend.transcribe(audio, DecodeOptions(**options), Report())
    return spy, transcript


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def speech(sample_audio) -> np.ndarray:
    """The sample's first 8 s: one sentence, one window."""
    return sample_audio.samples[: SAMPLE_RATE * 8]


@pytest.fixture(scope="module")
def two_windows(sample_audio) -> np.ndarray:
    """The sample twice, about 59 s: more than one 30 s window even with its pauses cut out."""
    s = sample_audio.samples
    return np.concatenate([s, s])


@pytest.fixture(scope="module")
def base_backends() -> dict[str, Backend]:
    """The bundled multilingual `base` model in each engine, loaded once for this module."""
    return {name: load_backend(name, "base") for name in BACKENDS}


@pytest.fixture(scope="module")
def default_runs(backends, speech) -> dict[str, tuple[Spy, Any]]:
    """Each tiny.en engine on the short speech with every option at its default: the baseline."""
    return {name: run(backends[name], speech) for name in BACKENDS}


# --------------------------------------------------------------------------- the contract


# Where each option is shown to reach the engines; a new option needs a test here.
REACH_TESTS = {
    "language": ("test_language_reaches_multilingual_engine", "test_language_en_reaches_english_only_engine",
                 "test_english_only_model_refuses_other_languages_and_translation"),
    "task": ("test_language_reaches_multilingual_engine",
             "test_english_only_model_refuses_other_languages_and_translation"),
    "temperature": ("test_sampling_options_reach_engine", "test_temperature_schedule"),
    "temperature_increment_on_fallback": ("test_temperature_schedule",),
    "beam_size": ("test_beam_search_options_reach_engine", "test_beam_size_1_is_greedy"),
    "best_of": ("test_sampling_options_reach_engine",),
    "patience": ("test_beam_search_options_reach_engine",),
    "length_penalty": ("test_beam_search_options_reach_engine",),
    "compression_ratio_threshold": ("test_temperature_schedule",),
    "logprob_threshold": ("test_temperature_schedule", "test_no_speech_threshold_reaches_engine"),
    "no_speech_threshold": ("test_no_speech_threshold_reaches_engine",),
    "condition_on_previous_text": ("test_condition_on_previous_text_reaches_engine",),
    "initial_prompt": ("test_initial_prompt_reaches_engine",),
    "suppress_tokens": ("test_suppress_tokens_reach_engine",),
}


def test_every_option_has_a_reach_test() -> None:
    assert set(TIYARO_OPTIONS) <= set(DecodeOptions.names())
    assert set(REACH_TESTS) == set(TIYARO_OPTIONS)
    for tests in REACH_TESTS.values():
        for name in tests:
            assert callable(globals().get(name)), name


@pytest.mark.parametrize("name", BACKENDS)
def test_bundled_backends_claim_every_option(backends, name) -> None:
    assert backends[name].supported_options >= frozenset(TIYARO_OPTIONS)


@pytest.mark.parametrize("name", BACKENDS)
def test_an_option_the_engine_cannot_honour_is_refused(backends, short_clip, name) -> None:
    """An engine lacking an option refuses it, naming it, before anything is decoded."""
    loaded = backends[name]
    limited_cls = type("Limited", (type(loaded),), {"supported_options": frozenset({"language"})})
    limited = object.__new__(limited_cls)
    limited.__dict__.update(loaded.__dict__)  # the already loaded model, no second load

    limited.check_options(DecodeOptions(language="en"))  # the one it supports passes
    with pytest.raises(UnsupportedOption, match=r"does not support option\(s\): beam_size, patience$"):
        limited.check_options(DecodeOptions(beam_size=3, patience=2.0))
    # The core enforces it on every file, whatever the backend's transcribe does.
    pipeline = Subtitler(backend=name, options=DecodeOptions(beam_size=3), engine=limited)
    with engine_spy(limited) as spy, pytest.raises(UnsupportedOption, match="beam_size"):
        pipeline.transcribe(short_clip)
    assert spy.calls == []


@pytest.mark.parametrize("name", BACKENDS)
def test_length_penalty_outside_0_1_is_a_clear_error(backends, speech, name) -> None:
    with engine_spy(backends[name]) as spy, pytest.raises(UnsupportedOption, match="length_penalty"):
        backends[name].transcribe(speech, DecodeOptions(length_penalty=2.0, beam_size=1), Report())
    assert spy.calls == []


# --------------------------------------------------------------------------- language and task


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("options", [dict(language="fr"), dict(task="translate"),
                                     dict(language="de", task="translate")])
def test_english_only_model_refuses_other_languages_and_translation(backends, speech, name, options) -> None:
    with engine_spy(backends[name]) as spy, pytest.raises(UnsupportedOption) as refused:
        backends[name].transcribe(speech, DecodeOptions(**options), Report())
    message = str(refused.value)
    assert "English-only" in message and "tiny.en" in message
    assert ("translate" in message) if "language" not in options else (repr(options["language"]) in message)
    assert spy.calls == []  # refused up front, not silently decoded in English


@pytest.mark.parametrize("name", BACKENDS)
def test_language_en_reaches_english_only_engine(backends, speech, name) -> None:
    spy, transcript = run(backends[name], speech, language="en", beam_size=1)
    assert spy.calls and transcript.language == "en"
    if name == "whisper":
        assert {c.settings["language"] for c in spy.calls} == {"en"}
    else:  # an English-only model's prompt has no language token: just <|startoftranscript|>
        # (and <|notimestamps|>: faster-whisper's auto batches, and batched windows decode text only)
        sot, plain = (special(backends[name], t) for t in ("<|startoftranscript|>", "<|notimestamps|>"))
        assert {c.prompt[0] for c in spy.calls} == {sot}
        assert {t for c in spy.calls for t in c.prompt} <= {sot, plain}
    assert "Dashwood" in transcript.text


@pytest.mark.filterwarnings("ignore:Word-level timestamps on translations")  # openai-whisper's caveat
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("language", "task"), [(None, "transcribe"), ("fr", "transcribe"),
                                                ("fr", "translate")])
def test_language_reaches_multilingual_engine(base_backends, speech, name, language, task) -> None:
    """language None detects (the English sample is found to be English); a given one is used as is."""
    backend = base_backends[name]
    # Greedy, no fallback: one short call per window keeps the base model quick.
    spy, transcript = run(backend, speech[: SAMPLE_RATE * 4], language=language, task=task,
                          beam_size=1, temperature_increment_on_fallback=None)
    expected = language or "en"
    assert transcript.language == expected
    assert spy.calls
    if language is None:
        assert spy.detections >= 1
    else:
        assert spy.detections == 0
    for call in spy.calls:
        if name == "whisper":
            assert (call.settings["language"], call.settings["task"]) == (expected, task)
        else:
            sot = call.prompt.index(special(backend, "<|startoftranscript|>"))
            assert call.prompt[sot:sot + 3] == [special(backend, "<|startoftranscript|>"),
                                                special(backend, f"<|{expected}|>"),
                                                special(backend, f"<|{task}|>")]


# --------------------------------------------------------------------------- decode-call options


BEAM_DEFAULTS = {
    "faster-whisper": dict(beam_size=5, patience=1.0, length_penalty=1.0),
    "whisper": dict(beam_size=5, patience=None, length_penalty=None),
}


@pytest.mark.parametrize("name", BACKENDS)
def test_beam_search_options_reach_engine(backends, speech, default_runs, name) -> None:
    asked = dict(beam_size=3, patience=2.0, length_penalty=0.5)
    spy, transcript = run(backends[name], speech, temperature_increment_on_fallback=None, **asked)
    assert spy.calls and all(c.temperature == 0.0 for c in spy.calls)
    assert [picked(c.settings, asked) for c in spy.calls] == [asked] * len(spy.calls)
    assert "Dashwood" in transcript.text

    default_spy, _ = default_runs[name]
    first = default_spy.windows()[0][0]
    assert picked(first.settings, asked) == BEAM_DEFAULTS[name]


@pytest.mark.parametrize(("name", "expected"), [
    ("faster-whisper", dict(beam_size=1, patience=1.0)),
    ("whisper", dict(beam_size=None, patience=None)),  # openai-whisper spells greedy as None
])
def test_beam_size_1_is_greedy(backends, speech, name, expected) -> None:
    spy, transcript = run(backends[name], speech, beam_size=1, temperature_increment_on_fallback=None)
    assert spy.calls
    assert [picked(c.settings, expected) for c in spy.calls] == [expected] * len(spy.calls)
    assert "Dashwood" in transcript.text


@pytest.mark.parametrize(("name", "expected"), [
    ("faster-whisper", dict(beam_size=1, num_hypotheses=2, sampling_temperature=0.5, sampling_topk=0)),
    ("whisper", dict(temperature=0.5, best_of=2, beam_size=None, patience=None)),
])
def test_sampling_options_reach_engine(backends, speech, name, expected) -> None:
    """temperature > 0 samples; best_of is how many samples it draws."""
    spy, transcript = run(backends[name], speech, temperature=0.5, best_of=2,
                          temperature_increment_on_fallback=None)
    assert spy.calls and all(c.temperature == 0.5 for c in spy.calls)
    assert [picked(c.settings, expected) for c in spy.calls] == [expected] * len(spy.calls)
    assert transcript.segments


@pytest.mark.parametrize("name", BACKENDS)
def test_initial_prompt_reaches_engine(backends, speech, default_runs, name) -> None:
    backend = backends[name]
    text = "Elinor and Marianne Dashwood."
    spy, transcript = run(backend, speech, initial_prompt=text, beam_size=1)
    first = spy.calls[0]
    assert first.context == encode(backend, " " + text)
    assert decode_text(backend, first.context).strip() == text
    assert "Dashwood" in transcript.text
    default_spy, _ = default_runs[name]
    assert default_spy.calls[0].context == []


@pytest.mark.parametrize("name", BACKENDS)
def test_suppress_tokens_reach_engine(backends, speech, default_runs, name) -> None:
    """A suppressed token reaches the engine's suppression list and never appears in its output."""
    backend = backends[name]
    john = encode(backend, " John")
    assert len(john) == 1
    john = john[0]
    default_spy, default_transcript = default_runs[name]
    assert "John" in default_transcript.text and john in default_spy.calls[0].output

    spy, _ = run(backend, speech, suppress_tokens=f"-1,{john}", beam_size=1)
    assert spy.calls
    for call in spy.calls:
        assert john not in call.output
        if name == "whisper":
            assert call.settings["suppress_tokens"] == f"-1,{john}"
        else:
            # -1 still brings in the model's non-speech symbols.
            default_list = set(default_spy.calls[0].settings["suppress_tokens"])
            assert set(call.settings["suppress_tokens"]) == default_list | {john}
    if name == "faster-whisper":
        assert john not in default_spy.calls[0].settings["suppress_tokens"]
    else:
        assert default_spy.calls[0].settings["suppress_tokens"] == "-1"


# --------------------------------------------------------------------------- transcribe-loop options


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("options", "schedule"), [
    # Clean speech passes the default thresholds at once: one call.
    ({}, (0.0,)),
    # Any non-empty text compresses by more than 0: fallback through the whole schedule.
    (dict(compression_ratio_threshold=0), FULL_SCHEDULE),
    (dict(compression_ratio_threshold=0, temperature_increment_on_fallback=0.5), (0.0, 0.5, 1.0)),
    (dict(compression_ratio_threshold=0, temperature=0.6), (0.6, 0.8, 1.0)),
    (dict(compression_ratio_threshold=0, temperature_increment_on_fallback=None), (0.0,)),
    # Every average log probability is below 0: fallback through the whole schedule.
    (dict(logprob_threshold=0, compression_ratio_threshold=None, temperature_increment_on_fallback=0.5),
     (0.0, 0.5, 1.0)),
], ids=["default", "cr0", "cr0-inc0.5", "cr0-t0.6", "cr0-no-fallback", "logprob0"])
def test_temperature_schedule(backends, speech, default_runs, name, options, schedule) -> None:
    if options:
        # Greedy and one sample per temperature keep it cheap; neither changes the schedule.
        spy, transcript = run(backends[name], speech, beam_size=1, best_of=1, **options)
    else:
        spy, transcript = default_runs[name]
    assert spy.temperatures(0) == pytest.approx(schedule)
    assert transcript.segments


@pytest.mark.parametrize("name", BACKENDS)
def test_no_speech_threshold_reaches_engine(backends, speech, default_runs, name) -> None:
    """no_speech_threshold 0 with logprob_threshold 0 makes every window silence: nothing is kept."""
    spy, transcript = run(backends[name], speech, no_speech_threshold=0, logprob_threshold=0, beam_size=1)
    # Silence also stops the fallback that logprob_threshold=0 alone forces (test_temperature_schedule).
    assert spy.calls and all(len(w) == 1 for w in spy.windows())
    assert transcript.segments == [] and transcript.text == ""
    _, default_transcript = default_runs[name]
    assert "Dashwood" in default_transcript.text


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("condition", [True, False])
def test_condition_on_previous_text_reaches_engine(backends, two_windows, name, condition) -> None:
    backend = backends[name]
    # One window after another: batched windows are never prompted with another's text (README).
    spy, transcript = run(backend, two_windows, condition_on_previous_text=condition, beam_size=1,
                          batch_size=1)
    windows = spy.windows()
    assert len(windows) >= 2
    first, second = windows[0][-1], windows[1][0]
    assert first.context == []  # nothing came before the first window
    if condition:
        # The second window is prompted with the text of the first (which opens "And Mr. John Dashwood").
        assert "Dashwood" in decode_text(backend, second.context)
    else:
        assert second.context == []
    assert "Dashwood" in transcript.text
