"""Writing outputs so that a crash or Ctrl-C never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

# Temporary files being written now, from any thread: on Ctrl-C the CLI exits without waiting
# for busy threads, and removes these first (`abandon`).
_in_progress: set[str] = set()
_lock = threading.Lock()
_abandoned = False


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` on success.

    The temporary file lives in the same directory so the final rename is
    atomic, and keeps the extension (ffmpeg picks its muxer from it); on any
    exception (KeyboardInterrupt included) it is removed.
    """
    path = Path(path)
    with _lock:
        if _abandoned:
            raise OutputError(f"{path}: not written: the run is stopping")
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".part{path.suffix}", dir=path.parent)
        _in_progress.add(tmp)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the usual permissions.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        if _abandoned:  # removed by abandon() while being written
            raise OutputError(f"{path}: not written: the run is stopping")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        with _lock:
            _in_progress.discard(tmp)


# File names are at most 255 bytes; mkstemp adds 8 random characters.
_NAME_MAX = 255
_RANDOM = 8


def temp_prefix(path: Path) -> str:
    """The start of `path`'s temporary names (`.{stem}.`), its stem cut so that the whole
    temporary name fits where the final name does (a 240-byte name got a 259-byte one)."""
    room = _NAME_MAX - len(os.fsencode(f"..{'x' * _RANDOM}.part{path.suffix}"))
    return f".{os.fsdecode(os.fsencode(path.stem)[:max(room, 1)])}."


def abandon() -> None:
    """Remove every temporary file still being written, and refuse new ones: the process is exiting."""
    global _abandoned
    with _lock:
        _abandoned = True
        for tmp in _in_progress:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _in_progress.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (all or nothing)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
