"""Reading a version from a remote TRS registry: a registry's wrong answers are named.

The registry that answers right is a real server, in tests/integration/test_trs_registry.py;
these answers are made up, as no real registry sends them on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest

from toolchest_wes.catalog.remote import RegistryError, RemoteVersion, fetch_version

BASE = "https://reg.example.org/ga4gh/trs/v2"
VERSION = f"{BASE}/tools/t/versions/1"
TOOL = b"cwlVersion: v1.2\nclass: CommandLineTool\n"


def registry(
    files: list[dict[str, object]], content: bytes = TOOL, version_status: int = 200
) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == VERSION:
            body = {"id": "1", "url": url, "descriptor_type": ["CWL"],
                    "descriptor_type_version": {"CWL": ["v1.2"]}}  # fmt: skip
            return httpx.Response(version_status, json=body)
        if url == f"{VERSION}/CWL/files":
            return httpx.Response(200, json=files)
        if url.startswith(f"{VERSION}/PLAIN_CWL/descriptor/"):
            return httpx.Response(200, content=content)
        return httpx.Response(404, json={"code": 404})

    return answer


def fetch(answer: Callable[[httpx.Request], httpx.Response]) -> RemoteVersion:
    return fetch_version(BASE, "t", "1", transport=httpx.MockTransport(answer))


def primary(checksum: str | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"path": "main.cwl", "file_type": "PRIMARY_DESCRIPTOR"}
    if checksum is not None:
        entry["checksum"] = {"checksum": checksum, "type": "sha-256"}
    return entry


def test_a_version_with_matching_checksums_is_read() -> None:
    test_file: dict[str, object] = {"path": "t.json", "file_type": "TEST_FILE"}
    version = fetch(registry([primary(hashlib.sha256(TOOL).hexdigest()), test_file]))

    assert version.primary_descriptor == "main.cwl"
    assert [f.path for f in version.files] == ["main.cwl"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (registry([primary("0" * 64)]), "main.cwl does not match its sha-256 checksum"),
        (registry([]), "lists 0 primary descriptors"),
        (registry([primary()], version_status=500), "answered 500"),
        (registry([primary()], version_status=404), "has no tool 't' version '1'"),
        (lambda request: httpx.Response(200, content=b"<html>"), "sent no JSON"),
    ],
)
def test_wrong_answers_are_named(
    answer: Callable[[httpx.Request], httpx.Response], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        fetch(answer)


def test_a_dockstore_style_id_is_sent_percent_encoded_as_dockstore_serves_it() -> None:
    paths: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(404, json={"code": 404})

    with pytest.raises(RegistryError):
        fetch_version(
            BASE, "#workflow/github.com/org/repo", "1.0", transport=httpx.MockTransport(answer)
        )
    assert paths == [b"/ga4gh/trs/v2/tools/%23workflow%2Fgithub.com%2Forg%2Frepo/versions/1.0"]
