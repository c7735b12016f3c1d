"""The prometheus_client adapter against the installed prometheus_client."""

from __future__ import annotations

import pytest
from prometheus_client import values

from toolchest_wes.compat import prometheus_values
from toolchest_wes.compat.private_api import PrivateApiChangedError


def test_the_installed_prometheus_client_records_its_value_mode() -> None:
    prometheus_values.verify()
    # The tests run without PROMETHEUS_MULTIPROC_DIR.
    assert prometheus_values.multiprocess_values() is False


def test_a_missing_mode_flag_is_named_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(values.ValueClass, "_multiprocess")
    installed = prometheus_values.PROMETHEUS_CLIENT.installed_version()

    with pytest.raises(PrivateApiChangedError) as caught:
        prometheus_values.verify()

    assert str(caught.value) == (
        f"prometheus-client {installed} has no prometheus_client.values.ValueClass._multiprocess; "
        "toolchest-wes supports prometheus-client >=0.20,<1"
    )
