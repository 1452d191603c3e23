"""How output files are named: `--name-template`, `--lang-code` and the `--for` media-server presets.

A template names each subtitle file (the format's extension is added) from
`{stem}` (the input's name without its extension), `{lang}` (the track's
language: ISO 639-1, or ISO 639-2/B with `--lang-code iso639-2`), `{task}`
(transcribe or translate) and `{model}`. The default, `{stem}`, is the names
subtitler always wrote (clip.mp4 -> clip.srt).

A template with `{lang}` or `{task}` tells tracks apart, so each track gets
files of its own: with `--task translate`, the spoken language's and the
English translation's (`Film.fr.srt` and `Film.en.srt`; one track when the
speech is English). Without them, one set of files holds the last track, as
before. Names with `{lang}` depend on the language Whisper hears: until then
(a first run without `--language`) they are known only with `{lang}` in them
(`UNKNOWN`), and the job names the files once the language is known.

What media servers document for external subtitle files (checked 2026-12):

- Jellyfin (https://jellyfin.org/docs/general/server/media/external-files):
  files that exactly match the video's name, optionally with a language
  before the extension: `Film.mkv` -> `Film.de.srt`, `Film.en.srt`; ISO 639-1,
  639-2 or a name (`Film.german.ac3`); flags `.default`, `.forced`, `.sdh`.
- Plex (https://support.plex.tv/articles/200471133-adding-local-subtitles-to-your-media/):
  `Movie Name (Release Date).[Language_Code].ext`, e.g. `Avatar (2009).en.srt`,
  the code ISO 639-1 or ISO 639-2/B (`Avatar (2009).eng.srt`); `.en.forced.srt`
  and `.en.sdh.srt` mark forced and SDH tracks.
- Kodi (https://kodi.wiki/view/Subtitles): the video's file name, a dot, the
  language, the extension ("the dot after the filename but before the
  extension specifies the language"): `The Matrix.English.srt`,
  `Movie Name (2006).English.srt`; ISO 639 codes (`Film.en.srt`) work as well.

So all three take `{stem}.{lang}`: `Film (2019).en.srt`, a translation
`Film (2019).en.srt` beside the original `Film (2019).fr.srt`. Whisper's
subtitles are neither forced nor SDH: no flag is added.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from .errors import SubtitlerError
from .languages import LANGUAGES, iso639_2

DEFAULT_TEMPLATE = "{stem}"
FIELDS = ("stem", "lang", "task", "model")
LANG_CODES = ("iso639-1", "iso639-2")
# --for SERVER: the template that server picks up (see the module's docstring).
PRESETS = {"jellyfin": "{stem}.{lang}", "plex": "{stem}.{lang}", "kodi": "{stem}.{lang}"}
# A track's language before it is known (a first run that detects it): what names show meanwhile.
UNKNOWN = "{lang}"


class NamingError(SubtitlerError):
    """A name template that cannot name files: a usage error."""

    exit_code = 2


def fields(template: str) -> list[str]:
    """The fields a template uses, in order; a NamingError for anything but FIELDS, or a
    template that could put a file in another folder."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise NamingError(f"--name-template {template!r}: {e}") from None
    used = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in FIELDS or spec or conversion:
            raise NamingError(f"--name-template {template!r}: unknown field {{{name}}} "
                              f"(fields: {', '.join('{' + f + '}' for f in FIELDS)})")
        used.append(name)
    if "/" in template or "\\" in template or not template.strip():
        raise NamingError(f"--name-template {template!r}: a file name, not a path (no / in it)")
    return used


@dataclass(frozen=True)
class Naming:
    """A name template with its language code style; checked when made."""

    template: str = DEFAULT_TEMPLATE
    lang_code: str = "iso639-1"

    def __post_init__(self) -> None:
        fields(self.template)
        if self.lang_code not in LANG_CODES:
            raise NamingError(f"--lang-code {self.lang_code!r}: choose from {', '.join(LANG_CODES)}")

    @property
    def per_track(self) -> bool:
        """Each track (the original, a translation) gets its own files."""
        used = fields(self.template)
        return "lang" in used or "task" in used

    @property
    def needs_language(self) -> bool:
        return "lang" in fields(self.template)

    def code(self, language: str | None) -> str:
        """A Whisper language code as names write it: 'de' -> 'de', or 'ger' (ISO 639-2/B); 'und'
        when there is no language (no speech, no audio)."""
        if language == UNKNOWN:
            return UNKNOWN
        if self.lang_code == "iso639-2" or not language:
            return iso639_2(language)
        return {"jw": "jv"}.get(language, language)  # Whisper's old code for Javanese

    def name(self, stem: str, language: str | None, task: str, model: str) -> str:
        """A file name without its extension."""
        return self.template.format(stem=stem, lang=self.code(language), task=task, model=model)

    def title(self, language: str | None, task: str, model: str) -> str | None:
        """A muxed track's title: the language's name, then the template's other fields that tell
        tracks apart (`English (translate, base)`); None for the default template (the language's
        name, as ever)."""
        if self.template == DEFAULT_TEMPLATE:
            return None
        extra = [{"task": task, "model": model}[f] for f in dict.fromkeys(fields(self.template))
                 if f in ("task", "model")]
        name = LANGUAGES.get(language or "", "Subtitles").title()
        return f"{name} ({', '.join(extra)})" if extra else name


def preset(server: str) -> str:
    """The template of a --for preset."""
    if server not in PRESETS:
        raise NamingError(f"media server {server!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[server]


def template_for(template: str | None, server: str | None) -> str:
    """The Python API's `name_template` or `media_server` (--for): one of them, or the default."""
    if template is not None and server is not None:
        raise NamingError("name_template and media_server both name the outputs: pick one")
    return preset(server) if server is not None else template or DEFAULT_TEMPLATE


def model_label(model: str | None) -> str:
    """`{model}`: a model's name, or a model folder's or file's name ('/m/ct2-small' -> 'ct2-small')."""
    if not model:
        return "default"
    return Path(model).stem if model.endswith((".pt", ".bin")) else Path(model).name
