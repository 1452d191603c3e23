"""The backend contract and the registry that finds backends through entry points.

A backend is a class deriving from `Backend`, published by any installed
distribution in the entry point group `subtitler.backends`:

    [project.entry-points."subtitler.backends"]
    whisper = "subtitler_whisper:WhisperBackend"

The core has no built-in engine and no special path for the bundled plugins:
they install and load exactly as a third party's would (importing only
`subtitler.plugin`). A plugin that fails to import, or was written for another
version of the contract (`api_version`), is reported with the reason and
skipped; the others keep working.

A backend's own settings (a base URL, an API key...) are declared (`Setting`)
and resolved by whoever runs it (`resolve_settings`: given by a job, else the
environment, else the config files' `[backends.NAME]` table, else the default),
then passed to its constructor: no backend reads them itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import __version__
from .errors import BackendUnavailable, SubtitlerError, UnsupportedOption
from .events import Report
from .options import CORE_OPTIONS, DecodeOptions
from .specs import EngineSpec
from .transcript import Transcript

if TYPE_CHECKING:
    from .config import Config

ENTRY_POINT_GROUP = "subtitler.backends"
# The plugin contract's version: a backend class says which it was written for (`api_version`).
# 2 (subtitler 0.3): Backend(spec, settings), declared settings, Report, prepare's value.
API_VERSION = 2


@dataclass(frozen=True)
class Setting:
    """One of a backend's own settings: from the environment variable `env`, else the config
    files' `[backends.NAME] key`, unless given explicitly (a server's request, a job spec)."""

    key: str  # as written in [backends.NAME]: dashed, e.g. "base-url"
    env: str | None = None
    default: Any = None
    kind: type = str  # str, int or float (numbers must be more than 0)
    choices: tuple[str, ...] | None = None
    # Never shown, recorded or sent anywhere but to its service (an API key).
    secret: bool = False
    # Whether it changes what the engine hears (a base URL, a served model): then it is part of
    # the cache key and the manifest's settings. Timeouts and limits are not.
    shapes_result: bool = True
    help: str = ""

    def named(self, backend: str) -> str:
        """How messages name it: "OPENAI_BASE_URL (or base-url in [backends.openai])"."""
        table = f"{self.key} in [backends.{backend}]"
        return f"{self.env} (or {table})" if self.env else table


class BackendSettings(Mapping[str, Any]):
    """A backend's settings as resolved for one engine: typed values by key, and how to name
    each in a message (`named("base-url")` -> "OPENAI_BASE_URL (or base-url in [backends.openai])")."""

    def __init__(self, backend: str, declared: Sequence[Setting], values: Mapping[str, Any]) -> None:
        self.backend = backend
        self.declared = {s.key: s for s in declared}
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def named(self, key: str) -> str:
        return self.declared[key].named(self.backend)

    def shaping(self) -> dict[str, Any]:
        """The settings that shape results (never secrets), as the cache key takes them."""
        return {k: v for k, v in self._values.items()
                if v is not None and self.declared[k].shapes_result and not self.declared[k].secret}

    def __repr__(self) -> str:  # secrets stay secret, even in a traceback or a debugger
        shown = {k: ("***" if self.declared[k].secret and v else v) for k, v in self._values.items()}
        return f"BackendSettings({self.backend!r}, {shown!r})"


def resolve_settings(cls: type[Backend], given: Mapping[str, str] | None = None, config: Config | None = None,
                     environ: Mapping[str, str] | None = None) -> BackendSettings:
    """`cls`'s declared settings, each from `given`, else the environment, else `config`'s
    [backends.NAME] table, else its default; converted and checked (UnsupportedOption)."""
    environ = os.environ if environ is None else environ
    given = dict(given or {})
    unknown = sorted(set(given) - {s.key for s in cls.declared_settings})
    if unknown:
        raise UnsupportedOption(f"backend {cls.name!r} has no setting {unknown[0]!r}")
    for s in cls.declared_settings:
        if s.secret and given.get(s.key):  # a job's settings travel and are recorded: no secrets
            raise UnsupportedOption(f"{cls.name}'s {s.key} is a secret: set {s.named(cls.name)}, "
                                    "not a job setting")
    values: dict[str, Any] = {}
    for s in cls.declared_settings:
        if s.key in given:
            raw: Any = given[s.key]
        elif s.env and environ.get(s.env):
            raw = environ[s.env]
        else:
            config = config if config is not None else _load_config()
            raw = config.backend_value(cls.name, s.key)
        values[s.key] = _convert(cls.name, s, raw)
    return BackendSettings(cls.name, cls.declared_settings, values)


def _load_config() -> Config:
    from .config import load  # the config files, as they are now

    return load()


def _convert(backend: str, s: Setting, raw: Any) -> Any:
    named = s.named(backend)
    if raw is None or raw == "":
        return s.default
    if s.kind is str:
        value: Any = str(raw)
    else:
        try:
            value = s.kind(raw)
        except ValueError:
            raise UnsupportedOption(f"{named} must be a number, not {raw!r}") from None
        if value <= 0:
            raise UnsupportedOption(f"{named} must be more than 0")
    if s.choices is not None and value not in s.choices:
        raise UnsupportedOption(f"{named} must be one of {', '.join(s.choices)}, not {value!r}")
    return value


class Backend(ABC):
    """One speech-to-text engine. Subclass it, set `api_version = 2` and implement `transcribe`.

    Constructed once per run as `Backend(spec, settings)`: `spec` (an EngineSpec) says which
    model and how to run it, `settings` are its own declared `settings`, resolved. The
    constructor loads the model; `transcribe` is then called for every file of the run.
    """

    #: The name users pass to --backend.
    name: ClassVar[str]
    #: One line for `subtitler backends`.
    description: ClassVar[str] = ""
    #: The DecodeOptions fields this engine honours; setting any other to a
    #: non-default value is an error rather than silently ignored.
    #: batch_size is left out: an engine that batches says so (it cannot be ignored silently).
    supported_options: ClassVar[frozenset[str]] = frozenset(DecodeOptions.names()) - {"batch_size"}
    #: Model used when the user names none.
    default_model: ClassVar[str] = "tiny.en"
    #: Whether the backend enforces --timeout (an overall deadline; remote services).
    supports_timeout: ClassVar[bool] = False
    #: Whether several files may be transcribed at once from threads (--jobs): remote services.
    parallel_files: ClassVar[bool] = False
    #: Whether the audio leaves this machine: `auto` never picks such a backend.
    remote: ClassVar[bool] = False
    #: Its own settings ([backends.NAME] keys and environment variables); any other key in a
    #: config file is a typo, refused when the config is read.
    declared_settings: ClassVar[tuple[Setting, ...]] = ()
    #: For `auto`: among the usable local backends the highest priority wins; None: never.
    auto_priority: ClassVar[int | None] = 0
    #: Its priority instead when an NVIDIA GPU is there and `cuda_available()` (None: the same).
    gpu_priority: ClassVar[int | None] = None

    def __init__(self, spec: EngineSpec, settings: BackendSettings | None = None) -> None:
        self.spec = spec
        self.settings = settings if settings is not None else resolve_settings(type(self))
        self.model_name = spec.model or self.default_model
        self.device = spec.device
        self.compute_type = spec.compute_type
        # A deliberate thread count: engines left to guess oversubscribe shared cores.
        self.threads = spec.threads or len(os.sched_getaffinity(0))
        if spec.timeout is not None and not self.supports_timeout:
            raise UnsupportedOption(f"backend {self.name!r} has no --timeout (it does not wait on a service)")
        self.timeout = spec.timeout

    @classmethod
    def unavailable_reason(cls, settings: BackendSettings) -> str | None:
        """None when usable here with these settings, else why not (missing package, no key...)."""
        return None

    @classmethod
    def cuda_available(cls) -> bool:
        """True when this engine can run on an NVIDIA GPU here."""
        return False

    @classmethod
    def fingerprint(cls, spec: EngineSpec, settings: BackendSettings) -> Any:
        """What else shapes this engine's transcripts (a model file's identity, a converter's
        version), as JSON-able data; it goes into the cache key. Cheap: no model is loaded."""
        return None

    def ready(self) -> None:
        """Return once the engine can take files; raise SubtitlerError if it never can. Loaded
        engines are ready when built; a cluster's (cluster.py) when its first actor has loaded."""
        return None

    def prepare(self, audio: np.ndarray) -> Any:
        """Optional work on a file's audio ahead of `transcribe`, in a batch's decode stage.

        Called from another thread while the engine may be busy with the previous file.
        Whatever it returns is given back to `transcribe` as `prepared` (remote backends
        encode their upload here, so a free job slot goes straight to uploading).
        `transcribe` must still work with `prepared=None`.
        """
        return None  # nothing to do ahead for most engines

    @abstractmethod
    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        """Turn 16 kHz mono float32 samples into a Transcript with word timings.

        Tell progress in seconds of audio with `report.progress`, a remote job's
        states with `report.status`. The pipeline has already called
        `check_options`; raise UnsupportedOption for combinations the engine or
        model cannot honour.
        """

    def transcribe_pieces(self, pieces: Iterable[tuple[float, np.ndarray]], options: DecodeOptions,
                          report: Report, prepared: Any = None) -> list[Transcript]:
        """A long input heard in consecutive pieces (media.Audio.pieces), each (its start in
        seconds, its samples) and read only when pulled: one transcript per piece, on the
        piece's own clock. `prepared` is the first piece's.

        This one hears them one after another with `transcribe`, the language heard first
        holding for the rest (Whisper, too, decides it once). An engine that decodes windows in
        batches overrides it to fill its batches across the joins.
        """
        heard = []
        for n, (offset, samples) in enumerate(pieces):
            first = prepared if n == 0 else None
            heard.append(self.transcribe(samples, options, report.shifted(offset), first))
            if options.language is None and heard[-1].language:
                options = dataclasses.replace(options, language=heard[-1].language)
        return heard

    @classmethod
    def check_options(cls, options: DecodeOptions) -> None:
        """Refuse options this engine would otherwise silently ignore (no model needed)."""
        ignored = sorted(set(options.changed()) - cls.supported_options - CORE_OPTIONS)
        if ignored:
            raise UnsupportedOption(
                f"backend {cls.name!r} does not support option(s): {', '.join(ignored)}"
            )


def missing(*modules: str) -> str | None:
    """The first of `modules` that is not installed, else None, without importing any.

    For `unavailable_reason`: every command lists the backends, and importing
    torch just to learn it is there costs a second.
    """
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


@dataclass
class BackendEntry:
    name: str
    # The entry point's target, e.g. "subtitler_whisper:WhisperBackend".
    target: str
    cls: type[Backend] | None
    # Why it cannot be used; None when it can.
    problem: str | None


def discover(config: Config | None = None) -> dict[str, BackendEntry]:
    """Every backend registered in the entry point group, loaded or not; whether each can run
    here is asked with its settings from the environment and `config` (None: the config files)."""
    config = config if config is not None else _load_config()  # read once, not once per backend
    found: dict[str, BackendEntry] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise TypeError(f"{ep.value} is not a subtitler Backend subclass")
        except Exception as e:  # a broken plugin must not take the tool down
            found[ep.name] = BackendEntry(ep.name, ep.value, None, f"failed to load: {e}")
            continue
        problem = _incompatible(cls)
        if problem:
            found[ep.name] = BackendEntry(ep.name, ep.value, None, problem)
            continue
        try:
            problem = cls.unavailable_reason(resolve_settings(cls, config=config))
        except SubtitlerError as e:  # a setting that cannot be used (a bad number...)
            problem = str(e)
        found[ep.name] = BackendEntry(ep.name, ep.value, cls, problem)
    return found


def _incompatible(cls: type[Backend]) -> str | None:
    """Why a plugin written for another version of the contract cannot be used, or None."""
    version = getattr(cls, "api_version", 1)  # plugins from before versioning have none
    if version == API_VERSION:
        return None
    if isinstance(version, int) and version < API_VERSION:
        return (f"written for an older subtitler (plugin API {version}; this subtitler {__version__} "
                f"needs {API_VERSION}): upgrade the plugin")
    return (f"written for a newer subtitler (plugin API {version!r}; this subtitler {__version__} "
            f"has {API_VERSION}): upgrade subtitler")


def broken_plugins(entries: Mapping[str, BackendEntry]) -> list[str]:
    """One line per plugin that could not be loaded at all, for a run to warn about."""
    broken = [e for e in entries.values() if e.cls is None and e.problem]
    return [f"backend plugin {e.name!r}{'' if e.problem.startswith('failed') else ':'} {e.problem}"
            for e in broken]


def _nvidia_gpu_present() -> bool:
    # Cheap check before importing a GPU framework just to learn there is no GPU.
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").exists()


def auto_backend_name(entries: Mapping[str, BackendEntry] | None = None) -> str:
    """The usable local backend that declares the highest priority (`auto_priority`, or
    `gpu_priority` on a machine with an NVIDIA GPU it can use)."""
    entries = entries if entries is not None else discover()
    usable = [e.cls for e in entries.values()
              if e.cls is not None and e.problem is None and not e.cls.remote]
    gpu = _nvidia_gpu_present()

    def priority(cls: type[Backend]) -> int | None:
        if gpu and cls.gpu_priority is not None and cls.cuda_available():
            return cls.gpu_priority
        return cls.auto_priority

    ranked = [(p, cls.name) for cls in usable if (p := priority(cls)) is not None]
    if ranked:
        return max(ranked, key=lambda r: (r[0], [-ord(c) for c in r[1]]))[1]  # a tie: first by name
    raise BackendUnavailable("no usable local backend installed (see `subtitler backends`; "
                             "remote ones are used only when named with --backend)")


def get_backend_class(name: str = "auto", entries: Mapping[str, BackendEntry] | None = None) -> type[Backend]:
    """The class of backend `name` (auto: see auto_backend_name); BackendUnavailable if it cannot
    run here."""
    entries = entries if entries is not None else discover()
    if name == "auto":
        name = auto_backend_name(entries)
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none installed"
        raise BackendUnavailable(f"unknown backend {name!r} (installed: {known})")
    if entry.cls is None or entry.problem:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {entry.problem}")
    return entry.cls


def load_backend(name: str = "auto", model: str | None = None, *, config: Config | None = None,
                 settings: Mapping[str, str] | None = None, **engine: Any) -> Backend:
    """Find backend `name` and load `model` into it (once per run): a shorthand for
    `load_engine(EngineSpec(name, model, ...))`. `engine`: EngineSpec's other fields."""
    return load_engine(EngineSpec(name, model, settings=tuple((settings or {}).items()), **engine), config)


def load_engine(spec: EngineSpec, config: Config | None = None,
                environ: Mapping[str, str] | None = None) -> Backend:
    """The engine `spec` asks for, loaded: its settings from the spec, else the environment,
    else `config`'s [backends.NAME] table (None: the config files)."""
    cls = get_backend_class(spec.backend, discover(config))
    return cls(spec, resolve_settings(cls, dict(spec.settings), config, environ))
