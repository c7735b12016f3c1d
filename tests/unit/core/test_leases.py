"""LeaseKeeper on a real embedded store: held runs keep their lease, released ones lose it."""

from __future__ import annotations

import time

import pytest

from toolchest_wes.core.leases import LeaseKeeper
from toolchest_wes.models import RunRequest, State
from toolchest_wes.store.base import RunRecord
from toolchest_wes.store.embedded_store import EmbeddedStateStore

TTL_S = 0.5


def _started(store: EmbeddedStateStore, run_id: str) -> None:
    request = RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="w.cwl")
    store.create_run(RunRecord(run_id, State.QUEUED, request, created_at=time.time()))
    assert store.transition(
        run_id, State.RUNNING, allowed_from=frozenset({State.QUEUED}), lease_ttl_s=TTL_S
    )


def test_a_held_run_keeps_its_lease_and_a_released_one_loses_it() -> None:
    store = EmbeddedStateStore(":memory:")
    _started(store, "held")
    _started(store, "released")
    keeper = LeaseKeeper(store, TTL_S)
    with keeper.hold("held"):
        with keeper.hold("released"):
            time.sleep(3 * TTL_S)
            assert store.expired_leases() == []
        time.sleep(3 * TTL_S)
        assert store.expired_leases() == ["released"]
    time.sleep(3 * TTL_S)
    assert store.expired_leases() == ["held", "released"]
    store.close()


def test_the_thread_ends_once_no_run_is_held_and_comes_back() -> None:
    store = EmbeddedStateStore(":memory:")
    _started(store, "r")
    keeper = LeaseKeeper(store, TTL_S)

    with keeper.hold("r"):
        thread = keeper._thread
        assert thread is not None and thread.is_alive()
    thread.join(10)
    assert not thread.is_alive(), "the renewing thread outlived its last run"
    with keeper.hold("r"):
        time.sleep(3 * TTL_S)
        assert store.expired_leases() == []
    store.close()


def test_a_run_held_twice_is_kept_until_both_release_it() -> None:
    store = EmbeddedStateStore(":memory:")
    _started(store, "r")
    keeper = LeaseKeeper(store, TTL_S)
    with keeper.hold("r"):
        with keeper.hold("r"):
            pass
        assert keeper.held() == ["r"]
    assert keeper.held() == []
    store.close()


def test_a_keeper_whose_leases_nobody_reads_writes_none() -> None:
    # The embedded server's keeper: a held run is counted, but its lease runs out as set.
    store = EmbeddedStateStore(":memory:")
    _started(store, "r")
    keeper = LeaseKeeper(store, TTL_S, renew=False)
    with keeper.hold("r"):
        assert keeper.held() == ["r"] and keeper._thread is None
        time.sleep(3 * TTL_S)
        assert store.expired_leases() == ["r"]
    assert keeper.held() == []
    store.close()


@pytest.mark.parametrize("renew", [True, False])
def test_renew_now_extends_a_lease_only_where_leases_are_read(renew: bool) -> None:
    # An adopted run's lease may have run out while no process held it.
    store = EmbeddedStateStore(":memory:")
    _started(store, "r")
    time.sleep(2 * TTL_S)
    assert store.expired_leases() == ["r"]
    LeaseKeeper(store, TTL_S, renew=renew).renew_now("r")
    assert store.expired_leases() == ([] if renew else ["r"])
    store.close()
