"""Repeated attachments: identical parts are stored once, differing ones are refused."""

from __future__ import annotations

import io

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.submission import RunSubmission, fingerprint, unique_attachments
from toolchest_wes.core.workspace import Attachment


def _parts(*items: tuple[str, bytes]) -> list[Attachment]:
    return [Attachment(name, io.BytesIO(data)) for name, data in items]


def test_identical_repeats_are_kept_once_with_their_content():
    kept = unique_attachments(
        _parts(("wf.cwl", b"cwl"), ("./args.py", b"print()"), ("args.py", b"print()"))
    )
    assert [a.name for a in kept] == ["wf.cwl", "args.py"]
    # Comparing the repeats must leave every stream readable from its start.
    assert [a.stream.read() for a in kept] == [b"cwl", b"print()"]


def test_one_name_with_different_contents_is_refused_naming_the_file():
    with pytest.raises(BadRequestError, match=r"'lib/a.txt' was sent 2 times with different"):
        unique_attachments(_parts(("lib/a.txt", b"one"), ("lib//a.txt", b"two")))


def test_unsafe_names_are_still_refused():
    with pytest.raises(BadRequestError, match=r"contains '\.\.'"):
        unique_attachments(_parts(("../x", b"")))


def _submission(params: dict[str, object], attached: bytes = b"cwl") -> RunSubmission:
    return RunSubmission(
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="wf.cwl",
        workflow_params=params,
        attachments=_parts(("wf.cwl", attached)),
    )


def test_a_fingerprint_is_the_request_not_its_encoding():
    first = _submission({"a": 1, "b": [1, 2]})
    assert fingerprint(first) == fingerprint(_submission({"b": [1, 2], "a": 1}))
    assert first.attachments[0].stream.read() == b"cwl"  # left readable for staging
    assert fingerprint(first) != fingerprint(_submission({"a": 2, "b": [1, 2]}))
    assert fingerprint(first) != fingerprint(_submission({"a": 1, "b": [1, 2]}, b"cwl2"))
