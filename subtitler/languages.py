"""Whisper's languages: codes and English names, so users may give either."""

from __future__ import annotations

# Code -> name, in Whisper's own order (its tokenizer's LANGUAGES table).
LANGUAGES: dict[str, str] = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}

_BY_NAME = {name: code for code, name in LANGUAGES.items()}
# Other names Whisper accepts for the same languages.
_BY_NAME.update({"burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht",
                 "letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
                 "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh"})


def language_code(value: str) -> str | None:
    """'en', 'English' or 'english' -> 'en'; None if Whisper has no such language."""
    key = value.strip().lower()
    if key in LANGUAGES:
        return key
    return _BY_NAME.get(key)


def iso639_2(code: str | None) -> str:
    """ISO 639-2 code for a subtitle track tag ('de' -> 'ger'); 'und' when unknown.

    The bibliographic form where one exists, as Matroska's spec asks.
    """
    if not code:
        return "und"
    import pycountry  # lazy: only muxing needs the ISO tables

    code = {"jw": "jv"}.get(code, code)  # Whisper's old code for Javanese
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    if lang is None:
        return "und"
    return getattr(lang, "bibliographic", None) or lang.alpha_3
