"""The backend contract and the registry that finds backends through entry points.

A backend is a class deriving from `Backend`, published by any installed
distribution in the entry point group `subtitler.backends`:

    [project.entry-points."subtitler.backends"]
    whisper = "subtitler_whisper:WhisperBackend"

The core has no built-in engine and no special path for the bundled plugins:
they install and load exactly as a third party's would. A plugin that fails to
import is reported (with the reason) and skipped; the others keep working.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import numpy as np

from .errors import BackendUnavailable, UnsupportedOption
from .options import DecodeOptions
from .transcript import Transcript

ENTRY_POINT_GROUP = "subtitler.backends"

# Called with the seconds of audio transcribed so far.
Progress = Callable[[float], None]

# Where report_status() lines go; a context variable, so each --jobs thread has its own.
_on_status: ContextVar[Callable[[str], None] | None] = ContextVar("subtitler_on_status", default=None)


def report_status(message: str) -> None:
    """Tell the user a backend's work changed state ("uploading 1.2 MB", "job 3f2a: processing").

    For remote services, whose waits have no seconds-of-audio progress; a no-op
    unless the caller set a reporter with `status_reporter`.
    """
    callback = _on_status.get()
    if callback is not None:
        callback(message)


@contextlib.contextmanager
def status_reporter(callback: Callable[[str], None]) -> Iterator[None]:
    """Send report_status() messages from this thread to `callback` while inside."""
    token = _on_status.set(callback)
    try:
        yield
    finally:
        _on_status.reset(token)


class Backend(ABC):
    """One speech-to-text engine. Subclass it and implement `transcribe`.

    The constructor loads the model, once; `transcribe` is then called for
    every file of a run.
    """

    #: The name users pass to --backend.
    name: ClassVar[str]
    #: One line for `subtitler backends`.
    description: ClassVar[str] = ""
    #: The DecodeOptions fields this engine honours; setting any other to a
    #: non-default value is an error rather than silently ignored.
    supported_options: ClassVar[frozenset[str]] = frozenset(DecodeOptions.names())
    #: Model used when the user names none.
    default_model: ClassVar[str] = "tiny.en"
    #: Whether the backend enforces --timeout (an overall deadline; remote services).
    supports_timeout: ClassVar[bool] = False
    #: Whether several files may be transcribed at once from threads (--jobs): remote services.
    parallel_files: ClassVar[bool] = False
    #: Whether the audio leaves this machine: `auto` never picks such a backend.
    remote: ClassVar[bool] = False
    #: The keys its `[backends.NAME]` config table may have (base-url, api-key...): any other
    #: key is a typo, refused when the config is read instead of silently ignored.
    config_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        compute_type: str = "auto",
        threads: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.model_name = model or self.default_model
        self.device = device
        self.compute_type = compute_type
        # A deliberate thread count: engines left to guess oversubscribe shared cores.
        self.threads = threads or len(os.sched_getaffinity(0))
        if timeout is not None and not self.supports_timeout:
            raise UnsupportedOption(f"backend {self.name!r} has no --timeout (it does not wait on a service)")
        self.timeout = timeout

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when usable here, else why not (missing package, no key, ...)."""
        return None

    @classmethod
    def cuda_available(cls) -> bool:
        """True when this engine can run on an NVIDIA GPU here."""
        return False

    def prepare(self, audio: np.ndarray) -> None:
        """Optional work on a file's audio ahead of `transcribe`, in a batch's decode stage.

        Called from another thread while the engine may be busy with the previous
        file. Remote backends encode their upload here, so a free job slot goes
        straight to uploading; `transcribe` must still work when prepare was not called.
        """
        return None  # nothing to do ahead for most engines

    @abstractmethod
    def transcribe(
        self, audio: np.ndarray, options: DecodeOptions, progress: Progress | None = None
    ) -> Transcript:
        """Turn 16 kHz mono float32 samples into a Transcript with word timings.

        The pipeline has already called `check_options`; raise UnsupportedOption
        for combinations the engine or model cannot honour.
        """

    @classmethod
    def check_options(cls, options: DecodeOptions) -> None:
        """Refuse options this engine would otherwise silently ignore (no model needed)."""
        ignored = sorted(set(options.changed()) - cls.supported_options)
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


def discover() -> dict[str, BackendEntry]:
    """Every backend registered in the entry point group, loaded or not."""
    found: dict[str, BackendEntry] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise TypeError(f"{ep.value} is not a subtitler Backend subclass")
            problem = cls.unavailable_reason()
        except Exception as e:  # a broken plugin must not take the tool down
            warnings.warn(f"backend plugin {ep.name!r} failed to load: {e}", stacklevel=2)
            found[ep.name] = BackendEntry(ep.name, ep.value, None, f"failed to load: {e}")
            continue
        found[ep.name] = BackendEntry(ep.name, ep.value, cls, problem)
    return found


def _nvidia_gpu_present() -> bool:
    # Cheap check before importing a GPU framework just to learn there is no GPU.
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").exists()


def auto_backend_name(entries: dict[str, BackendEntry] | None = None) -> str:
    """`whisper` on a GPU, `faster-whisper` on a CPU, else any usable local backend."""
    entries = entries if entries is not None else discover()
    usable = {n: e for n, e in entries.items()
              if e.cls is not None and e.problem is None and not e.cls.remote}
    whisper = usable.get("whisper")
    if whisper and whisper.cls and _nvidia_gpu_present() and whisper.cls.cuda_available():
        return "whisper"
    for preferred in ("faster-whisper", "whisper"):
        if preferred in usable:
            return preferred
    if usable:
        return sorted(usable)[0]
    raise BackendUnavailable("no usable local backend installed (see `subtitler backends`; "
                             "remote ones are used only when named with --backend)")


def get_backend_class(name: str = "auto") -> type[Backend]:
    entries = discover()
    if name == "auto":
        name = auto_backend_name(entries)
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none installed"
        raise BackendUnavailable(f"unknown backend {name!r} (installed: {known})")
    if entry.cls is None or entry.problem:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {entry.problem}")
    return entry.cls


def load_backend(name: str = "auto", model: str | None = None, **settings: object) -> Backend:
    """Find backend `name` and load `model` into it (once per run)."""
    return get_backend_class(name)(model, **settings)  # type: ignore[arg-type]
