"""Error mapping, retries and submit idempotency, over httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from toolchest_wes.client import (
    AsyncWesClient,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    RateLimitedError,
    RunNotFoundError,
    ServerError,
    State,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    WesApiError,
    WesClient,
)
from toolchest_wes.client._core import REQUEST_ID_TAG

Handler = Callable[[httpx.Request], httpx.Response]
URL = "http://wes.test"


def client(handler: Handler, **kwargs: Any) -> WesClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    kwargs.setdefault("retry_backoff", 0.001)
    return WesClient(URL, http=http, journal=False, **kwargs)


def error(status: int, msg: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"msg": msg, "status_code": status}, headers=headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (409, ConflictError),
        (410, GoneError),
        (500, ServerError),
        (418, WesApiError),
    ],
)
def test_error_statuses_map_to_exceptions(status: int, kind: type[Exception]) -> None:
    wes = client(lambda r: error(status, "what to fix"))
    with pytest.raises(kind) as info:
        wes.get_service_info()
    assert isinstance(info.value, WesApiError)
    assert info.value.status_code == status and info.value.msg == "what to fix"


def test_404_on_a_run_is_run_not_found_and_elsewhere_not_found() -> None:
    wes = client(lambda r: error(404, "run 'x' not found"))
    with pytest.raises(RunNotFoundError):
        wes.get_run_status("x")
    with pytest.raises(NotFoundError) as info:
        wes.get_task("x", "t")
    assert not isinstance(info.value, RunNotFoundError)


def test_error_without_error_response_keeps_the_body() -> None:
    wes = client(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), retries=0)
    with pytest.raises(ServerError, match="bad gateway"):
        wes.get_service_info()


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", json.dumps({"run_id": 5, "state": ["x"]}).encode()],
)
def test_malformed_bodies_raise_unexpected_response(body: bytes) -> None:
    wes = client(lambda r: httpx.Response(200, content=body))
    with pytest.raises(UnexpectedResponseError):
        wes.get_run_status("r")


def test_unknown_fields_and_states_are_tolerated() -> None:
    body = {"run_id": "r", "state": "SOMETHING_NEW", "extra": {"x": 1}}
    wes = client(lambda r: httpx.Response(200, json=body))
    status = wes.get_run_status("r")
    assert status.state is State.UNKNOWN


def test_get_retries_503_429_and_connection_errors() -> None:
    answers: list[Any] = [
        httpx.ConnectError("refused"),
        error(503, "busy"),
        error(429, "slow down", **{"Retry-After": "0"}),
        httpx.Response(200, json={"run_id": "r", "state": "RUNNING"}),
    ]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    assert client(handler).get_run_status("r").state is State.RUNNING
    assert len(seen) == 4


def test_retries_give_up_with_the_last_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(TransportError, match="connection refused"):
        client(refuse, retries=2).get_service_info()
    wes = client(
        lambda r: error(429, "later", **{"Retry-After": "0"}), retries=1, rate_limit_wait=0
    )
    with pytest.raises(RateLimitedError) as info:
        list(wes.list_tasks("r"))
    assert info.value.retry_after == 0


def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    answers = [error(503, "busy", **{"Retry-After": "7"}), httpx.Response(200, json={})]
    wes = client(lambda r: answers.pop(0))
    wes.get_service_info()
    assert slept == [7.0]


def test_the_token_goes_only_to_its_own_server() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("Authorization")
        return httpx.Response(200, content=b"log")

    wes = client(handler, token="s3cret")
    wes._drive(wes._core.read_log(f"{URL}/ga4gh/wes/v1/runs/r/stderr"))
    wes._drive(wes._core.read_log("http://elsewhere.test/log"))
    assert seen == {"wes.test": "Bearer s3cret", "elsewhere.test": None}


class FlakyServer:
    """Creates a run on POST, but the answer can be lost on the way back."""

    def __init__(self, lose: list[str]) -> None:
        self.lose = lose  # for each POST: "timeout", "refuse", "503" or "ok"
        self.runs: dict[str, dict[str, str]] = {}
        self.posts = 0
        self.lookups_fail = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            what = self.lose[self.posts]
            self.posts += 1
            if what == "refuse":
                raise httpx.ConnectError("refused")
            if what == "503":
                return error(503, "overloaded")
            if what == "429":
                return error(429, "too many submissions", **{"Retry-After": "2"})
            run_id = f"run{len(self.runs)}"
            tags = json.loads(_form_field(request, "tags"))
            self.runs[run_id] = tags
            if what == "timeout":
                raise httpx.ReadTimeout("timed out")
            return httpx.Response(200, json={"run_id": run_id})
        if self.lookups_fail:
            self.lookups_fail -= 1
            raise httpx.ConnectError("refused")
        tag = request.url.params.get("tag", "")
        key, _, value = tag.partition(":")
        runs = [
            {"run_id": r, "state": "QUEUED", "tags": t}
            for r, t in self.runs.items()
            if not tag or t.get(key) == value
        ]
        return httpx.Response(200, json={"runs": runs, "next_page_token": ""})


def _form_field(request: httpx.Request, name: str) -> str:
    body = request.read().decode()
    if "Content-Disposition" not in body:
        from urllib.parse import parse_qs

        return parse_qs(body)[name][0]
    part = body.split(f'name="{name}"', 1)[1]
    return part.split("\r\n\r\n", 1)[1].split("\r\n--", 1)[0]


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / "hello.cwl"
    path.write_text("cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\n")
    return path


def test_submit_after_a_lost_answer_finds_the_run_instead_of_posting_again(hello: Path) -> None:
    server = FlakyServer(["timeout", "ok"])
    run = client(server).submit(hello)
    assert server.posts == 1 and list(server.runs) == [run.run_id]
    assert REQUEST_ID_TAG in server.runs[run.run_id]


def test_submit_resends_after_a_refused_connection_or_503(hello: Path) -> None:
    server = FlakyServer(["refuse", "503", "ok"])
    run = client(server).submit(hello)
    assert server.posts == 3 and list(server.runs) == [run.run_id]


class KeyedServer(FlakyServer):
    """A FlakyServer that honours Idempotency-Key, as this server does, and says so."""

    def __init__(self, lose: list[str]) -> None:
        super().__init__(lose)
        self.by_key: dict[str, httpx.Response] = {}
        self.listings = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/service-info"):
            return httpx.Response(200, json={"toolchest_wes_idempotency": {"window_s": 60}})
        if request.method == "GET":
            self.listings += 1
        key = request.headers.get("Idempotency-Key", "")
        if request.method == "POST" and key in self.by_key:
            self.posts += 1
            return self.by_key[key]
        try:
            response = super().__call__(request)
        except httpx.ReadTimeout:
            self.by_key[key] = httpx.Response(200, json={"run_id": list(self.runs)[-1]})
            raise
        if request.method == "POST" and response.status_code == 200:
            self.by_key[key] = response
        return response


@pytest.mark.parametrize("lose", [["timeout", "ok"], ["503", "timeout", "ok"]])
def test_submit_resends_with_the_same_key_to_a_server_that_honours_it(
    hello: Path, lose: list[str]
) -> None:
    server = KeyedServer(lose)
    run = client(server).submit(hello)
    assert list(server.runs) == [run.run_id] and server.posts == len(lose)
    assert server.listings == 0  # no search: the server's answer to the resend is the run
    (key,) = server.by_key
    assert key == f'"{server.runs[run.run_id][REQUEST_ID_TAG]}"'


def test_submit_waits_out_429s_beyond_its_retries_without_a_lookup(
    hello: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    server = FlakyServer(["429"] * 8 + ["ok"])
    server.lookups_fail = 100  # a lookup would fail the test: a 429 stored nothing
    run = client(server, retries=1).submit(hello)
    assert server.posts == 9 and list(server.runs) == [run.run_id]
    assert slept == [2.0] * 8


def test_429s_are_waited_out_only_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    calls = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(429, "later", **{"Retry-After": "2"})

    with pytest.raises(RateLimitedError):
        client(busy, retries=0, rate_limit_wait=5).get_service_info()
    assert slept == [2.0, 2.0] and len(calls) == 3


def test_a_server_that_always_says_now_is_not_asked_in_a_busy_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    wes = client(lambda r: error(429, "now", **{"Retry-After": "0"}), retries=0, rate_limit_wait=3)
    with pytest.raises(RateLimitedError):
        wes.get_service_info()
    assert len(slept) == 3


def test_submit_never_resends_while_the_lookup_fails(hello: Path) -> None:
    server = FlakyServer(["timeout", "ok"])
    server.lookups_fail = 2
    run = client(server).submit(hello)
    assert server.posts == 1 and run.run_id == "run0"


def test_submit_gives_up_without_a_second_run(hello: Path) -> None:
    server = FlakyServer(["timeout"] * 10)
    server.runs = {}

    def no_lookup(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            raise httpx.ConnectError("refused")
        return server(request)

    with pytest.raises(TransportError):
        client(no_lookup, retries=2).submit(hello)
    assert server.posts == 1


def test_a_bad_request_on_submit_is_not_retried(hello: Path) -> None:
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return error(400, "workflow_type_version 'v9' is not supported")

    with pytest.raises(BadRequestError, match="v9"):
        client(handler).submit(hello)
    assert len(posts) == 1


def test_listing_reads_the_workflows_key_and_goes_past_short_pages() -> None:
    pages = {
        "": {"workflows": [{"run_id": "a", "state": "COMPLETE"}], "next_page_token": "t1"},
        "t1": {"workflows": [], "next_page_token": "t2"},
        "t2": {"workflows": [{"run_id": "b", "state": "QUEUED"}], "next_page_token": ""},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("page_token", "")])

    assert [r.run_id for r in client(handler).list_runs(page_size=5)] == ["a", "b"]


def test_listing_stops_when_a_server_repeats_its_token() -> None:
    body = {"runs": [{"run_id": "a", "state": "COMPLETE"}], "next_page_token": "same"}
    runs = list(client(lambda r: httpx.Response(200, json=body)).list_runs())
    assert [r.run_id for r in runs] == ["a", "a"]


def test_async_client_maps_errors_and_retries() -> None:
    import asyncio

    answers = [error(503, "busy"), httpx.Response(200, json={"run_id": "r", "state": "QUEUED"})]

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: answers.pop(0)))
        async with AsyncWesClient(URL, http=http, journal=False, retry_backoff=0.001) as wes:
            assert (await wes.get_run_status("r")).state is State.QUEUED
            answers.append(error(404, "run 'r' not found"))
            with pytest.raises(RunNotFoundError):
                await wes.get_run_log("r")
        await http.aclose()

    asyncio.run(main())


# -- outputs of unfinished runs, failed tasks, cancel of finished runs --------------------------


def routes(table: dict[str, Any]) -> Handler:
    """Answer each path (after /ga4gh/wes/v1) from ``table``: a JSON body or a Response."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/ga4gh/wes/v1")
        answer = table.get(path, error(404, f"no route {path}"))
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    return handler


@pytest.mark.parametrize(
    ("table", "asked"),
    [
        pytest.param(
            {
                "/runs/r/outputs": {
                    "run_id": "r",
                    "files": [],
                    "state": "RUNNING",
                    "complete": False,
                }
            },
            ["/outputs"],
            id="the listing says it is incomplete",
        ),
        pytest.param(
            {
                "/runs/r/outputs": {"run_id": "r", "files": []},
                "/runs/r/status": {"run_id": "r", "state": "RUNNING"},
            },
            ["/outputs", "/status"],
            id="a listing without the field: the status says",
        ),
        pytest.param(
            {"/runs/r": {"run_id": "r", "state": "RUNNING"}},
            ["/outputs", ""],
            id="no listing: the RunLog says",
        ),
    ],
)
def test_outputs_of_a_running_run_raise_naming_the_state(
    table: dict[str, Any], asked: list[str]
) -> None:
    from toolchest_wes.client import Run, RunNotFinished

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path.removeprefix("/ga4gh/wes/v1/runs/r"))
        return routes(table)(request)

    with pytest.raises(RunNotFinished, match="RUNNING") as info:
        Run(client(handler), "r").outputs()
    assert info.value.state is State.RUNNING
    assert seen == asked


def test_an_include_that_matches_nothing_lists_what_there_is() -> None:
    from toolchest_wes.client import NoMatchingOutputs, Run

    files = [{"path": f"f{i}.txt", "size": 1, "url": f"{URL}/x/{i}"} for i in range(25)]
    table = {
        "/runs/r/status": {"run_id": "r", "state": "COMPLETE"},
        "/runs/r/outputs": {"run_id": "r", "files": files},
    }
    with pytest.raises(NoMatchingOutputs) as info:
        Run(client(routes(table)), "r").outputs(include=["*.bam"])
    assert "'*.bam'" in str(info.value) and "f0.txt" in str(info.value)
    assert "(25 in all)" in str(info.value)


def failed_run(tasks: Any) -> dict[str, Any]:
    return {
        "/runs/r/status": {"run_id": "r", "state": "EXECUTOR_ERROR"},
        "/runs/r": {
            "run_id": "r",
            "state": "EXECUTOR_ERROR",
            "run_log": {"exit_code": 1, "stderr": f"{URL}/logs/engine"},
        },
        "/runs/r/tasks": tasks,
        "/logs/engine": httpx.Response(200, text="[job align] exited with status: 3\n"),
        "/logs/task": httpx.Response(200, text="line\nboom\n"),
    }


def test_run_failed_names_the_last_task_that_failed() -> None:
    from toolchest_wes.client import RunFailed

    tasks = {
        "task_logs": [
            {"id": "1", "name": "index", "exit_code": 0},
            {"id": "2", "name": "align", "exit_code": 3, "stderr": f"{URL}/logs/task"},
        ]
    }
    with pytest.raises(RunFailed) as info:
        client(routes(failed_run(tasks))).wait_for_run("r", timeout=5)
    failed = info.value
    assert failed.task is not None and failed.task.name == "align"
    assert failed.task_stderr_tail == "line\nboom"
    assert str(failed).startswith("run r ended EXECUTOR_ERROR: task 'align' exited with 3")
    assert "(engine exit code 1)" in str(failed) and str(failed).endswith("boom")


def test_run_failed_without_a_task_listing_falls_back_to_the_engine_log() -> None:
    from toolchest_wes.client import RunFailed

    with pytest.raises(RunFailed) as info:
        client(routes(failed_run(error(500, "broken"))), retries=0).wait_for_run("r", timeout=5)
    assert info.value.task is None
    assert "exit code 1" in str(info.value) and "exited with status: 3" in str(info.value)


def test_a_cancelled_run_reads_nothing_more() -> None:
    from toolchest_wes.client import RunFailed

    seen: list[str] = []
    table = {
        "/runs/r/status": {"run_id": "r", "state": "CANCELED"},
        "/runs/r": {"run_id": "r", "state": "CANCELED", "run_log": {"exit_code": -9}},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return routes(table)(request)

    with pytest.raises(RunFailed) as info:
        client(handler).wait_for_run("r", timeout=5)
    assert str(info.value) == "run r was cancelled (CANCELED)" and info.value.cancelled
    assert not any("tasks" in path for path in seen)


def test_cancel_of_a_finished_run_sends_nothing() -> None:
    from toolchest_wes.client import Run

    methods: list[str] = []
    table = {"/runs/r/status": {"run_id": "r", "state": "COMPLETE"}}

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        return routes(table)(request)

    assert Run(client(handler), "r").cancel() is False
    assert methods == ["GET"]


# -- downloads that fail --------------------------------------------------------------------


def finished(files: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """The routes of a COMPLETE run ``r`` with these output files."""
    return {
        "/runs/r/status": {"run_id": "r", "state": "COMPLETE"},
        "/runs/r/outputs": {"run_id": "r", "files": files},
        **more,
    }


A_TXT = {"path": "a.txt", "size": 5, "url": f"{URL}/files/a.txt"}


def test_a_file_without_a_download_url_is_a_download_error(tmp_path: Path) -> None:
    from toolchest_wes.client import DownloadError, Run

    table = finished([{**A_TXT, "url": "file:///srv/runs/r/a.txt"}])

    with pytest.raises(DownloadError, match="gave no download URL"):
        Run(client(routes(table)), "r").download(tmp_path)


def test_an_error_answer_to_a_file_download_is_raised(tmp_path: Path) -> None:
    from toolchest_wes.client import Run

    table = finished([A_TXT], **{"/files/a.txt": error(410, "outputs expired")})

    with pytest.raises(GoneError, match="outputs expired"):
        Run(client(routes(table)), "r").download(tmp_path)
    assert not (tmp_path / "a.txt").exists()


@pytest.mark.parametrize("failures", [1, 3])
def test_a_download_is_retried_after_transport_errors(tmp_path: Path, failures: int) -> None:
    from toolchest_wes.client import Run

    table = finished([A_TXT], **{"/files/a.txt": httpx.Response(200, content=b"hello")})
    left = [failures]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/files/a.txt" and left[0]:
            left[0] -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return routes(table)(request)

    run = Run(client(handler, retries=2), "r")
    if failures > 2:
        with pytest.raises(TransportError, match=r"downloading a\.txt"):
            run.download(tmp_path)
    else:
        assert run.download(tmp_path) == [tmp_path / "a.txt"]
        assert (tmp_path / "a.txt").read_bytes() == b"hello"


def test_an_error_answer_to_an_archive_download_is_raised(tmp_path: Path) -> None:
    from toolchest_wes.client import Run

    seen: list[str] = []
    table = finished([A_TXT])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("archive") == "zip":
            seen.append(str(request.url.params))
            return error(500, "zip failed")
        return routes(table)(request)

    with pytest.raises(ServerError):
        Run(client(handler, retries=0), "r").download(tmp_path, ["a.txt"], archive=True)
    assert seen and "path=a.txt" in seen[0]
    assert list(tmp_path.iterdir()) == []
