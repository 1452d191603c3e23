"""SIGTERM stops a run as Ctrl-C does.

Service managers, `timeout`, `docker stop` and CI runners stop a process with
SIGTERM. Python's default for it is to die on the spot: no report, temporary
files left behind. `install` turns it into `Terminated`, a KeyboardInterrupt,
raised in the main thread, so every path that cleans up after Ctrl-C cleans
up after SIGTERM too; only the exit code differs (143, as shells report it).
"""

from __future__ import annotations

import signal
from types import FrameType

from .errors import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE

_received: int | None = None  # the stopping signal received, if any


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop, clean up, exit with 143."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is not None:
        return  # already stopping: let the cleanup finish
    _received = signum
    raise Terminated()


def install() -> None:
    """Handle SIGTERM in this process (call from the main thread)."""
    signal.signal(signal.SIGTERM, _on_signal)


def received() -> int | None:
    """The stopping signal received (SIGTERM), or None."""
    return _received


def exit_code() -> int:
    """The exit code for a stopped run: SIGTERM's 143, else Ctrl-C's 130."""
    return TERMINATED_EXIT_CODE if _received is not None else INTERRUPTED_EXIT_CODE
