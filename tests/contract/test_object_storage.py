"""The object-storage contract: the same tests against a local folder and a real S3 server
(moto's standalone server, tests/moto_server.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.moto_server import MotoServer
from toolchest_wes.storage import storage_from_url
from toolchest_wes.storage.base import ObjectStorage, StorageUnavailableError
from toolchest_wes.storage.local_storage import LocalFolderStorage


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    return LocalFolderStorage(tmp_path / "objects")


def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    server: MotoServer = request.getfixturevalue("moto_server")
    server.start()
    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    return storage_from_url(f"s3://{server.new_bucket()}/some/prefix")


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], ObjectStorage]] = {
    "local": _local,
    "s3": _s3,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStorage:
    return BACKENDS[request.param](request, tmp_path)


def test_a_file_put_comes_back_whole_and_in_ranges(storage: ObjectStorage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    data = bytes(range(256)) * 10
    source.write_bytes(data)
    storage.put_file("run/outputs/in.bin", source)

    info = storage.stat("run/outputs/in.bin")
    assert info is not None and info.size == len(data) and info.etag
    assert b"".join(storage.read("run/outputs/in.bin")) == data
    assert b"".join(storage.read("run/outputs/in.bin", 10, 20)) == data[10:20]
    assert b"".join(storage.read("run/outputs/in.bin", 2550)) == data[2550:]
    assert b"".join(storage.read("run/outputs/in.bin", 5, 5)) == b""
    storage.download("run/outputs/in.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_put_bytes_replaces_and_changes_the_tag(storage: ObjectStorage) -> None:
    storage.put_bytes("run/stdout.log", b"one\n")
    first = storage.stat("run/stdout.log")
    storage.put_bytes("run/stdout.log", b"one\ntwo\n")
    second = storage.stat("run/stdout.log")
    assert first is not None and second is not None
    assert second.size == 8 and second.etag != first.etag
    assert b"".join(storage.read("run/stdout.log")) == b"one\ntwo\n"


def test_missing_objects(storage: ObjectStorage, tmp_path: Path) -> None:
    assert storage.stat("run/nothing") is None
    with pytest.raises(FileNotFoundError):
        storage.read("run/nothing")
    with pytest.raises(FileNotFoundError):
        storage.download("run/nothing", tmp_path / "x")
    assert storage.list_prefix("run") == []
    assert storage.delete_prefix("run") == []


def test_listing_is_by_prefix_and_deleting_a_prefix_leaves_the_rest(
    storage: ObjectStorage,
) -> None:
    for key in ("a/outputs/x.txt", "a/outputs/sub/y.txt", "a/stdout.log", "ab/outputs/z.txt"):
        storage.put_bytes(key, key.encode())
    listed = storage.list_prefix("a/outputs")
    assert [i.key for i in listed] == ["a/outputs/sub/y.txt", "a/outputs/x.txt"]
    assert [i.size for i in listed] == [len("a/outputs/sub/y.txt"), len("a/outputs/x.txt")]

    assert storage.delete_prefix("a/outputs") == []
    assert storage.list_prefix("a/outputs") == []
    assert storage.stat("a/stdout.log") is not None
    assert [i.key for i in storage.list_prefix("ab")] == ["ab/outputs/z.txt"]
    assert storage.delete_keys(["a/stdout.log", "a/never-written"]) == []
    assert storage.stat("a/stdout.log") is None


def test_keys_that_could_leave_the_root_are_refused(storage: ObjectStorage) -> None:
    for key in ("", "/abs", "a/../b", "a//b", "a/"):
        with pytest.raises(ValueError, match="not a storage key"):
            storage.put_bytes(key, b"x")


def test_presigned_urls_exist_only_where_the_storage_serves_http(storage: ObjectStorage) -> None:
    import httpx

    storage.put_bytes("run/outputs/r.txt", b"hello")
    url = storage.presigned_url("run/outputs/r.txt", filename="r.txt", expires_s=60)
    if isinstance(storage, LocalFolderStorage):
        assert url is None
        return
    assert url is not None
    response = httpx.get(url)
    assert response.content == b"hello"
    assert 'filename="r.txt"' in response.headers["content-disposition"]


def test_an_unreachable_bucket_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.redis_server import _free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    storage = storage_from_url(
        "s3://bucket/p", endpoint_url=f"http://127.0.0.1:{_free_port()}", region="us-east-1"
    )
    with pytest.raises(StorageUnavailableError, match="did not answer"):
        storage.put_bytes("run/x", b"x")
    with pytest.raises(StorageUnavailableError):
        storage.stat("run/x")


def test_a_missing_bucket_is_unavailable_and_says_what_to_fix(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    storage = storage_from_url("s3://no-such-bucket-here/p")
    with pytest.raises(StorageUnavailableError, match="no-such-bucket-here cannot be used"):
        storage.put_bytes("run/x", b"x")
