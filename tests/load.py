"""Submission load for fault tests: many clients POSTing hello runs at a steady rate.

Each submission carries two tags: the batch it belongs to and a client tag of its own, so a
test can tell afterwards which runs exist, whether any submission made two runs, and which
runs exist although their client never got a 200 (an answer lost with a dying Redis).

A keyed load (``keyed=True``) is a foreign client that follows the Idempotency-Key draft with
plain httpx: each submission sends its client tag as the key, and after a 5xx or a broken
connection sends the same request again with the same key until it gets an answer. To break
connections whatever Redis does, the first try of every fourth keyed submission gives up
after ``_IMPATIENT_S``, most often while the server is still making the run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import API
from tests.processes import list_all

__all__ = ["TAG_BATCH", "TAG_CLIENT", "Answer", "Load", "batch_runs"]

TAG_BATCH = "load-batch"
TAG_CLIENT = "load-client"
#: Long enough for a submission that waits out a Redis restart (every Redis call of the API
#: gives up after 2 s), short enough that a client never hangs a test.
_REQUEST_TIMEOUT_S = 20.0
#: How long a keyed client keeps resending one submission, and the pause between tries.
_RESEND_FOR_S = 20.0
_RESEND_PAUSE_S = 0.2
#: How long the impatient first tries of a keyed load wait for an answer.
_IMPATIENT_S = 0.05


@dataclass
class Answer:
    """What one submission got: an HTTP status (or a transport error's name) and a run id."""

    client_tag: str
    status: str
    run_id: str | None
    headers: dict[str, str] = field(default_factory=dict)
    #: The statuses (or transport errors) of the tries before this answer, when resent.
    failed_tries: list[str] = field(default_factory=list)


class Load:
    """``clients`` threads that together POST about ``rate`` hello runs a second.

    Args:
        url: The API's base URL.
        workflow: The CWL file to attach (a hello-world tool).
        clients: Concurrent clients, each with its own connection.
        rate: Submissions per second over all clients.
        keyed: Send an Idempotency-Key and resend after a 5xx or a broken connection.
        timeout: Seconds each client waits for an answer before it drops the connection.
    """

    def __init__(
        self,
        url: str,
        workflow: Path,
        *,
        clients: int = 16,
        rate: float = 30,
        keyed: bool = False,
        timeout: float = _REQUEST_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.workflow = workflow
        self.clients = clients
        self.rate = rate
        self.keyed = keyed
        self.timeout = timeout
        self.batch = uuid.uuid4().hex[:12]
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every client; they submit until :meth:`stop`."""
        period = self.clients / self.rate
        for i in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(i, period, period * i / self.clients), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> list[Answer]:
        """Stop the clients, wait for their last answers, and return every answer."""
        self._stop.set()
        for thread in self._threads:
            thread.join(_RESEND_FOR_S + 2 * self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a load client hangs"
        return list(self.answers)

    def accepted(self) -> dict[str, str]:
        """client tag -> run id, of every submission answered 200."""
        return {a.client_tag: a.run_id for a in self.answers if a.run_id is not None}

    def statuses(self) -> Counter[str]:
        """How many answers had each status."""
        return Counter(a.status for a in self.answers)

    def post_once(self, tag: str) -> Answer:
        """One submission with client tag ``tag``, recorded like the clients' own."""
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            answer = self._submit(client, self.workflow.read_bytes(), tag)
        self._record(answer)
        return answer

    def _client(self, index: int, period: float, offset: float) -> None:
        body = self.workflow.read_bytes()
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            due = time.monotonic() + offset
            n = 0
            while not self._stop.is_set():
                # A steady schedule that never bursts to catch up after a slow answer.
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                due = max(due + period, time.monotonic())
                tag = f"{self.batch}-{index}-{n}"
                n += 1
                self._record(self._submit(client, body, tag))

    def _submit(self, client: httpx.Client, body: bytes, tag: str) -> Answer:
        if not self.keyed:
            return self._post(client, body, tag)
        failed: list[str] = []
        deadline = time.monotonic() + _RESEND_FOR_S
        impatient = int(tag.rsplit("-", 1)[1]) % 4 == 0  # the tag ends with the client's count
        while True:
            timeout = _IMPATIENT_S if impatient and not failed else self.timeout
            answer = self._post(client, body, tag, key=tag, timeout=timeout)
            retry = not answer.status.isdigit() or answer.status.startswith("5")
            if not retry or time.monotonic() > deadline:
                answer.failed_tries = failed
                return answer
            failed.append(answer.status)
            time.sleep(_RESEND_PAUSE_S)

    def _post(
        self,
        client: httpx.Client,
        body: bytes,
        tag: str,
        key: str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        data = {
            "workflow_type": "CWL",
            "workflow_type_version": "v1.2",
            "workflow_url": self.workflow.name,
            "workflow_params": json.dumps({"message": tag}),
            "tags": json.dumps({TAG_BATCH: self.batch, TAG_CLIENT: tag}),
        }
        try:
            response = client.post(
                f"{API}/runs",
                data=data,
                files=[("workflow_attachment", (self.workflow.name, body))],
                headers={} if key is None else {"Idempotency-Key": f'"{key}"'},
                timeout=timeout or self.timeout,
            )
        except httpx.HTTPError as exc:
            return Answer(tag, type(exc).__name__, None)
        run_id = response.json().get("run_id") if response.status_code == 200 else None
        return Answer(tag, str(response.status_code), run_id, dict(response.headers))

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)


def batch_runs(url: str, batch: str) -> list[dict[str, object]]:
    """Every run of the batch (``GET /runs?tag=``), following next_page_token to the end."""
    return list_all(url, f"{TAG_BATCH}:{batch}")
