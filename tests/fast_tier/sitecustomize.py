"""The fast tier's guard: a speech engine loaded during `make test-fast` is refused and recorded.

`make test-fast` (SUBTITLER_TEST_FAST=1) runs no engine: the root conftest.py deselects the tests
marked `engine`, runs this file in the test process, and puts this folder on PYTHONPATH so that every
Python the tests start (the `subtitler` command in a subprocess) runs it at start-up as
`sitecustomize`. Constructing a faster-whisper or openai-whisper model then raises, and is written
to $SUBTITLER_TEST_FAST_LOG, which conftest.py reads after each test: a test that loads an engine
without the mark fails by name, whatever the code under test made of the exception, instead of
quietly making the fast tier slow. Nothing here runs without SUBTITLER_TEST_FAST.

The hook sits on the engines' own classes, not on subtitler's code, so it holds however a plugin
reaches them; the modules are patched as they are imported (importing torch just to patch it would
cost the fast tier seconds).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType

# The module that defines each engine's model class, and that class: constructing it loads weights.
ENGINES = {"faster_whisper.transcribe": "WhisperModel", "whisper.model": "Whisper"}


class EngineInFastTier(RuntimeError):
    """An Exception, not a BaseException: the code under test handles it as any failure (no hung
    worker threads); the log entry is what makes the test fail."""


def refuse(what: str) -> None:
    log = os.environ.get("SUBTITLER_TEST_FAST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{what} (pid {os.getpid()})\n")
    raise EngineInFastTier(f"{what}: a speech engine loaded in the fast tier (make test-fast); "
                           "mark the test `engine`")


def guard(module: ModuleType, name: str) -> None:
    what = f"{module.__name__}.{name}"

    def __init__(self, *args: object, **kwargs: object) -> None:
        refuse(what)

    getattr(module, name).__init__ = __init__


class _GuardOnImport(importlib.abc.MetaPathFinder):
    """Finds an engine module with the other finders, and guards its class once it has run."""

    def find_spec(self, name: str, path: object,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in ENGINES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_guard(module: ModuleType) -> None:
            exec_module(module)
            guard(module, ENGINES[name])

        spec.loader.exec_module = exec_and_guard  # this module's own loader object
        return spec


def install() -> None:
    for name, cls in ENGINES.items():
        if name in sys.modules:
            guard(sys.modules[name], cls)
    sys.meta_path.insert(0, _GuardOnImport())


if os.environ.get("SUBTITLER_TEST_FAST"):
    install()
