"""Metrics across the processes of one API, and the gunicorn hooks that prepare them.

The multi-process tests fork: each child stands for a gunicorn worker and changes what it
likes, since it exits afterwards; this process never switches prometheus_client into
multi-process mode, so the other tests keep their per-app registries.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import connexion
import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from toolchest_wes.models import State
from toolchest_wes.server import gunicorn_conf
from toolchest_wes.server.metrics import MULTIPROC_DIR_VAR, install_metrics

REQUESTS = "toolchest_wes_http_requests_total"


def bare_app(**metrics: Any) -> Any:
    app = connexion.FlaskApp(__name__)
    metrics.setdefault("count_by_state", lambda: {State.COMPLETE: 2})
    metrics.setdefault("queue_length", lambda: 3)
    install_metrics(app, **metrics)
    return app


def worker(directory: str, requests: int, conn: Connection) -> None:
    """A gunicorn worker: serve ``requests`` requests, then send what its /metrics says."""
    os.environ[MULTIPROC_DIR_VAR] = directory
    # What importing prometheus_client picks when the variable is set, as it is in a worker.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    client = bare_app().app.test_client()
    for _ in range(requests):
        assert client.get("/nowhere").status_code == 404
    conn.send(client.get("/metrics").get_data(as_text=True))


def in_worker(directory: Path, requests: int) -> str:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=worker, args=(str(directory), requests, child)
    )
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert parent.poll(1)
    text = parent.recv()
    assert isinstance(text, str)
    return text


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def not_found(text: str) -> float:
    return sum(
        v
        for name, labels, v in samples(text)
        if name == REQUESTS and labels == {"operation": "other", "method": "GET", "status": "404"}
    )


def test_counters_of_every_process_add_up(tmp_path: Path) -> None:
    in_worker(tmp_path, 2)
    in_worker(tmp_path, 3)

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]

    assert not_found(generate_latest(registry).decode()) == 5


def test_any_worker_reports_the_sum_and_the_gauges_once(tmp_path: Path) -> None:
    in_worker(tmp_path, 2)

    text = in_worker(tmp_path, 1)

    assert not_found(text) == 3
    names = [name for name, _, _ in samples(text)]
    assert names.count("toolchest_wes_queue_length") == 1
    assert names.count("toolchest_wes_runs") == len(State)
    assert 'toolchest_wes_runs{state="COMPLETE"} 2.0' in text.splitlines()


def test_a_variable_set_after_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR_VAR, str(tmp_path))

    with pytest.raises(RuntimeError, match=MULTIPROC_DIR_VAR):
        bare_app()


def test_a_failing_source_drops_only_its_gauge(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[State, int]:
        raise OSError("the store is down")

    # Earlier tests (Celery's worker) may have raised the root logger's level.
    caplog.set_level(logging.WARNING, logger="toolchest_wes.server.metrics")
    client = bare_app(count_by_state=broken).app.test_client()

    text = client.get("/metrics").get_data(as_text=True)
    assert "toolchest_wes_runs" not in text
    assert "toolchest_wes_queue_length 3.0" in text.splitlines()
    assert "counting runs by state failed" in caplog.text


def test_no_queue_length_leaves_the_gauge_out() -> None:
    client = bare_app(queue_length=None).app.test_client()

    assert "toolchest_wes_queue_length" not in client.get("/metrics").get_data(as_text=True)


@pytest.fixture
def no_metrics_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first records the variable's absence, so teardown removes what a hook sets.
    monkeypatch.setenv(MULTIPROC_DIR_VAR, "")
    monkeypatch.delenv(MULTIPROC_DIR_VAR)
    monkeypatch.setattr(gunicorn_conf, "_own_metrics_dir", None)


@pytest.mark.usefixtures("no_metrics_dir")
def test_gunicorn_makes_a_private_metrics_dir_and_removes_it() -> None:
    gunicorn_conf.on_starting(None)
    directory = Path(os.environ[MULTIPROC_DIR_VAR])
    assert directory.is_dir() and not any(directory.iterdir())
    assert directory.stat().st_mode & 0o077 == 0

    gunicorn_conf.on_exit(None)
    assert not directory.exists()


@pytest.mark.usefixtures("no_metrics_dir")
def test_gunicorn_empties_a_named_metrics_dir_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setenv(MULTIPROC_DIR_VAR, str(tmp_path))

    gunicorn_conf.on_starting(None)
    gunicorn_conf.on_exit(None)

    assert os.environ[MULTIPROC_DIR_VAR] == str(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
