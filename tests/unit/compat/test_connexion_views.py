"""The connexion adapter against the installed connexion."""

from __future__ import annotations

import pytest
from connexion.apis import flask_api

from toolchest_wes.compat import connexion_views
from toolchest_wes.compat.private_api import PrivateApiChangedError
from toolchest_wes.server.spec import BASE_PATH


def test_the_installed_connexion_names_and_serves_views_as_relied_on() -> None:
    connexion_views.verify()


def test_other_endpoint_names_are_named_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        flask_api.flask_utils, "flaskify_endpoint", lambda name, r=None: name.replace(".", "-")
    )
    installed = connexion_views.CONNEXION.installed_version()

    with pytest.raises(PrivateApiChangedError) as caught:
        connexion_views.verify()

    assert str(caught.value).startswith(
        f"connexion {installed} names the Flask endpoint of operation 'Probe.GetItem' otherwise "
        "than '/probe/v1.Probe_GetItem'"
    )
    assert str(caught.value).endswith("; toolchest-wes supports connexion ==2.15.1")


def test_the_endpoint_of_a_wes_operation() -> None:
    endpoint = connexion_views.operation_endpoint(BASE_PATH, "GetRunStatus")

    assert endpoint == "/ga4gh/wes/v1.GetRunStatus"
    assert connexion_views.operation_id_of(endpoint) == "GetRunStatus"
