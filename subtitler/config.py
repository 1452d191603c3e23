"""Configuration files: settings a user or a media repository pins instead of typing them.

Layers, lowest precedence first:

1. the user config: `config.toml` in the user config folder
   (`~/.config/subtitler`; `$SUBTITLER_CONFIG_HOME` names another folder);
2. the project config: `subtitler.toml`, or else the `[tool.subtitler]` table
   of `pyproject.toml`, in the working directory or the nearest folder above
   it that has one, up to the repository root (`find_project_layer`).
   `--config FILE` (or `$SUBTITLER_CONFIG`) names another file instead.

The command line beats both. Keys are the long option names (`max-line-chars`;
underscores work too). A top-level key applies to every command that has that
option; the tables `[run]`, `[check]`... override it for one command;
`[backends.NAME]` holds a backend's own settings (`Config.backend_values`).

This module is data only: `load()` reads the files each time it is called and
returns a frozen `Config` of plain TOML values, each with the file and table it
comes from; nothing is kept between calls, so one process (a server) can hold
several configurations at once. How the values become click options (checked
and converted like typed ones) is cli_config.py's business.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import SubtitlerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECT_FILE = "subtitler.toml"
PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE = "tool.subtitler"
BACKENDS = "backends"  # the table of backend settings, not a command's table
# `subtitler watch` is `subtitler DIR` kept going: it takes [run]'s settings, then [watch]'s.
INHERITS = {"watch": "run"}


class ConfigError(SubtitlerError):
    """A config file that cannot be used: one line, and exit code 2 like any usage error."""

    exit_code = 2


@dataclass(frozen=True)
class Layer:
    """The subtitler settings of one file."""

    path: Path  # as found: relative to the working directory for the project's files, so messages stay short
    table: str  # where the settings sit in the file: "" or "tool.subtitler"
    data: dict[str, Any]

    def where(self, table: str = "") -> str:
        """How messages name a place: `subtitler.toml [run]`, `pyproject.toml [tool.subtitler]`."""
        name = ".".join(t for t in (self.table, table) if t)
        return f"{self.path} [{name}]" if name else str(self.path)

    def tables(self) -> dict[str, dict[str, Any]]:
        """The file's tables ([run], [backends]...) by name."""
        return {k: v for k, v in self.data.items() if isinstance(v, dict)}

    def top_level(self) -> dict[str, Any]:
        """The keys that apply to every command, as written."""
        return {k: v for k, v in self.data.items() if not isinstance(v, dict)}


@dataclass(frozen=True)
class Value:
    """One setting as a file says it: the plain TOML value and where it comes from."""

    value: Any
    where: str  # file and table, e.g. "subtitler.toml [run]"
    key: str  # as written there (max_line_chars or max-line-chars)
    file: Path | None = None  # the file that says it: a relative path in `value` is relative to its folder


@dataclass(frozen=True)
class Config:
    layers: tuple[Layer, ...]  # lowest precedence first

    def values(self, command: str) -> dict[str, Value]:
        """The values that apply to `command` by dashed key: each layer's top-level keys, then its
        [command] table; a later one wins. The order is that precedence, lowest first, so that
        two spellings of one option (`vad`, `no-vad`) are settled by whichever comes last."""
        found: dict[str, Value] = {}
        # A command that is another one kept going reads that one's table first ([run] for watch).
        names = [INHERITS[command], command] if command in INHERITS else [command]
        for layer in self.layers:
            tables = [(name, layer.tables().get(name, {})) for name in names] if command != BACKENDS else []
            for key, value, where in [*((k, v, layer.where()) for k, v in layer.top_level().items()),
                                      *((k, v, layer.where(name)) for name, table in tables
                                        for k, v in table.items())]:
                found.pop(_key(key), None)  # re-inserted last: the order stays the precedence
                found[_key(key)] = Value(value, where, key, layer.path)
        return found

    def backend_values(self, backend: str) -> dict[str, Value]:
        """The backend's [backends.NAME] settings by dashed key; a later layer wins."""
        found: dict[str, Value] = {}
        for layer in self.layers:
            where = layer.where(f"{BACKENDS}.{backend}")
            for key, value in layer.data.get(BACKENDS, {}).get(backend, {}).items():
                found[_key(key)] = Value(value, where, key, layer.path)
        return found

    def backend_value(self, backend: str, key: str) -> str | None:
        """One backend setting as text (true/false for a TOML boolean), or None."""
        value = self.backend_values(backend).get(_key(key))
        return None if value is None else _text(value.value)

    def check_backends(self, known: Mapping[str, frozenset[str] | None]) -> None:
        """Refuse a [backends.NAME] table of a backend not installed, or a key it does not read
        (`known`: each installed backend's config keys; None for a plugin that failed to load)."""
        for layer in self.layers:
            for name, table in layer.data.get(BACKENDS, {}).items():
                where = layer.where(f"{BACKENDS}.{name}")
                if name not in known:
                    raise ConfigError(f"{where}: no backend {name!r} is installed "
                                      f"(installed: {', '.join(sorted(known))})")
                keys = known[name]
                for key in table if keys is not None else ():
                    if _key(key) not in keys:
                        raise ConfigError(f"{where}: unknown key {key!r} "
                                          f"({name}'s settings: {', '.join(sorted(keys)) or 'none'})")


def _key(key: str) -> str:
    return key.replace("_", "-")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def user_config_file(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    folder = environ.get("SUBTITLER_CONFIG_HOME") or platformdirs.user_config_dir("subtitler")
    return Path(folder) / "config.toml"


def find_layers(explicit: Path | None = None, *, cwd: Path | None = None,
                environ: Mapping[str, str] | None = None) -> list[Layer]:
    """The config files that exist, lowest precedence first. `cwd` and `environ` stand for the
    working directory and the environment (a server's job has its own); a relative `explicit`
    is relative to `cwd`."""
    environ = os.environ if environ is None else environ
    if explicit is None and environ.get("SUBTITLER_CONFIG"):
        explicit = Path(environ["SUBTITLER_CONFIG"])
    user = user_config_file(environ)
    candidates = [(user, "")] if user.is_file() else []
    layers = [layer for path, table in candidates if (layer := _read(path, table)) is not None]
    if explicit is None:
        project = find_project_layer(cwd)
        if project is not None:
            layers.append(project)
    else:
        path = explicit if cwd is None else cwd / explicit  # as given: messages name it so
        if (layer := _read(path, PYPROJECT_TABLE if explicit.name == PYPROJECT else "")) is not None:
            layers.append(layer)
    return layers


def find_project_layer(start: Path | None = None) -> Layer | None:
    """The project's settings, as ruff and black find theirs: in the working directory (or
    `start`) or the nearest folder above it with a subtitler.toml, or a pyproject.toml that has
    [tool.subtitler]; the search stops at the repository root (the folder with .git), so a
    checkout never picks up a file from outside it."""
    here = Path.cwd() if start is None else start
    for folder in [here, *here.parents]:
        for name, table in ((PROJECT_FILE, ""), (PYPROJECT, PYPROJECT_TABLE)):
            path = folder / name
            if path.is_file():
                # Named as from the working directory (../subtitler.toml): messages stay short.
                layer = _read(Path(os.path.relpath(path)) if start is None else path, table)
                if layer is not None:
                    return layer
        if (folder / ".git").exists():
            return None
    return None


def _read(path: Path, table: str) -> Layer | None:
    """A file's settings; None when a pyproject.toml has no [tool.subtitler]."""
    try:
        with path.open("rb") as f:
            data: Any = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    for part in table.split(".") if table else []:
        data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            return None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{table}] is not a table")
    layer = Layer(path, table, data)
    backends = data.get(BACKENDS, {})
    if not isinstance(backends, dict):
        raise ConfigError(f"{path}: {BACKENDS} must be tables, e.g. [{BACKENDS}.openai]")
    for name, settings in backends.items():
        if not isinstance(settings, dict) or any(
                isinstance(v, (dict, list, datetime.date, datetime.time)) for v in settings.values()):
            raise ConfigError(f"{layer.where(f'{BACKENDS}.{name}')}: expected a table of "
                              "text, numbers or true/false")
    return layer


def load(explicit: Path | None = None, *, cwd: Path | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read the config files now (nothing is cached): `explicit` is --config's file, else
    $SUBTITLER_CONFIG's, else the project's found from `cwd` (the working directory); the
    user config comes first in any case. With `cwd` given, files are named by absolute paths."""
    return Config(tuple(find_layers(explicit, cwd=cwd, environ=environ)))
