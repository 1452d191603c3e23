"""The click side of the config files (config.py reads them): their values become the defaults
of the commands' options, through `ctx.default_map`, so they are converted, checked and passed
through each option's callback exactly like typed values, and an option typed on the command
line still wins. A bad value is blamed on the file and key that set it.

The group calls `apply` once per invocation; the Config it loaded stays in the click context
(`loaded(ctx)` from any subcommand's context), never in a module global.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .config import BACKENDS, Config, ConfigError, Layer, Value, load

# Options that take comma-separated values, so a TOML list is natural too.
COMMA_SEPARATED = {"format", "suppress-tokens"}
# Where the click context keeps the loaded Config, and each command's settings for errors and
# `subtitler config` (ctx.meta is shared by a context and all its subcommands' contexts).
_CONFIG_KEY = "subtitler.config"
_SETTINGS_KEY = "subtitler.config.settings"


class ConfigUsageError(click.ClickException):
    """A ConfigError as click shows it: `subtitler: error: ...` on one line, exit code 2."""

    exit_code = ConfigError.exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"subtitler: error: {self.format_message()}", err=True)


def apply(ctx: click.Context, explicit: Path | None, commands: Mapping[str, click.Command]) -> Config:
    """Load the config files and make them the defaults of `commands`, subcommands of ctx's group."""
    try:
        loaded = load(explicit)
        settings = option_settings(loaded, commands)
        if any(layer.data.get(BACKENDS) for layer in loaded.layers):
            from .backends import discover  # plugins are imported only when a file has backend tables

            loaded.check_backends({name: frozenset(s.key for s in e.cls.declared_settings) if e.cls else None
                                   for name, e in discover(loaded).items()})
    except ConfigError as e:
        raise ConfigUsageError(str(e)) from None
    ctx.meta[_CONFIG_KEY] = loaded
    ctx.meta[_SETTINGS_KEY] = settings
    ctx.default_map = {name: {p: s.value for p, s in values.items()} for name, values in settings.items()}
    return loaded


def loaded(ctx: click.Context) -> Config:
    """The Config the group loaded for this invocation (any subcommand's context will do); the
    files as they are now when the command runs without the group."""
    found = ctx.meta.get(_CONFIG_KEY)
    return found if found is not None else load()


def option_settings(config: Config, commands: Mapping[str, click.Command]) -> dict[str, dict[str, Value]]:
    """Each command's settings by parameter name, values converted as click takes them from
    default_map; a key no command has, or a table that is no command's, is refused."""
    for layer in config.layers:
        _check_keys(layer, commands)
    result: dict[str, dict[str, Value]] = {}
    for name, command in commands.items():
        result[name] = {}
        for value in config.values(name).values():  # lowest precedence first: a later one wins
            found = _option(command, value.key)
            if found is None:
                continue  # a top-level key of other commands (_check_keys refused the rest)
            param, flag = found
            assert param.name is not None
            result[name][param.name] = Value(_value(value, param, flag), value.where, value.key, value.file)
    return result


def _check_keys(layer: Layer, commands: Mapping[str, click.Command]) -> None:
    tables = layer.tables()
    for name in tables:
        if name != BACKENDS and name not in commands:
            raise ConfigError(f"{layer.where()}: unknown table [{name}] "
                              f"(tables: {', '.join([*commands, BACKENDS + '.NAME'])})")
    for key in layer.top_level():
        if not any(_option(command, key) for command in commands.values()):
            raise ConfigError(f"{layer.where()}: unknown key {key!r} (not an option of any command)")
    for name, table in tables.items():
        if name == BACKENDS:
            continue  # backend settings: Config.check_backends
        for key in table:
            if not _option(commands[name], key):
                raise ConfigError(f"{layer.where(name)}: unknown key {key!r} "
                                  f"({name} has no --{_dashed(key)} option)")


def _dashed(key: str) -> str:
    return key.replace("_", "-")


def _option(command: click.Command, key: str) -> tuple[click.Option, str] | None:
    """The option a key names, and the flag it names (--vad or --no-vad)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:  # -v is no setting
            for flag in [*param.opts, *param.secondary_opts]:
                if flag == f"--{_dashed(key)}":
                    return param, flag
    return None


def _value(setting: Value, param: click.Option, flag: str) -> Any:
    """A TOML value as click would get it from the command line; click checks the rest."""
    value, key = setting.value, setting.key

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{setting.where}: {key} = {json.dumps(value, default=str)}: expected {expected}")

    if param.is_flag:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value if flag in param.opts else not value  # `no-vad = true` means vad off
    if isinstance(value, list) and not param.multiple:
        if _dashed(key) not in COMMA_SEPARATED:
            raise bad("one value, not a list")
        value = ",".join(str(v) for v in value)
    items = value if isinstance(value, list) else [value]
    # A bool or a date would pass click's conversion as something else (True -> 1).
    if any(isinstance(v, (bool, dict, list, datetime.date, datetime.time)) for v in items):
        raise bad("text or a number")
    if isinstance(param.type, click.Path) and setting.file is not None:
        # Relative to the file that says it, not to wherever the command runs.
        items = [str(setting.file.parent / Path(str(v)).expanduser()) for v in items]
    return items if param.multiple else items[0]


class ConfiguredCommand(click.Command):
    """A command that blames a bad config value on the file and key that set it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as e:
            setting = _setting_behind(ctx, e.param)
            if setting is None:
                raise
            raise ConfigUsageError(f"{setting.where}: {setting.key}: {e.message}") from None


def _setting_behind(ctx: click.Context, param: click.Parameter | None) -> Value | None:
    if param is None or param.name is None:
        return None
    if ctx.get_parameter_source(param.name) is not ParameterSource.DEFAULT_MAP:
        return None
    return ctx.meta.get(_SETTINGS_KEY, {}).get(ctx.command.name, {}).get(param.name)


_SOURCES = {ParameterSource.COMMANDLINE: "command line",
            ParameterSource.ENVIRONMENT: "environment"}


def effective(ctx: click.Context, command: click.Command, args: list[str]) -> dict[str, tuple[Any, str]]:
    """What `command` would run with, given `args`: each option's value and its source, by long name.

    `ctx` is a context under the group that loaded the config (see `apply`).
    """
    options = [p for p in command.params if isinstance(p, click.Option) and p.expose_value]
    name = command.name or ""
    probe = ConfiguredCommand(name, params=options)  # its options only: no inputs needed
    settings = ctx.meta.get(_SETTINGS_KEY, {}).get(name, {})
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
