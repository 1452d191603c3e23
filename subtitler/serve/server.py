"""Starting the server: refuse an unsafe or unusable setup in one line, listen, run uvicorn.

The socket is bound here, before uvicorn starts, so a busy port is a clear
error (ServeError) and `--port 0` picks a free one (the line on stderr names
it). Binding an address other machines can reach with no API key configured is
refused (InsecureServe) unless --insecure-no-auth says it is meant.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from pathlib import Path

from ..backends import Backend
from ..cache import Cache
from ..config import Config
from ..errors import InsecureServe, ServeError, SubtitlerError
from ..specs import JobSpec
from .app import ServeSettings, create_app
from .auth import KEYS_ENV, Keys, Signer
from .limits import H11_MAX_HEADERS, timed_h11
from .retention import Retention
from .shutdown import GracefulServer
from .store import Store
from .webhooks import SECRET_ENV, Webhooks
from .workers import Workers


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost may resolve anywhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, keys: Keys, insecure_no_auth: bool) -> None:
    if not keys.required and not is_loopback(host) and not insecure_no_auth:
        raise InsecureServe(f"refusing to listen on {host} with no API key: set {KEYS_ENV} or keys-file, "
                            "or pass --insecure-no-auth to serve anyone who can reach it")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (ServeError naming them if it cannot be had)."""
    try:
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it a kept-alive connection waits 40 ms (Nagle and delayed ACKs) for each answer.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as e:
        raise ServeError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    return sock


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    access = logging.StreamHandler(sys.stderr)
    access.setFormatter(logging.Formatter("%(message)s"))  # the JSON line alone (logs.py)
    for name, level, out in (("subtitler.serve", logging.INFO, handler),
                             ("uvicorn", logging.WARNING, handler),
                             ("subtitler.serve.access", logging.INFO, access)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.handlers:
            logger.addHandler(out)
        logger.propagate = False


class Server:
    """The server, set up and listening (refused here if it cannot be), until `run` serves."""

    def __init__(self, settings: ServeSettings, spec: JobSpec, keys: Keys, *, config: Config | None = None,
                 engines: list[Backend] | None = None) -> None:
        """`engines`: loaded engines to use instead of loading them (tests)."""
        import uvicorn

        check_exposure(settings.host, keys, settings.insecure_no_auth)
        if settings.webhook_url and not settings.webhook_secret:
            raise ServeError(f"--webhook-url needs a secret to sign with: set {SECRET_ENV} or webhook-secret")
        self.store = Store(settings.data_dir)
        self.workers = Workers(self.store, spec, settings.workers, cache=Cache(), config=config,
                               engines=engines)
        self.workers.check()
        self.sock = listen(settings.host, settings.port)
        self.failed: list[SubtitlerError] = []
        self.settings = settings
        self.retention = Retention(self.store, settings.retention)
        self.webhooks = Webhooks(self.store, settings.webhook_secret, settings.webhook_allow,
                                 server_url=settings.webhook_url, backoff=settings.webhook_backoff)
        app = create_app(settings, self.store, keys, Signer.for_folder(settings.data_dir), self.workers,
                         self._engine_failed)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_keep_alive=5,
                                http=timed_h11(settings.header_timeout),
                                h11_max_incomplete_event_size=H11_MAX_HEADERS,
                                timeout_graceful_shutdown=5)  # open connections, once stopping
        self.uvicorn = GracefulServer(config, self.drain)
        host, port = self.sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def _engine_failed(self, e: Exception) -> None:
        self.failed.append(e if isinstance(e, SubtitlerError) else ServeError(str(e)))
        self.stop()

    def run(self) -> None:
        """Serve until stopped (SIGINT, SIGTERM, `stop`); the engine's error if it could not load."""
        self.retention.start()
        self.webhooks.start()
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self.workers.stop()  # a job still running ends with the process (and runs again on restart)
            self.webhooks.stop()
            self.retention.stop()
            self.sock.close()
        if self.failed:
            raise self.failed[0]

    def stop(self) -> None:
        self.uvicorn.should_exit = True

    def drain(self) -> bool:
        """Refuse new work, wait up to --grace for the running jobs (shutdown.py); whether all ended."""
        running = len(self.workers.running)
        drained = self.workers.drain(self.settings.grace)
        if running:
            logging.getLogger("subtitler.serve").info(
                "draining: %s", "the running jobs finished" if drained else
                f"grace over ({self.settings.grace:g}s): the jobs still running run again at the next start")
        return drained


def serve(settings: ServeSettings, spec: JobSpec, *, keys_file: Path | None = None,
          config: Config | None = None, engines: list[Backend] | None = None) -> None:
    """`subtitler serve`: run the server until it is stopped; SubtitlerError for a setup it refuses
    or an engine that cannot load. `engines`: the workers' (a cluster's, --cluster)."""
    server = Server(settings, spec, Keys.load(keys_file), config=config, engines=engines)
    _logging()
    # The event loop gets the GIL back sooner from the workers' Python parts (5 ms by default):
    # /health stays quick while every worker is busy.
    sys.setswitchinterval(0.001)
    print(f"subtitler: serving on {server.url} (API docs: {server.url}/docs; data: {settings.data_dir})",
          file=sys.stderr, flush=True)
    server.run()
    if server.uvicorn.drained:
        print("subtitler: stopped after SIGTERM, no job cut off (waiting jobs run at the next start)",
              file=sys.stderr, flush=True)
