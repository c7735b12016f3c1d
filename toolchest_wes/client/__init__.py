"""A Python client for GA4GH WES 1.0 and 1.1 servers, best with toolchest-wes.

Example:
    >>> from toolchest_wes.client import WesClient
    >>> with WesClient("http://127.0.0.1:8080") as wes:
    ...     run = wes.submit("examples/hello/hello.cwl", "examples/hello/hello.json")
    ...     run.wait(timeout=600)
    ...     print(run.outputs())
    ...     run.download("results/")

Importing this package loads no server code (no flask, celery, redis or cwltool).
"""

from toolchest_wes.client._async import AsyncRun, AsyncWesClient
from toolchest_wes.client._deps import BundleError
from toolchest_wes.client._sync import Run, WesClient
from toolchest_wes.client._tool_spec import ToolInput
from toolchest_wes.client.exceptions import (
    BadRequestError,
    ConflictError,
    DownloadError,
    ForbiddenError,
    GoneError,
    InputFileError,
    InputTypeError,
    NoMatchingOutputs,
    NotFoundError,
    RateLimitedError,
    RunFailed,
    RunNotFinished,
    RunNotFoundError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    WaitTimeout,
    WesApiError,
    WesClientError,
)
from toolchest_wes.client.group import AsyncRunGroup, RunGroup
from toolchest_wes.client.journal import Journal, JournalEntry
from toolchest_wes.client.tables import Outputs, format_runs, print_runs
from toolchest_wes.client.tools import AsyncTools, ToolCall, ToolInfo, Tools, format_tools
from toolchest_wes.models import (
    OutputFile,
    RunLog,
    RunStatus,
    RunSummary,
    ServiceInfo,
    State,
    TaskLog,
)

__all__ = [
    "AsyncRun",
    "AsyncRunGroup",
    "AsyncTools",
    "AsyncWesClient",
    "BadRequestError",
    "BundleError",
    "ConflictError",
    "DownloadError",
    "ForbiddenError",
    "GoneError",
    "InputFileError",
    "InputTypeError",
    "Journal",
    "JournalEntry",
    "NoMatchingOutputs",
    "NotFoundError",
    "OutputFile",
    "Outputs",
    "RateLimitedError",
    "Run",
    "RunFailed",
    "RunGroup",
    "RunLog",
    "RunNotFinished",
    "RunNotFoundError",
    "RunStatus",
    "RunSummary",
    "ServerError",
    "ServiceInfo",
    "State",
    "TaskLog",
    "ToolCall",
    "ToolInfo",
    "ToolInput",
    "Tools",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "WaitTimeout",
    "WesApiError",
    "WesClient",
    "WesClientError",
    "format_runs",
    "format_tools",
    "print_runs",
]
