"""Writing outputs so that a crash or Ctrl-C never leaves a half-written file."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
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


def abandon() -> None:
    """Remove every temporary file still being written, and refuse new ones: the process is exiting."""
    global _abandoned
    with _lock:
        _abandoned = True
        for tmp in _in_progress:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _in_progress.clear()
    if _private_tempdir:
        shutil.rmtree(_private_tempdir, ignore_errors=True)


# The process's own folder for temporary files (use_private_tempdir), or None.
_private_tempdir: str | None = None


def use_private_tempdir() -> None:
    """Put every temporary file and folder of this process in one folder, removed at exit.

    On Ctrl-C or SIGTERM the CLI exits without waiting for busy threads, so their
    TemporaryDirectory blocks (a burn's subtitles, an upload's encoding) never
    finish; with all of them under one folder, `abandon` and the exit remove
    them all, whatever made them (libraries included). Only a SIGKILL leaves it, and
    the next run removes it (its name holds the pid of a process that is gone).
    """
    global _private_tempdir
    _remove_stale_tempdirs()
    root = tempfile.mkdtemp(prefix=f"subtitler-run-{os.getpid()}-")
    tempfile.tempdir = root
    os.environ["TMPDIR"] = root  # and for children and C libraries
    _private_tempdir = root
    atexit.register(shutil.rmtree, root, ignore_errors=True)


def _remove_stale_tempdirs() -> None:
    """Remove the private folders of runs that were killed (SIGKILL, a crash of the machine)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(tempfile.gettempdir()):
            pid = entry.name.split("-")[2] if entry.name.startswith("subtitler-run-") else ""
            if not pid.isdigit() or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:  # gone: its folder is garbage (any other answer: keep it)
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass


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
