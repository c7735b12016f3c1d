"""Parsing tool references: trs:// URIs, TRS URLs and Dockstore-style ids."""

from __future__ import annotations

import pytest

from toolchest_wes.catalog.reference import BadReferenceError, ToolReference, parse_reference


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "trs://wes.example.org/wc/1.0",
            ("wes.example.org", "https://wes.example.org/ga4gh/trs/v2", "wc", "1.0"),
        ),
        (
            "trs://localhost:8080/%23workflow%2Fgithub.com%2Forg%2Frepo/main",
            (
                "localhost:8080",
                "http://localhost:8080/ga4gh/trs/v2",
                "#workflow/github.com/org/repo",
                "main",
            ),
        ),
        (
            "trs://Reg.Example.org/org/tool/v2",
            ("reg.example.org", "https://reg.example.org/ga4gh/trs/v2", "org/tool", "v2"),
        ),
        (
            "https://dockstore.org/api/ga4gh/trs/v2/tools/%23workflow%2Fgithub.com%2Fa%2Fb"
            "/versions/1.2/CWL/descriptor",
            (
                "dockstore.org",
                "https://dockstore.org/api/ga4gh/trs/v2",
                "#workflow/github.com/a/b",
                "1.2",
            ),
        ),
        (
            "http://127.0.0.1:9/ga4gh/trs/v2/tools/wc/versions/1.0",
            ("127.0.0.1:9", "http://127.0.0.1:9/ga4gh/trs/v2", "wc", "1.0"),
        ),
        ("#workflow/github.com/org/repo:main", ("", None, "#workflow/github.com/org/repo", "main")),
    ],
)
def test_references_name_registry_tool_and_version(
    url: str, expected: tuple[str, str | None, str, str]
) -> None:
    assert parse_reference(url) == ToolReference(url, *expected)


@pytest.mark.parametrize(
    "url", ["wf.cwl", "https://example.org/wf.cwl", "wf.cwl#main", "https://x.org/tools/a"]
)
def test_other_urls_are_no_references(url: str) -> None:
    assert parse_reference(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("trs://host/only-a-tool", "trs://HOST/TOOL_ID/VERSION"),
        ("trs:///wc/1.0", "trs://HOST/TOOL_ID/VERSION"),
        ("#workflow/github.com/org/repo", "names no version"),
    ],
)
def test_incomplete_references_are_named(url: str, message: str) -> None:
    with pytest.raises(BadReferenceError, match=message):
        parse_reference(url)
