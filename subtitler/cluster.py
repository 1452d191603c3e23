"""Transcription on a Ray cluster: `subtitler videos/ -o subs/ --cluster HOST:PORT`.

The driver (this process) runs the job path as it always does (job.py, batch.py):
inputs, plans, decoding, the transcript cache, writing, the manifest, the report all
stay here. Only the engine's work goes out: the job's engine is a stand-in
(`ClusterEngine`, a subclass of the real backend class, so the job's settings, cache
keys and manifest entries are exactly a local run's) whose `transcribe` sends the
audio, losslessly compressed (FLAC, the remote backends' lossless upload format),
through Ray's object store to an actor. Each actor loads the real engine once and
runs its `transcribe` on the very same samples and options, so the outputs are
byte for byte a local run's with the same engine settings.

Faults: an actor (or its node) lost mid-file is replaced, and the file goes to
another actor; outputs are written by the driver only, once, atomically, so nothing
is torn or written twice. A driver that dies leaves the manifest and cache as a
local run would: the next run does the rest.

Ray is optional (`pip install 'subtitler-core[ray]'`): it is imported here, and only
when a run asks for a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import process
from .backends import Backend, BackendSettings
from .errors import ClusterError, SubtitlerError
from .events import Event, JobStatus, Report, Warned
from .media import SAMPLE_RATE, _float32, find_tools
from .options import DecodeOptions
from .specs import EngineSpec
from .transcript import Transcript

log = logging.getLogger("subtitler.cluster")

# How long to wait for a TCP connection to the cluster's address before calling it unreachable.
CONNECT_TIMEOUT = 5.0
# A file whose actor is lost is sent again, to another one, up to this many times.
MAX_TRIES = 4
# With no actor ready nor busy for this long (none could be placed: the nodes are gone), give up. Long:
# an engine loading on a node may first download its model.
PLACE_TIMEOUT = 600.0


def connect(address: str, workers: int | None = None) -> Cluster:
    """Connect this process to the Ray cluster at `address` (`HOST:PORT`, `ray://HOST:PORT`, or
    `auto`: $RAY_ADDRESS, else a cluster started on this machine). ClusterError, one line, when
    Ray is not installed or the cluster cannot be reached; nothing else is done before."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray: pip install 'subtitler-core[ray]'") from None
    target = (os.environ.get("RAY_ADDRESS") or "auto") if address == "auto" else address
    if target != "auto":
        _check_reachable(target)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=target, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True, include_dashboard=False)
    except Exception as e:  # Ray's own: ConnectionError, ValueError for a bad address...
        if target == "auto" and isinstance(e, ConnectionError):
            raise ClusterError("--cluster auto: no Ray cluster found on this machine and RAY_ADDRESS is not "
                               "set (give --cluster HOST:PORT)") from None
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {_first_line(e)}") from None
    finally:
        # ray.init makes SIGTERM exit at once: a run stops on SIGTERM as on Ctrl-C (signals.py).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    return Cluster(address, workers)


def _check_reachable(address: str) -> None:
    """A TCP connection to the address, before Ray (which retries for minutes): one line if none."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--cluster {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT) as conn:
            # Ray's head (and its client server) speak gRPC: HTTP/2, whose server answers a client's
            # preface with a SETTINGS frame at once. Anything else listening there would keep
            # ray.init retrying for minutes.
            conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            answer = b""
            while len(answer) < 9:
                chunk = conn.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: no answer as Ray within "
                           f"{CONNECT_TIMEOUT:g} s") from None
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None
    if len(answer) < 9 or answer[3] != 0x04:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: what listens there is not Ray "
                           "(no gRPC answer)")
    _check_port_kind(address, hostport)


def _check_port_kind(address: str, hostport: str) -> None:
    """A head answers on two ports easily mixed up: its GCS (`HOST:PORT`, 6379 by default) and its
    Ray Client server (`ray://HOST:PORT`, 10001). Either given for the other keeps Ray retrying for
    half a minute, logging on stderr; one gRPC call (a method only the GCS has) tells them apart."""
    try:
        import grpc
    except ImportError:  # Ray without its client (grpcio): HOST:PORT only, left to Ray
        return
    with grpc.insecure_channel(hostport) as channel:
        try:
            channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")(b"", timeout=CONNECT_TIMEOUT)
            gcs = True
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                return  # not a clear answer: Ray says what it finds
            gcs = False
    if address.startswith("ray://") and gcs:
        raise ClusterError(f"--cluster {address}: that is the head's GCS port; give it as {hostport} "
                           "(without ray://), or ray:// with the head's Ray Client port (10001 by default)")
    if not address.startswith("ray://") and not gcs:
        raise ClusterError(f"--cluster {address}: not a Ray head's GCS port (its Ray Client server? "
                           f"give ray://{address})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class Cluster:
    """A connected cluster: `attach` gives a job whose engine is the cluster's actors."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        self.address, self.cap = address, workers
        self.engine: ClusterEngine | None = None

    def attach(self, job: Any) -> Any:
        """`job` (job.Job) with its transcriptions done by this cluster's actors: the same spec,
        config, settings, cache keys and manifest entries."""
        from .job import Job

        engine = self.engine_for(job.backend_class, job.spec.transcription.engine, job.backend_settings)
        return Job(job.spec, engine=engine, cache=job.cache, events=job.events, config=job._files,
                   force=job.force, want_transcripts=job.want_transcripts)

    def engine_for(self, backend: type[Backend], spec: EngineSpec,
                   settings: BackendSettings) -> ClusterEngine:
        """The stand-in engine for `backend` with `spec` and `settings` (one per cluster)."""
        if backend.remote:
            raise ClusterError(f"--cluster runs local engines; {backend.name!r} sends audio to a service "
                               "already (use --jobs)")
        resources, size = self._plan(spec)
        cls = type(f"Cluster{backend.__name__}", (ClusterEngine, backend), {})
        self.engine = cls(backend, spec, settings, resources, size)
        return self.engine

    def _plan(self, spec: EngineSpec) -> tuple[dict[str, float], int]:
        """What each actor asks for, and how many fit: a GPU each where the cluster has GPUs (and the
        device is not cpu), else `--threads` CPUs (default 1)."""
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = sum(int(n["Resources"].get("GPU", 0)) for n in nodes)
        if gpus and spec.device != "cpu":
            resources, size = {"num_gpus": 1, "num_cpus": 1}, gpus
        elif spec.device == "cuda":
            raise ClusterError(f"--device cuda, but the Ray cluster at {self.address} has no GPU")
        else:
            cpus = spec.threads or 1
            resources = {"num_cpus": cpus}
            size = sum(int(n["Resources"].get("CPU", 0) // cpus) for n in nodes)
            if not size:
                raise ClusterError(f"no node of the Ray cluster at {self.address} has {cpus} CPUs "
                                   "for an engine")
        return resources, min(size, self.cap) if self.cap else size

    @property
    def size(self) -> int:
        """The actors the engine runs (files transcribed at once)."""
        return self.engine.size if self.engine else 0

    def figures(self) -> dict[str, Any]:
        """For the report: the actors, per-node files and seconds, what was retried."""
        engine = self.engine
        return {"address": self.address, "actors": self.size,
                "nodes": engine.stats.nodes() if engine else {},
                "retried": list(engine.stats.retried) if engine else []}

    def lines(self) -> list[str]:
        """Per-node figures, one line each, for the end of a run."""
        out = []
        for node, n in (self.figures()["nodes"] or {}).items():
            out.append(f"subtitler: node {node}: {n['files']} files, {n['audio_seconds']:.1f} s of audio, "
                       f"{n['engine_seconds']:.1f} s of engine time")
        for r in self.figures()["retried"]:
            out.append(f"subtitler: retried {r['input']} (lost on node {r['node']})")
        return out

    def close(self) -> None:
        """Stop the actors and disconnect (the cluster itself keeps running)."""
        import ray

        if self.engine is not None:
            self.engine.stop()
        with contextlib.suppress(Exception):
            ray.shutdown()


# -- the stand-in engine, on the driver ---------------------------------------------------------


@dataclass
class _Payload:
    """Audio on its way to an actor: FLAC bytes (16-bit samples, losslessly), or raw float32 for
    samples that are not on the 16-bit grid (the Python API's own arrays)."""

    kind: str
    data: bytes
    count: int

    @classmethod
    def of(cls, samples: np.ndarray) -> _Payload:
        samples = np.asarray(samples, np.float32)
        pcm = np.round(samples * 32768.0)
        if len(samples) and np.array_equal((pcm / 32768.0).astype(np.float32), samples) \
                and pcm.min() >= -32768 and pcm.max() <= 32767:
            return cls("flac", _flac(pcm.astype("<i2").tobytes()), len(samples))
        return cls("f32", samples.astype("<f4").tobytes(), len(samples))

    def samples(self) -> np.ndarray:
        if self.kind == "f32":
            return np.frombuffer(self.data, "<f4").copy()
        return _unflac(self.data)


def _flac(pcm: bytes) -> bytes:
    """16 kHz mono s16le as FLAC (about half of it on speech): ffmpeg, bytes in and out."""
    command = [find_tools().ffmpeg, "-nostdin", "-v", "error", "-f", "s16le", "-ar", str(SAMPLE_RATE),
               "-ac", "1", "-i", "pipe:0", "-c:a", "flac", "-f", "flac", "pipe:1"]
    proc = process.run(command, input=pcm)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip() or "?"
        raise ClusterError(f"ffmpeg could not encode the audio as FLAC: {reason.splitlines()[-1]}")
    return proc.stdout


def _unflac(data: bytes) -> np.ndarray:
    """FLAC back to the very float32 samples it was made from (as media.py reads s16le)."""
    command = [find_tools().ffmpeg, "-nostdin", "-v", "error", "-f", "flac", "-i", "pipe:0",
               "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    proc = process.run(command, input=data)
    if proc.returncode != 0:
        raise ClusterError(f"ffmpeg could not decode the audio sent: {proc.stderr.decode(errors='replace')}")
    return _float32(proc.stdout)


@dataclass
class _Stats:
    """Per node: files, seconds of audio, seconds of engine time; and the files sent again."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    per_node: dict[str, dict[str, Any]] = field(default_factory=dict)
    retried: list[dict[str, str]] = field(default_factory=list)

    def add(self, node: str, item: str, audio: float, engine: float) -> None:
        with self.lock:
            n = self.per_node.setdefault(node, {"files": set(), "audio_seconds": 0.0, "engine_seconds": 0.0})
            n["files"].add(item)
            n["audio_seconds"] += audio
            n["engine_seconds"] += engine

    def nodes(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {node: {"files": len(n["files"]), "audio_seconds": round(n["audio_seconds"], 3),
                           "engine_seconds": round(n["engine_seconds"], 3)}
                    for node, n in sorted(self.per_node.items())}


class ClusterEngine(Backend):
    """Stands in for a backend class on the driver (a subclass of it is made per backend: its name,
    options, fingerprint and settings are the real one's); `transcribe` runs on an actor."""

    parallel_files = True  # one file per actor at once

    def __init__(self, backend: type[Backend], spec: EngineSpec, settings: BackendSettings,  # noqa: D107
                 resources: dict[str, float], size: int) -> None:
        # The real engine is never built here: no model loads on the driver.
        self.spec, self.settings, self.backend = spec, settings, backend
        self.model_name = spec.model or backend.default_model
        self.device, self.compute_type, self.threads, self.timeout = \
            spec.device, spec.compute_type, spec.threads, spec.timeout
        self.resources, self.size = resources, size
        self.stats = _Stats()
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    def start(self) -> _Pool:
        """The actors, started on first need (a run with nothing to transcribe starts none)."""
        with self._lock:
            if self._pool is None:
                spec = self.spec
                if "num_gpus" not in self.resources and spec.threads is None:
                    # As many engine threads as CPUs asked for: not the whole node's cores.
                    spec = dataclasses.replace(spec, threads=int(self.resources["num_cpus"]))
                self._pool = _Pool(self.backend, spec, self.settings, self.resources, self.size)
            return self._pool

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()

    def ready(self) -> None:
        """Once an actor has loaded its engine; the engine's own error (a bad model...) if none can:
        the run stops with it, as a local engine's would, instead of failing every file."""
        pool = self.start()
        pool.give(pool.take())

    def prepare(self, audio: np.ndarray) -> _Payload:
        """Compressed in the batch's decode stage, ahead of the engine (as remote uploads are)."""
        self.start()
        return _Payload.of(audio)

    def transcribe(self, audio: np.ndarray, options: DecodeOptions, report: Report,
                   prepared: Any = None) -> Transcript:
        import ray

        pool = self.start()
        ahead = isinstance(prepared, _Payload) and prepared.count == len(audio)
        payload = prepared if ahead else _Payload.of(audio)
        data = ray.put(payload.data)
        item = str(report.input) if report.input is not None else "?"
        for _ in range(MAX_TRIES):
            actor = pool.take()
            try:
                answer = ray.get(actor.handle.transcribe.remote(payload.kind, data, options,
                                                                isinstance(prepared, _Payload)))
            except _lost_errors() as e:
                pool.lost(actor)
                self.stats.retried.append({"input": item, "node": actor.name, "error": _first_line(e)})
                report.warning(f"{item}: the cluster's engine on node {actor.host} was lost "
                               f"({type(e).__name__}); running it again on another")
                continue
            except ray.exceptions.RayTaskError as e:  # a bug in the engine, not a lost worker
                pool.give(actor)
                raise ClusterError(f"{item}: the engine failed on node {actor.host}: "
                                   f"{_first_line(e)}") from None
            pool.give(actor)
            if answer.get("error") is not None:
                raise answer["error"]
            for kind, message in answer["messages"]:
                report.status(message) if kind == "status" else report.warning(message)
            transcript = Transcript.from_dict(answer["transcript"])
            report.progress(len(audio) / SAMPLE_RATE)
            self.stats.add(actor.name, item, len(audio) / SAMPLE_RATE, answer["seconds"])
            return transcript
        raise ClusterError(f"{item}: its engine was lost {MAX_TRIES} times on the cluster; giving up")


def _lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a worker process or node that went away (the task itself did not fail)."""
    from ray import exceptions as x

    return (x.RayActorError, x.WorkerCrashedError, x.NodeDiedError, x.ObjectLostError)


@dataclass
class _Actor:
    handle: Any
    node: str
    host: str

    @property
    def name(self) -> str:
        """Its node as the figures name it: address and the start of Ray's node id (several nodes
        can share an address)."""
        return f"{self.host} {self.node[:8]}"


class _Pool:
    """The actors: each ready one waits in a queue for a file; a lost one is replaced by a new actor
    (placed by Ray wherever there is room), which joins the queue once its engine is loaded."""

    def __init__(self, backend: type[Backend], spec: EngineSpec, settings: BackendSettings,
                 resources: dict[str, float], size: int) -> None:
        import ray

        self.cls = ray.remote(max_restarts=0, max_task_retries=0, **resources)(EngineActor)
        self.args = (backend, spec, settings)
        self.ready: list[_Actor] = []
        self.cond = threading.Condition()
        self.pending = 0  # actors loading their engine
        self.busy = 0
        self.error: SubtitlerError | None = None
        self.stopped = False
        self.handles: list[Any] = []
        self.size, self.load_losses = size, 0
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        handle = self.cls.remote(*self.args)
        with self.cond:
            self.pending += 1
            self.handles.append(handle)
        threading.Thread(target=self._await, args=(handle,), daemon=True, name="cluster-actor").start()

    def _await(self, handle: Any) -> None:
        import ray

        try:
            node, host, error = ray.get(handle.ready.remote())
        except Exception as e:  # died while loading (its node went away): another takes its place
            log.info("an actor was lost while loading: %s", _first_line(e))
            with self.cond:
                self.pending -= 1
                self.load_losses += 1
                if self.load_losses > MAX_TRIES * self.size:  # not the nodes: the engine kills its process
                    self.error = ClusterError(f"the engines keep dying while they load on the cluster "
                                              f"({_first_line(e)})")
                    self.cond.notify_all()
                    return
            if not self.stopped:
                self._spawn()
            return
        with self.cond:
            self.pending -= 1
            if error is not None:  # the engine cannot load (a bad model...): every file would fail
                self.error = error
            else:
                self.ready.append(_Actor(handle, node, host))
            self.cond.notify_all()

    def take(self) -> _Actor:
        """A ready actor (waiting for one); the engine's error if none can load."""
        waited_idle = 0.0
        with self.cond:
            while True:
                if self.ready:
                    self.busy += 1
                    return self.ready.pop(0)
                if self.error is not None:
                    raise self.error
                self.cond.wait(1.0)
                # Nothing ready nor busy: if that lasts, no node has room for an engine any more.
                waited_idle = waited_idle + 1.0 if not self.busy else 0.0
                if waited_idle > PLACE_TIMEOUT:
                    raise ClusterError(f"no engine could be placed on the cluster for {PLACE_TIMEOUT:.0f} s "
                                       "(its nodes are gone, or busy)")

    def give(self, actor: _Actor) -> None:
        with self.cond:
            self.busy -= 1
            self.ready.append(actor)
            self.cond.notify_all()

    def lost(self, actor: _Actor) -> None:
        import ray

        with self.cond:
            self.busy -= 1
        with contextlib.suppress(Exception):
            ray.kill(actor.handle, no_restart=True)
        self._spawn()

    def stop(self) -> None:
        import ray

        self.stopped = True
        for handle in self.handles:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)


# -- the actor, on a cluster node ------------------------------------------------------------------


class EngineActor:
    """Holds one loaded engine and transcribes the audio it is sent (a Ray actor: `ray.remote` makes
    it one, with the resources the cluster plans)."""

    def __init__(self, backend: type[Backend], spec: EngineSpec, settings: BackendSettings) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.host = ray.util.get_node_ip_address()
        self.error: SubtitlerError | None = None
        try:
            self.engine: Backend | None = backend(spec, settings)
        except SubtitlerError as e:
            self.engine, self.error = None, e

    def ready(self) -> tuple[str, str, SubtitlerError | None]:
        return self.node, self.host, self.error

    def transcribe(self, kind: str, data: bytes, options: DecodeOptions, prepare: bool) -> dict[str, Any]:
        """The engine's transcript of the audio sent (as a dict), what it told, and its seconds."""
        assert self.engine is not None
        messages: list[tuple[str, str]] = []

        def told(event: Event) -> None:
            if isinstance(event, JobStatus):
                messages.append(("status", event.message))
            elif isinstance(event, Warned):
                messages.append(("warning", event.message))

        try:
            samples = _Payload(kind, data, 0).samples()
            start = time.perf_counter()
            engine = self.engine
            # As the local job does: the engine's own work ahead (Backend.prepare) for a file's first piece.
            own = type(engine).prepare is not Backend.prepare
            prepared = engine.prepare(samples) if prepare and own else None
            transcript = engine.transcribe(samples, options, Report(told), prepared)
            return {"transcript": transcript.to_dict(), "messages": messages, "node": self.node,
                    "seconds": time.perf_counter() - start, "error": None}
        except SubtitlerError as e:
            return {"error": e, "messages": messages, "node": self.node}
