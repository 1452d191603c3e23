"""Option machinery shared by the commands in cli.py.

Parameter types and callbacks that check values as click reads them, and
decorators that each add a group of options to a command. Two of them fold
their options into one argument: `profile_options` gives the command a
`profile` (a Profile or None), `style_options` a `style` (a Style).
`_pop_profile` and `_pop_style` do the same folding for parameters that did
not come through the decorators' wrappers (see cli._run_params).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .formats import FORMATS
from .languages import language_code
from .naming import LANG_CODES, PRESETS
from .options import TASKS, DecodeOptions
from .profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from .style import Style, parse_colour
from .video import SubtitleTrack

# --- parameter types and callbacks ------------------------------------------


class OptionalFloat(click.ParamType):
    """A float, or "none" for options whose None means something (disables it)."""

    name = "FLOAT|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | None:
        if value is None or isinstance(value, float):
            return value
        if str(value).lower() == "none":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'none'", param, ctx)


class OptionalInt(OptionalFloat):
    """A whole number, or "none" (as OptionalFloat)."""

    name = "INT|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:  # type: ignore[override]
        number = super().convert(value, param, ctx)
        if number is None:
            return None
        if number != int(number):
            self.fail(f"{value!r} is not a whole number or 'none'", param, ctx)
        return int(number)


class BatchSize(click.ParamType):
    """A whole number of at least 1, or "auto" (None: the engine picks)."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number or 'auto'", param, ctx)
        if number < 1:
            self.fail("must be at least 1 (1: one window at a time)", param, ctx)
        return number


def _formats(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """--format's comma-separated names (or all) as a list of known formats, without repeats."""
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if names == ["all"]:
        return list(FORMATS)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise click.BadParameter(f"choose from {', '.join(FORMATS)} or all (comma-separated)")
    return list(dict.fromkeys(names))


def _colour(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A colour option's value, unchanged once parse_colour accepts it."""
    if value is not None:
        try:
            parse_colour(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


def _track(value: str) -> SubtitleTrack:
    """A subtitle file to add; its language from a name like clip.fr.srt."""
    path = Path(value)
    lang = path.suffixes[-2].lstrip(".") if len(path.suffixes) >= 2 else None
    return SubtitleTrack(path, lang if lang and language_code(lang) else None)


# --- option groups ----------------------------------------------------------

# Profile values overridable on the command line: option name -> Profile field.
_PROFILE_OPTIONS = {
    "max_line_chars": ("--max-line-chars", click.IntRange(min=1), "Characters per line."),
    "max_lines": ("--max-lines", click.IntRange(min=1), "Lines per cue."),
    "min_duration": ("--min-duration", click.FloatRange(min=0), "Shortest cue, seconds."),
    "max_duration": ("--max-duration", click.FloatRange(min=0, min_open=True), "Longest cue, seconds."),
    "max_cps": ("--max-cps", click.FloatRange(min=0, min_open=True),
                "Reading speed limit, characters per second."),
    "min_gap": ("--min-gap", click.FloatRange(min=0), "Gap between cues, seconds."),
    "lead_in": ("--lead-in", click.IntRange(min=0),
                "Frames a cue appears before its speech (at the video's frame rate; 25 fps without one)."),
    "max_words_per_line": ("--max-words-per-line", click.IntRange(min=1),
                           "At most this many words on a line (as openai-whisper's option)."),
    "snap_to_frames": ("--snap-to-frames", None,
                       "Put in- and out-times on the video's frame boundaries (25 fps without a picture), "
                       "the minimum gap kept in whole frames."),
}


def profile_options(f: Callable) -> Callable:
    """--profile and its per-value overrides, folded into one `profile` argument."""
    for field_name, (flag, kind, help_text) in reversed(_PROFILE_OPTIONS.items()):
        # A flag (kind None) is None when not given, like the values: the profile's own then holds.
        extra: dict[str, Any] = {"type": kind} if kind is not None else {"flag_value": True, "default": None}
        f = click.option(flag, field_name, help=help_text, **extra)(f)
    f = click.option("-p", "--profile", "profile_name", type=click.Choice(list(PROFILES)), default=None,
                     help=f"Cue layout rules [default: {DEFAULT_PROFILE}; "
                          "cjk for Chinese, Japanese, Korean].")(f)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, profile=_pop_profile(kwargs), **kwargs)

    return wrapper


def _pop_profile(params: dict[str, Any]) -> Profile | None:
    """The profile that --profile and its overrides (taken out of `params`) ask for; None if none do."""
    name = params.pop("profile_name")
    overrides = {k: params.pop(k) for k in _PROFILE_OPTIONS}
    if name or any(v is not None for v in overrides.values()):
        return get_profile(name or DEFAULT_PROFILE).replace(**overrides)
    return None


def style_options(f: Callable) -> Callable:
    """How ASS and burned-in subtitles look (--font, --colour, --box...), folded into one `style` argument."""
    options = [
        click.option("--font", help="Font family [default: DejaVu Sans]."),
        click.option("--font-size", type=click.IntRange(min=4),
                     help="Font size in pixels of the video [default: 5.5% of its height]."),
        click.option("--colour", "--color", "colour", callback=_colour,
                     help="Text colour, #RRGGBB or #RRGGBBAA (AA: 00 opaque, FF transparent)."),
        click.option("--outline-colour", "--outline-color", "outline_colour", callback=_colour,
                     help="Outline colour, #RRGGBB or #RRGGBBAA."),
        click.option("--back-colour", "--back-color", "back_colour", callback=_colour,
                     help="Colour of the --box (else of the shadow), #RRGGBB or #RRGGBBAA "
                          "[default: #000000, opaque]."),
        click.option("--outline", type=click.FloatRange(min=0), help="Outline width in pixels."),
        click.option("--box/--no-box", default=None,
                     help="An opaque box (--back-colour) behind the text instead of an outline."),
        click.option("--margin", "margin_v", type=click.IntRange(min=0),
                     help="Distance from the edge in pixels [default: 5% of the height]."),
        click.option("--position", type=click.Choice(["bottom", "top"]), default=None,
                     help="Where the subtitles sit [default: bottom]."),
        click.option("--highlight-words", flag_value=True, default=None,
                     help="SRT and WebVTT: one cue per word, the word being spoken underlined."),
        click.option("--karaoke", flag_value=True, default=None,
                     help="ASS: karaoke \\k tags, each word turning from grey to the text colour as spoken."),
        click.option("--word-timing", flag_value=True, default=None,
                     help="WebVTT: each word's start as an inline timestamp (<00:00:01.250>)."),
    ]
    for option in reversed(options):
        f = option(f)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, style=_pop_style(kwargs), **kwargs)

    return wrapper


def _pop_style(params: dict[str, Any]) -> Style:
    """The style that the style options (taken out of `params`) ask for."""
    names = ("font", "font_size", "colour", "outline_colour", "back_colour", "outline", "box", "margin_v",
             "position", "highlight_words", "karaoke", "word_timing")
    values = {k: params.pop(k) for k in names}
    values["size"] = values.pop("font_size")
    return Style().replace(**values)


def output_options(f: Callable) -> Callable:
    """What to write and where (--format, --output-dir, --overwrite) plus the profile and style options."""
    for option in reversed([
        click.option("-f", "--format", "formats", default="srt", show_default=True, callback=_formats,
                     help=f"Comma-separated output formats: {', '.join(FORMATS)}, or all."),
        click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Write outputs here instead of beside each input."),
        click.option("--overwrite", is_flag=True, help="Replace outputs that already exist."),
        profile_options,
        style_options,
    ]):
        f = option(f)
    return f


def naming_options(f: Callable) -> Callable:
    """How outputs are named: --name-template, --for (a media server's preset), --lang-code."""
    for option in reversed([
        click.option("--name-template", metavar="TEMPLATE",
                     help="Name of each subtitle file, before its extension, from {stem} (the input's name "
                          "without extension), {lang}, {task}, {model} [default: {stem}]. With {lang} or "
                          "{task}, a translation gets files of its own beside the original's."),
        click.option("--for", "media_server", type=click.Choice(list(PRESETS)),
                     help="Name subtitles as this media server picks them up: Film (2019).en.srt "
                          "(--name-template '{stem}.{lang}')."),
        click.option("--lang-code", type=click.Choice(LANG_CODES), default="iso639-1", show_default=True,
                     help="{lang} in names: ISO 639-1 (en, fr) or ISO 639-2/B (eng, fre)."),
    ]):
        f = option(f)
    return f


def encoder_options(f: Callable) -> Callable:
    """Video encoding settings for burn-in: --encoder, --crf, --preset."""
    for option in reversed([
        click.option("--encoder", default="libx264", show_default=True,
                     help="Video encoder for --burn (any ffmpeg encoder, e.g. libx265, libvpx-vp9)."),
        click.option("--crf", type=click.IntRange(min=0, max=63), default=23, show_default=True,
                     help="Quality for --burn (lower is better and bigger)."),
        click.option("--preset", default="medium", show_default=True, help="x264/x265 speed preset."),
    ]):
        f = option(f)
    return f


def batch_options(f: Callable) -> Callable:
    """Many inputs: which (--include, --exclude, --from-list), what to skip (--force...), what to report."""
    for option in reversed([
        click.option("--include", multiple=True, metavar="GLOB",
                     help="In folders, only files matching GLOB (relative path or name; repeatable)."),
        click.option("--exclude", multiple=True, metavar="GLOB",
                     help="In folders, skip files matching GLOB (repeatable)."),
        click.option("--from-list", "lists", multiple=True, metavar="FILE",
                     help="Read input paths from FILE, one per line (- for stdin; repeatable)."),
        click.option("-0", "--null", is_flag=True,
                     help="Paths in --from-list files (and on stdin) are separated by NUL bytes, "
                          "as `find -print0` writes them."),
        click.option("--force", is_flag=True,
                     help="Transcribe again, even what is up to date or cached."),
        click.option("--cache/--no-cache", default=True, show_default=True,
                     help="Reuse transcripts of audio already transcribed with the same settings."),
        click.option("--dry-run", is_flag=True, help="List what would be done, and do nothing."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails."),
        click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write a JSON report: each input's status, outputs, language, timings, error."),
    ]):
        f = option(f)
    return f


# Defaults shown in --help come from the dataclass itself, so they cannot drift apart.
_DEFAULTS = DecodeOptions()


def decode_options(f: Callable) -> Callable:
    """The decoding options: DecodeOptions' fields, with Tiyaro's names and openai-whisper's defaults."""
    for option in reversed([
        click.option("--language", help="Spoken language, code or name (en, French...). Omit to detect."),
        click.option("--task", type=click.Choice(TASKS), default=_DEFAULTS.task, show_default=True,
                     help="translate: English subtitles from any language."),
        click.option("--temperature", type=float, default=_DEFAULTS.temperature, show_default=True,
                     help="Sampling temperature of the first decode; 0 is deterministic."),
        click.option("--temperature-increment-on-fallback", type=OptionalFloat(),
                     default=_DEFAULTS.temperature_increment_on_fallback, show_default=True,
                     help="Raise the temperature by this on a failed decode; none disables fallback."),
        click.option("--beam-size", type=OptionalInt(), default=_DEFAULTS.beam_size, show_default=True,
                     help="Beams in beam search; 1 or none for greedy."),
        click.option("--best-of", type=OptionalInt(), default=_DEFAULTS.best_of, show_default=True,
                     help="Candidates when sampling at non-zero temperature."),
        click.option("--patience", type=OptionalFloat(), default=_DEFAULTS.patience, show_default=True,
                     help="Beam search patience (none: 1.0, conventional beam search)."),
        click.option("--length-penalty", type=OptionalFloat(), default=_DEFAULTS.length_penalty,
                     show_default=True, help="Length penalty alpha when ranking beams (none: simple length "
                                             "normalisation)."),
        click.option("--compression-ratio-threshold", type=OptionalFloat(),
                     default=_DEFAULTS.compression_ratio_threshold, show_default=True,
                     help="A decode whose text compresses better than this (a loop) has failed; "
                          "none: no check."),
        click.option("--logprob-threshold", type=OptionalFloat(), default=_DEFAULTS.logprob_threshold,
                     show_default=True,
                     help="A decode whose average log probability is below this has failed; none: no check."),
        click.option("--no-speech-threshold", type=OptionalFloat(), default=_DEFAULTS.no_speech_threshold,
                     show_default=True,
                     help="A window this likely to be silence, with a failed decode, is skipped as silence."),
        click.option("--condition-on-previous-text/--no-condition-on-previous-text",
                     default=_DEFAULTS.condition_on_previous_text, show_default=True,
                     help="Prompt each window with the text before it (consistent, but loops can carry on)."),
        click.option("--initial-prompt", help="Text to prime the decoder (names, spelling, style)."),
        click.option("--vad/--no-vad", default=_DEFAULTS.vad, show_default=True,
                     help="Decode only where voice activity detection finds speech: no invented text on "
                          "silence or music."),
        click.option("--refine-timing/--no-refine-timing", default=_DEFAULTS.refine_timing, show_default=True,
                     help="Move word and cue times onto where the speech starts and stops (short-time "
                          "energy of the audio; for every backend)."),
        click.option("--suppress-tokens", default=_DEFAULTS.suppress_tokens, show_default=True,
                     help="Comma-separated token ids never to emit; -1 = non-speech symbols."),
        click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
                     help="Windows of speech a local engine decodes at once. 1: one after another, each "
                          "prompted with the text before it; more: batched, faster on long audio and on a "
                          "GPU; auto: batched on a GPU, and on a CPU for audio of 2 minutes or more."),
    ]):
        f = option(f)
    return f
