"""A Tiyaro job's `input`: openai-whisper's transcribe() options, checked before the job is accepted.

The names are DecodeOptions' (Tiyaro's: `beam_size`, `temperature`...), minus
subtitler's own `vad`, `batch_size` and `refine_timing`, which stay the server's. An option not
given takes the server's default (its command line or config file). Unknown
names, values of the wrong type and values out of range are refused all at
once, each named.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import SubtitlerError
from ..options import DecodeOptions

# The server's own settings, never a client's.
SERVER_ONLY = frozenset({"vad", "batch_size", "refine_timing"})
NAMES = tuple(n for n in DecodeOptions.names() if n not in SERVER_ONLY)
# The JSON types each field's annotation allows ("float | None" -> float, nullable).
_KINDS: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}
_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "text"}


class BadInput(SubtitlerError):
    """A job's options that cannot be used: the client's mistake (400)."""

    exit_code = 2


def _field_types() -> dict[str, tuple[str, bool]]:
    types = {}
    for f in dataclasses.fields(DecodeOptions):
        parts = [p.strip() for p in str(f.type).split("|")]
        types[f.name] = (next(p for p in parts if p != "None"), "None" in parts)
    return types


_TYPES = _field_types()


def job_options(given: Any, defaults: DecodeOptions) -> DecodeOptions:
    """`defaults` with the client's options in place; BadInput naming every bad one."""
    if not isinstance(given, dict):
        raise BadInput("input must be an object of openai-whisper options")
    unknown = sorted(k for k in given if k not in NAMES)
    problems = [f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(known: {', '.join(NAMES)})"] if unknown else []
    values: dict[str, Any] = {}
    for name in (k for k in given if k in NAMES):
        value = given[name]
        kind, nullable = _TYPES[name]
        if name == "suppress_tokens" and isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = ",".join(str(v) for v in value)  # openai-whisper takes a list of ids too
        if value is None and nullable:
            values[name] = None
        elif isinstance(value, _KINDS[kind]) and (kind == "bool" or not isinstance(value, bool)):
            values[name] = float(value) if kind == "float" else value
        else:
            problems.append(f"{name}: expected {_WORDS[kind]}{' or null' if nullable else ''}, "
                            f"not {value!r:.40}")
    if problems:
        raise BadInput("; ".join(problems))
    try:
        return dataclasses.replace(defaults, **values)
    except SubtitlerError as e:  # out of range, an unknown language...: DecodeOptions' own checks
        raise BadInput(str(e)) from None
