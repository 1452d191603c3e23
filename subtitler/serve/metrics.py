"""GET /metrics: Prometheus text format.

    subtitler_serve_queue_depth                          jobs waiting
    subtitler_serve_jobs{state}                          jobs in the store by state
    subtitler_serve_worker_audio_seconds_total{worker}   seconds of audio transcribed by each worker
    subtitler_serve_worker_busy_seconds_total{worker}    seconds each worker spent on jobs
    subtitler_serve_worker_audio_seconds_per_second{worker}  the two divided: each worker's speed
    subtitler_serve_request_duration_seconds{method,route,status}  a histogram of request latencies

The counts come from the store and the workers when scraped; latencies are
recorded by the access log (logs.py). Each server has its own registry (tests
run several in one process). `route` is the route's template (/v1/async/results/{job_id}),
never the path: ids stay out of the label values.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .store import CANCELLED, FAILED, PENDING, PROCESSING, SUCCESS, Store
from .workers import Workers

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, store: Store, workers: Workers) -> None:
        self.store, self.workers = store, workers
        self.registry = CollectorRegistry()
        self.registry.register(self)  # collect() below
        self.latency = Histogram("subtitler_serve_request_duration_seconds", "Time to answer a request",
                                 ["method", "route", "status"], registry=self.registry, buckets=BUCKETS)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys((PENDING, PROCESSING, SUCCESS, FAILED, CANCELLED), 0)
        with self.store._lock:  # the store's one connection
            for state, n in self.store._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                counts[state] = n
        yield GaugeMetricFamily("subtitler_serve_queue_depth", "Jobs waiting for a worker",
                                value=counts[PENDING])
        jobs = GaugeMetricFamily("subtitler_serve_jobs", "Jobs in the store by state", labels=["state"])
        for state, n in counts.items():
            jobs.add_metric([state], n)
        yield jobs
        audio = CounterMetricFamily("subtitler_serve_worker_audio_seconds", "Seconds of audio transcribed",
                                    labels=["worker"])
        busy = CounterMetricFamily("subtitler_serve_worker_busy_seconds", "Seconds spent running jobs",
                                   labels=["worker"])
        speed = GaugeMetricFamily("subtitler_serve_worker_audio_seconds_per_second",
                                  "Seconds of audio per second of work, since the start", labels=["worker"])
        for n in range(self.workers.count):
            a, b = self.workers.audio_seconds[n], self.workers.busy_seconds[n]
            audio.add_metric([str(n)], a)
            busy.add_metric([str(n)], b)
            speed.add_metric([str(n)], a / b if b else 0.0)
        yield from (audio, busy, speed)


router = APIRouter()


@router.get("/metrics", summary="Prometheus metrics: queue, jobs by state, worker speed, request latencies")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
