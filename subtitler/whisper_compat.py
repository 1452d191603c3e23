"""What users of openai-whisper's `whisper` command already know: its option spellings and its JSON.

`rewrite_args` turns openai-whisper's spellings (`--output_dir`, `--output_format`,
`--max_line_width`, `--word_timestamps True`...) into subtitler's own options
before click reads them, so they stay out of `--help` and behave exactly like
the options they stand for. `is_whisper_result` and `from_whisper_result` read
the JSON `whisper clip.mp4 --output_format json` writes as a Transcript;
`to_whisper_result` writes a Transcript in that shape (what `subtitler serve` answers).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import click

# openai-whisper's spelling -> subtitler's option, for options that take a value in both.
ALIASES = {
    "--output_dir": "--output-dir",
    "--output_format": "--format",
    "--max_line_width": "--max-line-chars",
    "--max_line_count": "--max-lines",
    "--best_of": "--best-of",
    "--beam_size": "--beam-size",
    "--length_penalty": "--length-penalty",
    "--suppress_tokens": "--suppress-tokens",
    "--initial_prompt": "--initial-prompt",
    "--temperature_increment_on_fallback": "--temperature-increment-on-fallback",
    "--compression_ratio_threshold": "--compression-ratio-threshold",
    "--logprob_threshold": "--logprob-threshold",
    "--no_speech_threshold": "--no-speech-threshold",
    "--max_words_per_line": "--max-words-per-line",
}

# openai-whisper's True/False options: (the option a command needs for it to apply, what True
# means here, what False means). subtitler always times every word (cues are built from words),
# so --word_timestamps changes nothing; --fp16 False asks for full precision.
BOOL_ALIASES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "--word_timestamps": ("--format", (), ()),
    "--condition_on_previous_text": ("--condition-on-previous-text", ("--condition-on-previous-text",),
                                     ("--no-condition-on-previous-text",)),
    "--fp16": ("--compute-type", (), ("--compute-type", "float32")),
    "--highlight_words": ("--highlight-words", ("--highlight-words",), ()),
}


def rewrite_args(args: list[str], options: Container[str]) -> list[str]:
    """`args` with openai-whisper's spellings replaced by the options of a command that has
    `options` (its flags); spellings for options it lacks stay, for click to refuse."""
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            out += [arg, *rest]
            break
        name, eq, value = arg.partition("=")
        if name in ALIASES and ALIASES[name] in options:
            out.append(ALIASES[name] + eq + value)
        elif name in BOOL_ALIASES and BOOL_ALIASES[name][0] in options:
            if not eq:
                value = next(rest, "")
            if value not in ("True", "False"):  # as openai-whisper's str2bool
                raise click.BadParameter(f"expected True or False, not {value!r}", param_hint=f"'{name}'")
            out += BOOL_ALIASES[name][1 if value == "True" else 2]
        else:
            out.append(arg)
    return out


def aliases_for(options: Container[str]) -> list[str]:
    """The openai-whisper spellings a command with `options` accepts (for its --help)."""
    return ([a for a, target in ALIASES.items() if target in options]
            + [a for a, (needs, *_) in BOOL_ALIASES.items() if needs in options])


# --- openai-whisper's result JSON ------------------------------------------------


def is_whisper_result(data: Any) -> bool:
    """Whether a JSON object is what openai-whisper writes (`whisper --output_format json`,
    or `json.dump(model.transcribe(...))`): text, segments and language, and no schema."""
    return (isinstance(data, dict) and "schema" not in data and isinstance(data.get("segments"), list)
            and "text" in data and "language" in data)


def from_whisper_result(data: dict[str, Any]) -> Any:
    """openai-whisper's result as a Transcript. Segments without word times (a run without
    --word_timestamps True) get their words spread evenly over the segment, by characters."""
    try:
        return _convert(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        from .errors import BadTranscript

        raise BadTranscript(f"malformed openai-whisper result: {type(e).__name__}: {e}") from None


def to_whisper_result(t: Any) -> dict[str, Any]:
    """A Transcript as openai-whisper's transcribe() result with word_timestamps: text, language,
    segments with their words."""
    return {
        "text": t.text, "language": t.language,
        "segments": [
            {"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
             "temperature": s.temperature, "avg_logprob": s.avg_logprob,
             "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob,
             "words": [{"word": w.text, "start": w.start, "end": w.end, "probability": w.probability}
                       for w in s.words]}
            for i, s in enumerate(t.segments)
        ],
        # Not in openai-whisper's dict: how sure the engine was of the language it detected.
        **({"language_probability": t.meta["language_probability"]}
           if t.meta.get("language_probability") is not None else {}),
    }


def _convert(data: dict[str, Any]) -> Any:
    from .languages import language_code
    from .transcript import Segment, Transcript, Word

    segments = []
    spread = False
    for s in data["segments"]:
        start, end, text = float(s["start"]), float(s["end"]), str(s["text"])
        words = [Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w.get("probability", 1.0)))
                 for w in s.get("words") or []]
        if not words and text.strip():
            words, spread = _spread(text, start, end), True
        segments.append(Segment(start, end, text, words, s.get("avg_logprob"), s.get("no_speech_prob"),
                                s.get("compression_ratio"), s.get("temperature")))
    language = data.get("language")
    duration = max((s.end for s in segments), default=0.0)
    meta = {"source": "openai-whisper", **({"word_times": "spread"} if spread else {})}
    if data.get("language_probability") is not None:
        meta["language_probability"] = float(data["language_probability"])
    return Transcript(language_code(str(language)) if language else None, duration, segments, meta)


def _spread(text: str, start: float, end: float) -> list[Any]:
    from .transcript import Word

    pieces = [" " + w for w in text.split()]
    total = sum(len(p) for p in pieces)
    words, t = [], start
    for p in pieces:
        step = (end - start) * len(p) / total
        words.append(Word(round(t, 3), round(t + step, 3), p, 1.0))
        t += step
    return words
