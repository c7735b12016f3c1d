"""build_parts: what each role gets in each mode, when its background jobs run, and cleanup."""

from __future__ import annotations

import threading
import time

import pytest

from toolchest_wes.core.retention import SweepLoop
from toolchest_wes.models import RunRequest, State
from toolchest_wes.runner.celery_runner import CeleryTaskRunner
from toolchest_wes.runner.local_runner import LocalTaskRunner
from toolchest_wes.store.base import RunRecord
from toolchest_wes.wiring import distributed
from toolchest_wes.wiring.distributed import WorkerIdentity
from toolchest_wes.wiring.parts import Role, build_parts
from toolchest_wes.worker.heartbeat import ConsumerLiveness, Heartbeat
from toolchest_wes.worker.reconciler import Reconciler

REQUEST = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def _identity() -> WorkerIdentity:
    return WorkerIdentity("w@test", ConsumerLiveness(), requeue=lambda run_id: None)


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_embedded_command_gets_the_store_and_workspace_only(make_settings) -> None:
    settings = make_settings()
    settings.data_dir.mkdir(parents=True)  # as the command line does
    parts = build_parts(settings, Role.COMMAND)
    assert (parts.registry, parts.executor, parts.runner, parts.reconciler) == (None,) * 4
    assert parts.loops == []
    parts.store.ping()
    parts.close()
    parts.close()  # idempotent


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_distributed_command_gets_an_unstarted_reconciler(make_settings) -> None:
    parts = build_parts(make_settings(), Role.COMMAND)
    try:
        assert isinstance(parts.runner, CeleryTaskRunner)
        assert isinstance(parts.reconciler, Reconciler)
        assert parts.loops == []
        report = parts.reconciler.run_once(force=True)
        assert report is not None and not report.requeued
    finally:
        parts.close()


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_embedded_api_recovers_and_sweeps_only_once_started(make_settings, warm_launcher) -> None:
    settings = make_settings(retention_days=1, retention_sweep_interval_s=3600)
    parts = build_parts(settings, Role.API, launcher=warm_launcher)
    try:
        assert isinstance(parts.runner, LocalTaskRunner)
        assert parts.executor is not None and parts.monitor is None
        assert not parts.executor.leases.renew  # nothing reads an embedded server's leases
        assert [type(loop) for loop in parts.loops] == [SweepLoop]
        parts.store.create_run(RunRecord("left", State.RUNNING, REQUEST, created_at=time.time()))
        assert not _threads("toolchest-wes-retention")

        parts.start()
        parts.start()  # once only
        assert parts.store.get_state("left") is State.SYSTEM_ERROR
        assert len(_threads("toolchest-wes-retention")) == 1
    finally:
        parts.close()
    assert not _threads("toolchest-wes-retention")
    assert warm_launcher.zygote_pid is not None  # a launcher passed in stays the caller's


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_embedded_api_given_a_runner_neither_recovers_nor_sweeps(make_settings) -> None:
    runner = LocalTaskRunner(lambda run_id: None, workers=1)
    parts = build_parts(make_settings(retention_days=1), Role.API, runner=runner, engines=[])
    parts.close()
    assert parts.recover is None and parts.loops == [] and parts.executor is None
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit("r")  # a runner passed in is closed with the parts


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_distributed_roles_get_their_loops(make_settings, warm_launcher) -> None:
    settings = make_settings()
    api = build_parts(settings, Role.API, engines=[])
    worker = build_parts(settings, Role.WORKER, launcher=warm_launcher, worker=_identity())
    try:
        assert isinstance(api.runner, CeleryTaskRunner) and api.monitor is not None
        assert [type(loop) for loop in api.loops] == [Reconciler]
        assert api.executor is None and api.queue_length is not None
        assert worker.runner is None and worker.executor is not None
        assert worker.executor.leases.renew  # the reconcile loop reads them
        assert [type(loop) for loop in worker.loops] == [Reconciler, Heartbeat]
        worker.start()
        assert worker.monitor is None
        assert [beat.name for beat in api.monitor.workers()] == ["w@test"]
    finally:
        worker.close()
        api.close()
    assert not _threads("toolchest-wes-heartbeat")


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_worker_needs_distributed_mode_and_its_identity(make_settings) -> None:
    settings = make_settings()
    with pytest.raises(ValueError, match="worker"):
        build_parts(settings, Role.WORKER, worker=_identity())
    assert not (settings.data_dir / "runs.sqlite").exists()  # nothing was built


@pytest.mark.parametrize("mode", ["distributed"], indirect=True)
def test_a_failed_build_releases_what_it_built(make_settings, monkeypatch) -> None:
    def broken(settings):
        raise RuntimeError("no monitor")

    monkeypatch.setattr(distributed, "worker_monitor", broken)
    runner = LocalTaskRunner(lambda run_id: None, workers=1)
    with pytest.raises(RuntimeError, match="no monitor"):
        build_parts(make_settings(), Role.API, runner=runner, engines=[])
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit("r")
