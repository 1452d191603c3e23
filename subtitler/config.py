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
`[backends.NAME]` holds a backend's own settings (`backend_setting`).

Values reach click through `ctx.default_map`, so they are converted, checked
and passed through the option's callback exactly like typed values, and an
option typed on the command line still wins.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import platformdirs
from click.core import ParameterSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECT_FILE = "subtitler.toml"
PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE = "tool.subtitler"
BACKENDS = "backends"  # the table of backend settings, not a command's table
# Options that take comma-separated values, so a TOML list is natural too.
COMMA_SEPARATED = {"format", "suppress-tokens"}
# Where the click context keeps each command's settings, for errors and `subtitler config`.
_META_KEY = "subtitler.config"


class ConfigError(click.ClickException):
    """A config file that cannot be used: one line, and exit code 2 like any usage error."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"subtitler: error: {self.format_message()}", err=True)


@dataclass(frozen=True)
class Layer:
    """The subtitler settings of one file."""

    path: Path  # as found: relative for the project's files, so messages stay short
    table: str  # where the settings sit in the file: "" or "tool.subtitler"
    data: dict[str, Any]

    def where(self, table: str = "") -> str:
        """How messages name a place: `subtitler.toml [run]`, `pyproject.toml [tool.subtitler]`."""
        name = ".".join(t for t in (self.table, table) if t)
        return f"{self.path} [{name}]" if name else str(self.path)


@dataclass(frozen=True)
class Setting:
    """One option's value from the config files, as click takes it from default_map."""

    value: Any
    where: str  # file and table, e.g. "subtitler.toml [run]"
    key: str  # as written there


@dataclass(frozen=True)
class Config:
    layers: tuple[Layer, ...]  # lowest precedence first

    def backend_value(self, backend: str, key: str) -> str | None:
        for layer in reversed(self.layers):
            table = _dashed(layer.data.get(BACKENDS, {}).get(backend, {}))
            if _key(key) in table:
                return _text(table[_key(key)])
        return None

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

    def settings(self, commands: Mapping[str, click.Command]) -> dict[str, dict[str, Setting]]:
        """Each command's settings by parameter name; a later layer, then a command's table, wins."""
        result: dict[str, dict[str, Setting]] = {name: {} for name in commands}
        for layer in self.layers:
            tables = {k: v for k, v in layer.data.items() if isinstance(v, dict)}
            for name in tables:
                if name != BACKENDS and name not in commands:
                    raise ConfigError(f"{layer.where()}: unknown table [{name}] "
                                      f"(tables: {', '.join([*commands, BACKENDS + '.NAME'])})")
            for key, value in layer.data.items():
                if key in tables:
                    continue
                targets = {n: found for n in commands if (found := _option(commands[n], key))}
                if not targets:
                    raise ConfigError(f"{layer.where()}: unknown key {key!r} (not an option of any command)")
                for name, found in targets.items():
                    _put(result[name], found, layer.where(), layer, key, value)
            for name, table in tables.items():
                if name == BACKENDS:
                    continue  # backend settings, read by backend_value
                for key, value in table.items():
                    found = _option(commands[name], key)
                    if not found:
                        raise ConfigError(f"{layer.where(name)}: unknown key {key!r} "
                                          f"({name} has no --{_key(key)} option)")
                    _put(result[name], found, layer.where(name), layer, key, value)
        return result


def _key(key: str) -> str:
    return key.replace("_", "-")


def _dashed(table: dict[str, Any]) -> dict[str, Any]:
    return {_key(k): v for k, v in table.items()}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _option(command: click.Command, key: str) -> tuple[click.Option, str] | None:
    """The option a key names, and the flag it names (--vad or --no-vad)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:  # -v is no setting
            for flag in [*param.opts, *param.secondary_opts]:
                if flag == f"--{_key(key)}":
                    return param, flag
    return None


def _put(settings: dict[str, Setting], option: tuple[click.Option, str], where: str, layer: Layer,
         key: str, value: Any) -> None:
    param, flag = option
    assert param.name is not None
    settings[param.name] = Setting(_value(layer, where, key, param, flag, value), where, key)


def _value(layer: Layer, where: str, key: str, param: click.Option, flag: str, value: Any) -> Any:
    """A TOML value as click would get it from the command line; click checks the rest."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {json.dumps(value, default=str)}: expected {expected}")

    if param.is_flag:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value if flag in param.opts else not value  # `no-vad = true` means vad off
    if isinstance(value, list) and not param.multiple:
        if _key(key) not in COMMA_SEPARATED:
            raise bad("one value, not a list")
        value = ",".join(str(v) for v in value)
    items = value if isinstance(value, list) else [value]
    # A bool or a date would pass click's conversion as something else (True -> 1).
    if any(isinstance(v, (bool, dict, list, datetime.date, datetime.time)) for v in items):
        raise bad("text or a number")
    if isinstance(param.type, click.Path):
        # Relative to the file that says it, not to wherever the command runs.
        items = [str(layer.path.parent / Path(str(v)).expanduser()) for v in items]
    return items if param.multiple else items[0]


def user_config_file() -> Path:
    folder = os.environ.get("SUBTITLER_CONFIG_HOME") or platformdirs.user_config_dir("subtitler")
    return Path(folder) / "config.toml"


def find_layers(explicit: Path | None = None) -> list[Layer]:
    """The config files that exist, lowest precedence first."""
    if explicit is None and os.environ.get("SUBTITLER_CONFIG"):
        explicit = Path(os.environ["SUBTITLER_CONFIG"])
    user = user_config_file()
    candidates = [(user, "")] if user.is_file() else []
    layers = [layer for path, table in candidates if (layer := _read(path, table)) is not None]
    if explicit is None:
        project = find_project_layer()
        if project is not None:
            layers.append(project)
    elif (layer := _read(explicit, PYPROJECT_TABLE if explicit.name == PYPROJECT else "")) is not None:
        layers.append(layer)
    return layers


def find_project_layer(start: Path | None = None) -> Layer | None:
    """The project's settings, as ruff and black find theirs: in the working directory or the
    nearest folder above it with a subtitler.toml, or a pyproject.toml that has [tool.subtitler];
    the search stops at the repository root (the folder with .git), so a checkout never picks
    up a file from outside it."""
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


# Read once per process: the command line loads it (with --config) before any
# command runs; backends read it later through backend_setting.
_loaded: Config | None = None


def load(explicit: Path | None = None) -> Config:
    """Read the config files now and keep them for `current()`."""
    global _loaded
    _loaded = Config(tuple(find_layers(explicit)))
    return _loaded


def current() -> Config:
    return _loaded if _loaded is not None else load()


def reset() -> None:
    """Forget the loaded files (tests, or a long-lived process whose files changed)."""
    global _loaded
    _loaded = None


def backend_setting(backend: str, key: str, env: str | None = None, default: str | None = None) -> str | None:
    """A backend's setting: the environment variable `env` (when set and not empty),
    else `[backends.BACKEND] key` from the config files, else `default`."""
    if env and os.environ.get(env):
        return os.environ[env]
    value = current().backend_value(backend, key)
    return default if value is None else value


# --- click wiring ---------------------------------------------------------


def apply(ctx: click.Context, explicit: Path | None, commands: Mapping[str, click.Command]) -> None:
    """Load the config files and make them the defaults of `commands`, subcommands of ctx's group."""
    loaded = load(explicit)
    settings = loaded.settings(commands)
    if any(layer.data.get(BACKENDS) for layer in loaded.layers):
        from .backends import discover  # plugins are imported only when a file has backend tables

        loaded.check_backends({name: frozenset(s.key for s in e.cls.declared_settings) if e.cls else None
                               for name, e in discover().items()})
    ctx.meta[_META_KEY] = settings
    ctx.default_map = {name: {p: s.value for p, s in values.items()} for name, values in settings.items()}


class ConfiguredCommand(click.Command):
    """A command that blames a bad config value on the file and key that set it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as e:
            setting = _setting_behind(ctx, e.param)
            if setting is None:
                raise
            raise ConfigError(f"{setting.where}: {setting.key}: {e.message}") from None


def _setting_behind(ctx: click.Context, param: click.Parameter | None) -> Setting | None:
    if param is None or param.name is None:
        return None
    if ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT_MAP:
        return None
    return ctx.meta.get(_META_KEY, {}).get(ctx.command.name, {}).get(param.name)


_SOURCES = {ParameterSource.COMMANDLINE: "command line",
            ParameterSource.ENVIRONMENT: "environment"}


def effective(ctx: click.Context, command: click.Command, args: list[str]) -> dict[str, tuple[Any, str]]:
    """What `command` would run with, given `args`: each option's value and its source, by long name.

    `ctx` is a context under the group that loaded the config (see `apply`).
    """
    options = [p for p in command.params if isinstance(p, click.Option) and p.expose_value]
    name = command.name or ""
    probe = ConfiguredCommand(name, params=options)  # its options only: no inputs needed
    settings = ctx.meta.get(_META_KEY, {}).get(name, {})
    defaults = {param: s.value for param, s in settings.items()}
    shown: dict[str, tuple[Any, str]] = {}
    with probe.make_context(name, list(args), parent=ctx, default_map=defaults) as sub:
        for param in options:
            assert param.name is not None
            value = sub.params.get(param.name)
            source = sub.get_parameter_source(param.name)
            where = (settings[param.name].where if source is ParameterSource.DEFAULT_MAP
                     else _SOURCES.get(source, "default"))  # type: ignore[arg-type]
            long = next(o for o in param.opts if o.startswith("--"))
            shown[long[2:]] = (value, where)
    return shown
