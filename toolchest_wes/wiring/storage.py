"""The run files' storage, when the settings name one (``--storage``)."""

from __future__ import annotations

from toolchest_wes.config import Settings
from toolchest_wes.core.run_files import RunFiles
from toolchest_wes.core.workspace import Workspace
from toolchest_wes.storage import storage_from_url

__all__ = ["build_run_files"]


def build_run_files(settings: Settings, workspace: Workspace) -> RunFiles | None:
    """Run files in ``settings.storage``, with ``workspace`` as this process's scratch space;
    ``None`` without ``--storage``: the data folder itself holds them, shared.

    Raises:
        ValueError: A storage URL that cannot be used (``s3://`` without boto3, for one).
    """
    if settings.storage is None:
        return None
    storage = storage_from_url(
        settings.storage,
        endpoint_url=settings.storage_endpoint_url,
        region=settings.storage_region,
    )
    return RunFiles(storage, workspace)
