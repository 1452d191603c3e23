"""Child processes (ffmpeg, ffprobe) that never outlive subtitler.

On Linux every child is started with PR_SET_PDEATHSIG = SIGKILL: when
subtitler dies, however it dies (SIGKILL included), the kernel kills the
child too. Without it a killed run left its burn's ffmpeg encoding for
minutes, holding the CPU and writing a file nobody would rename.

The setting is made by a small exec shim (_SHIM: Python without site, a few
tens of ms) that sets it and then becomes the tool, not by a preexec_fn: a
preexec_fn makes subprocess fork() the whole multi-threaded process, whose
fork handlers (OpenBLAS's) deadlocked a batch run; without one subprocess uses
vfork, which runs none.

The signal fires when the *thread* that started the child exits, not the
process. That is safe here: every caller starts its child and waits for it
(or kills it) in the same function, so the spawning thread always outlives
its child unless the whole process is going away, which is the case we want.
Other systems start children as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

# argv: the parent's pid, then the command. prctl(PR_SET_PDEATHSIG=1, SIGKILL=9); if the parent
# died before that, no signal will ever come: exit at once. Python ignores SIGPIPE and SIGXFSZ
# at start-up: give the tool their defaults back, as subprocess does (restore_signals).
_SHIM = ("import ctypes, os, signal, sys\n"
         "for s in ('SIGPIPE', 'SIGXFSZ'):\n"
         "    if hasattr(signal, s): signal.signal(getattr(signal, s), signal.SIG_DFL)\n"
         "ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)\n"
         "if os.getppid() != int(sys.argv[1]): os._exit(137)\n"
         "try: os.execvp(sys.argv[2], sys.argv[2:])\n"
         "except OSError as e: sys.stderr.write(f'{sys.argv[2]}: {e.strerror}\\n'); os._exit(127)\n")


def with_pdeathsig(args: list[str]) -> list[str]:
    """`args` run so that the child dies when this process (the calling thread) does."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return list(args)
    return [sys.executable, "-I", "-S", "-c", _SHIM, str(os.getpid()), *args]


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen, but the child dies when subtitler does."""
    return subprocess.Popen(with_pdeathsig(args), **kwargs)


def run(args: list[str], input: bytes | None = None, timeout: float | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """subprocess.run(..., capture_output=True), but the child dies when subtitler does
    (subprocess.TimeoutExpired past `timeout`, the child killed)."""
    with popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:  # Ctrl-C or an error while waiting: don't leave it running
            proc.kill()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
