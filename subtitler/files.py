"""Writing outputs so that a crash or Ctrl-C never leaves a half-written file."""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

try:
    import fcntl
except ImportError:  # not on Windows: no liveness locks, leftovers are then never removed
    fcntl = None  # type: ignore[assignment]

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
    exception (KeyboardInterrupt included) it is removed. While it exists this
    process holds an flock on it: `remove_leftovers` tells a killed writer's
    temporary file (removable) from a live one's (kept) by it.
    """
    path = Path(path)
    with _lock:
        if _abandoned:
            raise OutputError(f"{path}: not written: the run is stopping")
        fd, tmp = _locked_temp(path)
        _in_progress.add(tmp)
    try:
        # mkstemp makes the file private (0600); give it the usual permissions.
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.close(fd)
        with _lock:
            _in_progress.discard(tmp)
        raise
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
        os.close(fd)
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


def lock_named(fd: int, path: str | Path) -> bool:
    """flock `fd` (waiting for it), and say whether `path` still names the file locked: another
    process may have removed it in the meantime, and a lock on a removed file guards nothing.
    True where there is no flock (the file is then used unlocked, as before)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        return True  # a file system without flock
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def _locked_temp(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, flocked (released by the kernel when this process dies)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".part{path.suffix}", dir=path.parent)
        if lock_named(fd, tmp):
            return fd, tmp
        # Another run took it for a leftover in the instant before it was locked: take another.
        os.close(fd)


def remove_leftovers(target: Path) -> None:
    """Remove the temporary files of `target` (atomic_path's names) that a killed process left.

    A temporary file whose writer is alive, in this process or another one (two runs writing
    the same folder), is locked (see atomic_path) and kept.
    """
    if fcntl is None:
        return
    target = Path(target)
    pattern = f"{glob.escape(temp_prefix(target))}*.part{glob.escape(target.suffix)}"
    for leftover in target.parent.glob(pattern):
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue  # gone already
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            leftover.unlink()
        except OSError:
            pass  # locked: being written now
        finally:
            os.close(fd)


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


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
