"""``GET /metrics``: Prometheus metrics of requests, runs and the run queue.

Gunicorn serves the API from several processes in distributed mode, and a scrape reaches only
one of them. prometheus_client's multi-process mode makes every process write its counters to
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and sums the files at scrape time;
``gunicorn_conf`` creates that directory before the workers start. Without the variable (tests,
an app made in-process) this process sees every request, and a registry per app is enough.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from time import perf_counter

import connexion
from flask import Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from toolchest_wes.compat.connexion_views import operation_id_of
from toolchest_wes.compat.prometheus_values import multiprocess_values
from toolchest_wes.models import State
from toolchest_wes.server.spec import load_spec
from toolchest_wes.store.redis_workers import WorkerBeat

__all__ = ["CONTENT_TYPE", "MULTIPROC_DIR_VAR", "OTHER", "RecordRequest", "install_metrics"]

logger = logging.getLogger(__name__)

#: The classic text format, which ``generate_latest`` writes. Spelled out because newer
#: prometheus_client releases give the name ``CONTENT_TYPE_LATEST`` to format 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Where the processes of one API keep their metric files; set means multi-process mode.
MULTIPROC_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
#: The ``operation`` of requests that matched no spec operation (404s, /health, /metrics).
OTHER = "other"

# Any string is a valid HTTP method, so a client could otherwise add a series per request.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Status polls take about a millisecond and uploads can take many seconds; the default
# buckets start at 5 ms and stop at 10 s.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: Counts one answered request: operationId, method, status code and seconds taken (or
#: ``None`` if not timed). For requests answered outside Flask's hooks (``server.fastpath``).
RecordRequest = Callable[[str, str, int, float | None], None]


def install_metrics(
    app: connexion.FlaskApp,
    *,
    count_by_state: Callable[[], dict[State, int]],
    queue_length: Callable[[], int] | None,
    workers: Callable[[], list[WorkerBeat]] | None = None,
) -> RecordRequest:
    """Serve ``GET /metrics`` and count every request of ``app``; return the function that
    counts a request answered before Flask sees it.

    Call it after ``add_api``, which creates the routes whose operationIds label the requests,
    and before other ``before_request`` hooks, whose rejections would otherwise go untimed.

    Args:
        app: The app; ``/metrics`` goes outside the WES base path, beside ``/health``.
        count_by_state: Runs per state, asked at each scrape.
        queue_length: Runs waiting to start, asked at each scrape; ``None`` leaves the gauge
            out, for a runner that does not tell.
        workers: The workers' last heartbeats (distributed mode), asked at each scrape;
            ``None`` leaves the worker gauges out.

    Raises:
        RuntimeError: ``PROMETHEUS_MULTIPROC_DIR`` was set only after prometheus_client
            had been imported, so this process's counters would never reach the files.
    """
    directory = os.environ.get(MULTIPROC_DIR_VAR)
    scrape_registry = CollectorRegistry()
    if directory:
        _check_multiprocess_values()
        # The multiprocess module of prometheus_client has no annotations.
        MultiProcessCollector(scrape_registry, path=directory)  # type: ignore[no-untyped-call]
        # The counters live in the files only; registered here too they would be reported
        # twice: once from the files, once from this process's memory.
        metric_registry: CollectorRegistry | None = None
    else:
        metric_registry = scrape_registry
    # The gauges are read at scrape time by whichever process answers, so they appear once
    # however many processes there are.
    scrape_registry.register(_RunCollector(count_by_state, queue_length, workers))

    requests_total = Counter(
        "toolchest_wes_http_requests",
        "HTTP requests answered, by spec operationId, method and status code.",
        ["operation", "method", "status"],
        registry=metric_registry,
    )
    duration = Histogram(
        "toolchest_wes_http_request_duration_seconds",
        "Time from the first request hook to the response, by spec operationId.",
        ["operation"],
        registry=metric_registry,
        buckets=_BUCKETS,
    )
    operations = _operations_by_endpoint(app)
    # Label lookups take a lock and build tuples; caching the children keeps the per-request
    # work to two dict lookups.
    durations = {op: duration.labels(op) for op in {*operations.values(), OTHER}}
    counters: dict[tuple[str, str, int], Counter] = {}

    def count(operation: str, method: str, status: int, seconds: float | None) -> None:
        key = (operation, method if method in _METHODS else OTHER, status)
        counter = counters.get(key)
        if counter is None:
            counter = counters.setdefault(key, requests_total.labels(*key))
        counter.inc()
        if seconds is not None:
            observe = durations.get(operation)
            if observe is None:
                observe = durations.setdefault(operation, duration.labels(operation))
            observe.observe(seconds)

    def start_clock() -> None:
        g.toolchest_wes_started = perf_counter()

    def record(response: Response) -> Response:
        started: float | None = g.pop("toolchest_wes_started", None)
        count(
            operations.get(request.endpoint, OTHER),
            request.method,
            response.status_code,
            None if started is None else perf_counter() - started,
        )
        return response

    def metrics() -> Response:
        return Response(generate_latest(scrape_registry), content_type=CONTENT_TYPE)

    app.app.before_request(start_clock)
    app.app.after_request(record)
    app.app.add_url_rule("/metrics", "metrics", metrics)
    return count


def _check_multiprocess_values() -> None:
    # prometheus_client chooses where metric values live once, when it is first imported.
    if not multiprocess_values():
        raise RuntimeError(
            f"{MULTIPROC_DIR_VAR} was set after prometheus_client was imported; set it in the "
            "environment the process starts with (gunicorn_conf does this for its workers)"
        )


@functools.cache
def _spec_operation_ids() -> frozenset[str]:
    # Cached because the spec never changes and parsing it takes tens of milliseconds, which
    # every app made in a test run would pay again.
    return frozenset(
        operation["operationId"]
        for item in load_spec()["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    )


def _operations_by_endpoint(app: connexion.FlaskApp) -> dict[str | None, str]:
    """Flask endpoint -> operationId, for every route of a spec operation."""
    spec_ids = _spec_operation_ids()
    by_endpoint: dict[str | None, str] = {}
    for rule in app.app.url_map.iter_rules():
        # Dots in an operationId would read as underscores; the WES ids have none.
        operation_id = operation_id_of(rule.endpoint)
        if operation_id in spec_ids:
            by_endpoint[rule.endpoint] = operation_id
    return by_endpoint


class _RunCollector(Collector):
    """Runs by state and the queue length, computed only when scraped."""

    def __init__(
        self,
        count_by_state: Callable[[], dict[State, int]],
        queue_length: Callable[[], int] | None,
        workers: Callable[[], list[WorkerBeat]] | None,
    ) -> None:
        self._count_by_state = count_by_state
        self._queue_length = queue_length
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        # A store or broker that does not answer drops its gauge from this scrape rather than
        # failing it, so the request metrics still arrive and show the outage.
        try:
            counts = self._count_by_state()
        except Exception:
            logger.warning("metrics: counting runs by state failed", exc_info=True)
        else:
            runs = GaugeMetricFamily("toolchest_wes_runs", "Runs in each state.", labels=["state"])
            for state in State:
                runs.add_metric([state.value], counts.get(state, 0))
            yield runs
        if self._queue_length is not None:
            try:
                length = self._queue_length()
            except Exception:
                logger.warning("metrics: reading the queue length failed", exc_info=True)
            else:
                yield GaugeMetricFamily(
                    "toolchest_wes_queue_length",
                    "Runs waiting for an executor to start them.",
                    value=length,
                )
        if self._workers is not None:
            yield from self._worker_metrics(self._workers)

    @staticmethod
    def _worker_metrics(workers: Callable[[], list[WorkerBeat]]) -> Iterator[Metric]:
        try:
            beats = workers()
        except Exception:
            logger.warning("metrics: reading the workers' heartbeats failed", exc_info=True)
            return
        yield GaugeMetricFamily(
            "toolchest_wes_live_workers",
            "Workers whose last heartbeat is recent and whose consumer takes runs.",
            value=sum(beat.consuming for beat in beats),
        )
        last = GaugeMetricFamily(
            "toolchest_wes_worker_last_heartbeat_seconds",
            "When each recently seen worker last sent its heartbeat (Unix time, Redis clock).",
            labels=["worker"],
        )
        consuming = GaugeMetricFamily(
            "toolchest_wes_worker_consuming",
            "1 while the worker's consumer takes runs from the queue, else 0.",
            labels=["worker"],
        )
        for beat in beats:
            last.add_metric([beat.name], beat.seen)
            consuming.add_metric([beat.name], 1 if beat.consuming else 0)
        yield last
        yield consuming
