"""A real Ray cluster on this machine for the tests: a head and worker nodes, each with its own
raylet, every one on 127.0.0.1.

`ray start` makes 127.0.0.1 the machine's outward address on purpose (resolve_ip_for_localhost);
each node is started through a shim that keeps the address given, so every node registers as
127.0.0.1 and the nodes and the driver talk over loopback only. The driver (a `subtitler`
subprocess) gets `driver_env()`: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray's driver take
127.0.0.1 as its own address too. Each node runs in a session of its own, so `kill_node` and
`stop` end exactly the processes it started (never `ray stop`, which ends every Ray on the
machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `ray start`, keeping 127.0.0.1 as the node's address.
_SHIM = ("import sys, ray._private.services as s; s.resolve_ip_for_localhost = lambda host: host; "
         "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a driver (a subtitler run) of a test cluster: loopback only."""
    return {**(env or os.environ), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class LocalCluster:
    """`LocalCluster(workers=1).start()`: a head and `workers` worker nodes of 1 CPU each."""

    def __init__(self, workers: int = 1, cpus: int = 1) -> None:
        self.workers, self.cpus = workers, cpus
        # Short: Ray's sockets live under it, and a socket path has a length limit.
        self.tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # The head's Ray Client server (`ray://`): Ray starts one wherever ray[client] is installed,
        # on 10001 unless told, which would clash with any other cluster on the machine.
        self.client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{self.client_port}"
        self.sessions: list[int] = []  # one per node: the session id its processes share

    def _ray_start(self, *args: str, env: dict[str, str] | None = None) -> int:
        """`ray start ...` in a session of its own; the session's id (the pid of `ray start`)."""
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        proc = subprocess.Popen([sys.executable, "-c", _SHIM, "start", "--node-ip-address", "127.0.0.1",
                                 "--num-cpus", str(self.cpus), "--disable-usage-stats", *args],
                                env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed: {out[-3000:]}")
        return proc.pid

    def start(self) -> LocalCluster:
        try:
            self._ray_start("--head", "--port", str(self.port), "--include-dashboard=false",
                            "--ray-client-server-port", str(self.client_port),
                            "--dashboard-port", str(free_port()), "--temp-dir", str(self.tmp),
                            # The client server's per-client process joins the cluster as a driver
                            # does: with 127.0.0.1 as its address (driver_env). Not for the other
                            # nodes: with it, `ray start` refuses to join a cluster.
                            env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
            for _ in range(self.workers):
                self.add_node()
            _wait_for_port(self.client_port)  # Ray starts its client server without waiting for it
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self) -> int:
        return self._ray_start("--address", self.address)

    def kill_node(self, session: int) -> None:
        """Every process of one node (its raylet, its workers): as a machine that goes away."""
        _kill_session(session)

    def worker_pids(self, session: int) -> list[int]:
        """The node's worker processes (an actor's process is `ray::EngineActor...`)."""
        return [pid for pid, sid, name in _processes() if sid == session and name.startswith("ray::Engine")]

    def alive(self) -> list[int]:
        """Processes of this cluster still running (none after `stop`)."""
        return [pid for pid, sid, _, state in _processes(True) if sid in self.sessions and state != "Z"]

    def stop(self) -> None:
        for session in self.sessions:
            _kill_session(session)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s") from None
            time.sleep(0.1)


def _processes(with_state: bool = False) -> list[tuple]:
    """(pid, session id, name[, state]) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            name = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            fields = stat[stat.rindex(")") + 2:].split()
            row = (int(entry.name), int(fields[3]), name)
            found.append((*row, fields[0]) if with_state else row)
    return found


def _kill_session(session: int) -> None:
    for pid, sid, _ in _processes():
        if sid == session:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(sid == session and state != "Z"
                                              for _, sid, _, state in _processes(True)):
        time.sleep(0.1)
