"""--cluster: folder runs and `subtitler serve` on a real Ray cluster started here.

One cluster for the module: a head and a worker node (1 CPU each, each with its own raylet, all
on 127.0.0.1: tests/ray_cluster.py; the head's Ray Client server too, for `ray://`), stopped at
the end whatever happens; one test adds a third node and removes it. The driver is always
a `subtitler` subprocess, as a user runs it; the engine is faster-whisper tiny.en with one thread
on both sides (the same engine settings), on twelve short files of real speech.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import assert_one_line_error, made
from tests.ray_cluster import LocalCluster, driver_env, free_port
from tests.speech import sentences, write_audio

ENGINE = ["--backend", "faster-whisper", "--model", "tiny.en", "--threads", "1"]
FILES = 12


def subtitler(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "subtitler", *args], capture_output=True, text=True,
                          env=driver_env(), timeout=300, **kwargs)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalCluster(workers=1).start()
    try:
        yield nodes
    finally:
        nodes.stop()
        assert not nodes.alive(), "a Ray process of the test cluster outlived it"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Twelve files of real speech (the sample's sentences, each after its own lead-in of silence,
    so no two have the same audio), as WAV and AAC."""
    out = tmp_path_factory.mktemp("cluster-media")
    said = sentences()
    for k in range(FILES):
        samples = np.concatenate([np.zeros(1600 * (k + 1), np.float32), said[k % len(said)][0]])
        write_audio(out / f"clip{k:02d}{'.m4a' if k % 3 == 0 else '.wav'}", samples)
    return out


@pytest.fixture(scope="module")
def local(folder, tmp_path_factory) -> Path:
    """The same folder run on this machine alone (one engine, one thread): the reference. Run with
    `-X importtime`, which lists every module the run imports: Ray is not one of them."""
    out = tmp_path_factory.mktemp("local-run")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "subtitler", str(folder), "-o", str(out),
                           "-f", "srt,vtt,json", "--no-cache", *ENGINE], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "subtitler.batch" in imported and "faster_whisper" in imported
    assert not {m for m in imported if m == "ray" or m.startswith("ray.")}, "a local run imported Ray"
    return out


@pytest.mark.engine
def test_a_folder_on_two_nodes_gives_the_local_run_s_files_byte_for_byte(cluster, folder, local, tmp_path):
    out = tmp_path / "subs"
    proc = subtitler(str(folder), "-o", str(out), "-f", "srt,vtt,json", "--no-cache", *ENGINE,
                     "--cluster", cluster.address, "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert outputs(out) == outputs(local)  # every subtitle and transcript file, byte for byte
    assert len(outputs(out)) == 3 * FILES
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["done"] == FILES
    figures = report["cluster"]
    assert figures["actors"] == 2 and figures["retried"] == []
    nodes = figures["nodes"]
    assert len(nodes) == 2 and sum(n["files"] for n in nodes.values()) == FILES  # both nodes worked
    media = sum(o["duration"] for o in report["inputs"])
    assert abs(sum(n["audio_seconds"] for n in nodes.values()) - media) < 0.01
    assert all(n["engine_seconds"] > 0 for n in nodes.values())
    # The same figures at the end of the run, a line per node.
    assert sum(line.startswith("subtitler: node 127.0.0.1 ") for line in proc.stderr.splitlines()) == 2
    # A run again on the cluster finds everything up to date: the manifest is the local run's too.
    again = subtitler(str(folder), "-o", str(out), "-f", "srt,vtt,json", *ENGINE,
                      "--cluster", cluster.address)
    assert again.returncode == 0 and f"{FILES} up-to-date" in again.stderr, again.stderr[-2000:]


# Serial: Ray Client's server must start a process for each client within its own 30 s
# (TIMEOUT_FOR_SPECIFIC_SERVER_S); beside another test process on a fresh clone it once did not.
@pytest.mark.serial
@pytest.mark.engine
def test_through_ray_client_a_few_files_give_the_local_run_s_files_byte_for_byte(cluster, folder, local,
                                                                                  tmp_path):
    """`--cluster ray://HOST:PORT`: the head's Ray Client server; the driver is a client of it."""
    out = tmp_path / "subs"
    names = ["clip00.m4a", "clip01.wav", "clip02.wav"]
    proc = subtitler(*(str(folder / name) for name in names), "-o", str(out), "-f", "srt,vtt,json",
                     "--no-cache", *ENGINE, "--cluster", cluster.client_address,
                     "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stems = {name.split(".")[0] for name in names}
    assert outputs(out) == {name: data for name, data in outputs(local).items()
                            if name.split(".")[0] in stems}  # byte for byte
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cluster"]["address"] == cluster.client_address and report["summary"]["done"] == len(names)
    assert sum(n["files"] for n in report["cluster"]["nodes"].values()) == len(names)


@pytest.mark.engine
def test_a_worker_process_killed_mid_file_runs_that_file_again_elsewhere(cluster, folder, local, tmp_path):
    out, report = tmp_path / "subs", tmp_path / "report.json"
    run = subprocess.Popen([sys.executable, "-m", "subtitler", str(folder), "-o", str(out), "-f", "srt",
                            "--no-cache", *ENGINE, "--cluster", cluster.address, "--report", str(report)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=driver_env())
    try:
        worker_node = cluster.sessions[1]
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and run.poll() is None:
            busy = [p for p in cluster.worker_pids(worker_node)
                    if _title(p).startswith("ray::EngineActor.transcribe")]
            if busy:
                os.kill(busy[0], signal.SIGKILL)  # the worker node's engine, in the middle of a file
                killed = busy[0]
            time.sleep(0.02)
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert killed, "the worker node never transcribed"
    assert run.returncode == 0, stderr[-3000:]
    # Every output once, whole: the same bytes as the local run's.
    srt = {name: data for name, data in outputs(local).items() if name.endswith(".srt")}
    assert outputs(out) == srt
    assert not [p for p in out.iterdir() if p.name.startswith(".") and not p.name.startswith(".subtitler.")]
    data = json.loads(report.read_text())
    assert data["summary"]["done"] == FILES
    retried = data["cluster"]["retried"]
    assert len(retried) == 1 and Path(retried[0]["input"]).parent == folder
    assert f"retried {retried[0]['input']}" in stderr and "was lost" in stderr


@pytest.mark.engine
def test_a_node_removed_mid_file_runs_that_file_again_on_the_others(cluster, folder, local, tmp_path):
    """A third worker node, started for this test alone, goes away whole (its raylet and its
    workers) while its engine is in the middle of a file: the head and the other worker finish."""
    session = cluster.add_node()
    out, report = tmp_path / "subs", tmp_path / "report.json"
    try:
        run = subprocess.Popen([sys.executable, "-m", "subtitler", str(folder), "-o", str(out), "-f", "srt",
                                "--no-cache", *ENGINE, "--cluster", cluster.address, "--report", str(report)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=driver_env())
        try:
            removed = False
            deadline = time.monotonic() + 120
            while not removed and time.monotonic() < deadline and run.poll() is None:
                busy = [p for p in cluster.worker_pids(session)
                        if _title(p).startswith("ray::EngineActor.transcribe")]
                if busy:
                    cluster.kill_node(session)  # the whole node, in the middle of a file
                    removed = True
                time.sleep(0.02)
            _, stderr = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    finally:
        cluster.kill_node(session)
    assert removed, "the third node never transcribed"
    assert run.returncode == 0, stderr[-3000:]
    srt = {name: data for name, data in outputs(local).items() if name.endswith(".srt")}
    assert outputs(out) == srt  # every output once, whole, the local run's bytes
    assert not [p for p in out.iterdir() if p.name.startswith(".") and not p.name.startswith(".subtitler.")]
    data = json.loads(report.read_text())
    assert data["summary"]["done"] == FILES and data["cluster"]["actors"] == 3
    retried = data["cluster"]["retried"]
    assert len(retried) == 1 and Path(retried[0]["input"]).parent == folder
    assert f"retried {retried[0]['input']}" in stderr and "was lost" in stderr
    assert sum(n["files"] for n in data["cluster"]["nodes"].values()) == FILES  # each once, where it was done


@pytest.mark.engine
def test_after_the_driver_is_killed_a_run_again_transcribes_only_the_unfinished(cluster, folder, tmp_path):
    out = tmp_path / "subs"
    args = [sys.executable, "-m", "subtitler", str(folder), "-o", str(out), "-f", "srt", *ENGINE,
            "--cluster", cluster.address]
    run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=driver_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            if out.is_dir() and len(made(out)) >= 4:
                break
            time.sleep(0.02)
        run.kill()  # SIGKILL: no cleanup at all
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
    finished = {p.stem for p in made(out)}
    assert 4 <= len(finished) < FILES
    proc = subtitler(str(folder), "-o", str(out), "-f", "srt", *ENGINE, "--cluster", cluster.address,
                     "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = json.loads((tmp_path / "report.json").read_text())["inputs"]
    status = {Path(o["input"]).stem: o["status"] for o in inputs}
    assert len(status) == FILES and set(status.values()) <= {"up-to-date", "done", "rendered"}
    transcribed = {name for name, s in status.items() if s == "done"}
    # What was finished is not done again; at most the file being written when the driver died (its
    # manifest entry still pending) is rendered again from the transcript cache.
    assert not transcribed & finished
    assert len([n for n in finished if status[n] != "up-to-date"]) <= 1
    assert transcribed | finished == set(status)
    # Every output once, and nothing the killed run left half-written.
    assert sorted(p.name for p in out.iterdir()) == [".subtitler.json", ".subtitler.lock",
                                                     *sorted(f"{name}.srt" for name in status)]


@pytest.mark.engine
def test_a_model_the_actors_cannot_load_stops_the_run_with_its_own_error(cluster, folder, tmp_path):
    proc = subtitler(str(folder), "-o", str(tmp_path / "subs"), "--backend", "faster-whisper",
                     "--model", str(tmp_path / "no-such-model"), "--cluster", cluster.address)
    # Once, as a local run says it, not once per file.
    lines = [line for line in proc.stderr.splitlines() if not line.endswith(": started")]
    assert proc.returncode == 8 and len(lines) == 1 and "no-such-model" in lines[0], proc.stderr
    assert not list((tmp_path / "subs").glob("*.srt"))


def test_a_run_without_cluster_never_imports_ray(tmp_path):
    """What `make test-fast` can check (the engine tier checks a transcribing run: `local`)."""
    transcript = tmp_path / "clip.json"
    transcript.write_text(json.dumps({"schema": "subtitler.transcript", "version": 1, "language": "en",
                                      "duration": 2.0, "segments": [{"start": 0.2, "end": 1.5,
                                      "text": " Hello there.", "words": []}]}))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "subtitler", str(transcript),
                           "-f", "srt", "-o", str(tmp_path / "subs")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and (tmp_path / "subs" / "clip.srt").is_file(), proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "subtitler.batch" in imported and "subtitler.cli" in imported
    assert not {m for m in imported if m == "ray" or m.startswith("ray.")}


def test_the_audio_sent_to_an_actor_is_the_very_samples(sample_audio):
    from subtitler.cluster import _Payload

    samples = sample_audio.samples  # decoded as every input is: 16-bit samples
    payload = _Payload.of(samples)
    assert payload.kind == "flac" and len(payload.data) < 0.6 * 2 * len(samples)
    assert np.array_equal(payload.samples(), samples) and payload.samples().dtype == np.float32
    odd = (samples[:16000] * 0.7).astype(np.float32)  # not on the 16-bit grid: sent as it is
    assert _Payload.of(odd).kind == "f32" and np.array_equal(_Payload.of(odd).samples(), odd)


@pytest.mark.parametrize(("there", "scheme"), [("nothing", ""), ("not Ray", ""), ("nothing", "ray://")])
def test_an_unreachable_cluster_is_one_line_and_exit_40_before_any_work(folder, tmp_path, there, scheme):
    out = tmp_path / "subs"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        if there == "not Ray":  # accepts connections, never answers (Ray itself would retry for minutes)
            listening.listen()
        address = f"{scheme}127.0.0.1:{listening.getsockname()[1]}"
        started = time.monotonic()
        proc = subtitler(str(folder), "-o", str(out), *ENGINE, "--cluster", address)
    assert_one_line_error(proc, 40, f"cannot reach the Ray cluster at {address}")
    assert not out.exists()
    assert time.monotonic() - started < 20


@pytest.mark.slow
def test_a_head_s_two_ports_mixed_up_are_one_line_and_exit_40_at_once(cluster, folder, tmp_path):
    """The GCS port given as ray://, the Ray Client port without: each would keep Ray retrying for
    half a minute, logging on stderr."""
    for address, text in [(f"ray://{cluster.address}", f"give it as {cluster.address} (without ray://)"),
                          (cluster.client_address.removeprefix("ray://"), f"give {cluster.client_address}")]:
        started = time.monotonic()
        proc = subtitler(str(folder), "-o", str(tmp_path / "subs"), *ENGINE, "--cluster", address)
        assert_one_line_error(proc, 40, text)
        assert time.monotonic() - started < 15 and not (tmp_path / "subs").exists()


def test_the_cluster_comes_from_the_config_file_too(folder, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    (tmp_path / "subtitler.toml").write_text(f'[run]\ncluster = "{address}"\ncluster-workers = 2\n')
    proc = subtitler(str(folder), "-o", str(tmp_path / "subs"), *ENGINE, cwd=tmp_path)
    assert_one_line_error(proc, 40, f"cannot reach the Ray cluster at {address}")


def test_without_ray_installed_cluster_says_how_to_get_it(folder, tmp_path):
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**driver_env(), "PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "subtitler", str(folder), "-o", str(tmp_path / "subs"),
                           "--cluster", "auto"], capture_output=True, text=True, env=env, timeout=60)
    assert_one_line_error(proc, 40, "--cluster needs Ray: pip install 'subtitler-core[ray]'")


@pytest.mark.engine
def test_serve_on_the_cluster_runs_tiyaro_jobs_on_its_actors(cluster, folder, local, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "subtitler", "serve", "--port", "0", "--data-dir",
                               str(tmp_path / "data"), *ENGINE, "--cluster", cluster.address],
                              stderr=subprocess.PIPE, text=True, env=driver_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(server.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("serving on" in line for line in lines):
            assert time.monotonic() < deadline and server.poll() is None, "".join(lines)
            time.sleep(0.05)
        url = next(line for line in lines if "serving on" in line).split("serving on ")[1].split(" ")[0]
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        polls = []
        names = ["clip01.wav", "clip02.wav", "clip04.wav"]
        for name in names:
            put = httpx.post(f"{url}/v1/input/upload-url", params={"extension": "wav"}, json={}).json()
            put = put["uploadUrl"]["PUT"]
            assert httpx.put(put, content=(folder / name).read_bytes()).status_code == 200
            job = httpx.post(f"{url}/v1/async/ent/tiyarofs/1/openai/whisper-tiny.en",
                             json={"input": {}, "URL": put}).json()["response"]
            polls.append(job["urls"]["GET"])
        for name, poll in zip(names, polls, strict=True):
            while (body := httpx.get(poll).json())["status"] in ("accepted", "pending", "processing"):
                assert time.monotonic() < deadline + 120, body
                time.sleep(0.1)
            assert body["status"] == "success", body
            # The words the local run heard in the same file.
            heard = json.loads((local / name.replace(".wav", ".json")).read_text())
            assert body["result"]["text"].strip() == " ".join(
                s["text"].strip() for s in heard["segments"]).strip()
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    reader.join(10)
    # The jobs ran on the cluster's actors: their per-node figures, printed as the server stops.
    figures = [line for line in lines if line.startswith("subtitler: node 127.0.0.1 ")]
    assert figures and sum(int(line.split(": ")[2].split()[0]) for line in figures) == len(names), lines


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""
