"""The Celery adapter against the installed Celery."""

from __future__ import annotations

import celery.worker.consumer.tasks
import pytest

from toolchest_wes.compat import celery_steps
from toolchest_wes.compat.private_api import PrivateApiChangedError


def test_the_installed_celery_has_the_task_consumer_step() -> None:
    celery_steps.verify()


def test_a_missing_step_is_named_with_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(celery.worker.consumer.tasks, "Tasks")
    installed = celery_steps.CELERY.installed_version()

    with pytest.raises(PrivateApiChangedError) as caught:
        celery_steps.verify()

    assert str(caught.value) == (
        f"celery {installed} has no celery.worker.consumer.tasks.Tasks; "
        "toolchest-wes supports celery >=5.4,<6"
    )
