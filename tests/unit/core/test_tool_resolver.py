"""ToolResolver: tool references become attachments, from the catalog or allowed registries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.catalog.test_catalog_manifest import TOOL, make_entry
from toolchest_wes.catalog.catalog import Catalog
from toolchest_wes.catalog.manifest import CatalogFile, FileKind
from toolchest_wes.catalog.remote import RegistryError, RemoteVersion
from toolchest_wes.core.errors import BadRequestError, ForbiddenError
from toolchest_wes.core.submission import RunSubmission
from toolchest_wes.core.tools import ToolResolver
from toolchest_wes.core.workspace import Attachment

SHA = hashlib.sha256(TOOL.encode()).hexdigest()


def remote(base: str, tool_id: str, version_id: str) -> RemoteVersion:
    if version_id != "2":
        raise RegistryError(
            f"the TRS registry {base} has no tool {tool_id!r} version {version_id!r}"
        )
    files = [CatalogFile("main.cwl", FileKind.PRIMARY, TOOL.encode(), SHA)]
    return RemoteVersion("CWL", "v1.2", "main.cwl", files)


def never(url: str) -> None:
    """The URL policy: every registry host passes."""


@pytest.fixture
def resolver(tmp_path: Path) -> ToolResolver:
    make_entry(tmp_path)
    return ToolResolver(
        Catalog(tmp_path),
        fetch=remote,
        check_url=never,
        own_hosts=frozenset({"me:8080"}),
        allowed_hosts=frozenset({"reg.example.org"}),
        default_registry="https://reg.example.org/ga4gh/trs/v2",
    )


def test_a_catalog_tool_becomes_attachments_and_tags(resolver: ToolResolver) -> None:
    sub = RunSubmission(workflow_url="trs://me:8080/count/1.0", tags={"mine": "x"})

    resolver.apply(sub)

    assert sub.workflow_url == "tool/main.cwl"
    assert (sub.workflow_type, sub.workflow_type_version) == ("CWL", "v1.2")
    assert sorted(a.name for a in sub.attachments) == ["tool/lib/step.cwl", "tool/main.cwl"]
    assert sub.tags == {
        "mine": "x",
        "toolchest_wes.tool": "count",
        "toolchest_wes.tool_version": "1.0",
        "toolchest_wes.tool_registry": "catalog",
        "toolchest_wes.tool_checksum": f"sha-256:{SHA}",
        "toolchest_wes.tool_url": "trs://me:8080/count/1.0",
    }


def test_a_remote_tool_is_read_from_an_allowed_registry(resolver: ToolResolver) -> None:
    for url in ("trs://reg.example.org/t/2", "#workflow/github.com/o/r:2"):
        sub = RunSubmission(workflow_url=url)
        resolved = resolver.apply(sub)
        assert resolved is not None and resolved.registry == "https://reg.example.org/ga4gh/trs/v2"
        assert sub.workflow_url == "tool/main.cwl"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("trs://me:8080/nope/1.0", "catalog has no tool 'nope'"),
        ("trs://me:8080/count/9", r"has no version '9' \(it has 1.0\)"),
        ("trs://other.org/t/2", "registry other.org is not one this server reads"),
        ("trs://reg.example.org/t/3", "has no tool 't' version '3'"),
        ("trs://me:8080/count", "trs://HOST/TOOL_ID/VERSION"),
    ],
)
def test_what_cannot_be_read_is_a_400_naming_it(
    resolver: ToolResolver, url: str, message: str
) -> None:
    sub = RunSubmission(workflow_url=url)
    with pytest.raises(BadRequestError, match=message):
        resolver.apply(sub)
    assert sub.attachments == [] and sub.workflow_url == url


def test_a_registry_id_needs_a_default_registry(resolver: ToolResolver) -> None:
    resolver.default_registry = None
    with pytest.raises(BadRequestError, match="no default TRS registry"):
        resolver.apply(RunSubmission(workflow_url="#workflow/github.com/o/r:2"))


def test_the_url_policy_applies_to_registries(resolver: ToolResolver) -> None:
    def refuse(url: str) -> None:
        raise BadRequestError(f"the TRS registry {url!r} is a private address")

    resolver.check_url = refuse
    with pytest.raises(BadRequestError, match="private address"):
        resolver.apply(RunSubmission(workflow_url="trs://reg.example.org/t/2"))


def test_a_type_that_is_not_the_tools_is_refused(resolver: ToolResolver) -> None:
    with pytest.raises(BadRequestError, match="which is CWL"):
        resolver.apply(RunSubmission(workflow_url="trs://me:8080/count/1.0", workflow_type="WDL"))


def test_other_workflows_pass_unless_catalog_only(resolver: ToolResolver) -> None:
    sub = RunSubmission(workflow_url="wf.cwl", attachments=[Attachment("wf.cwl", None)])  # type: ignore[arg-type]
    assert resolver.apply(sub) is None and sub.workflow_url == "wf.cwl"

    resolver.catalog_only = True
    with pytest.raises(ForbiddenError, match="only the tools of its catalog"):
        resolver.apply(sub)
    with pytest.raises(ForbiddenError, match="only the tools of its own catalog"):
        resolver.apply(RunSubmission(workflow_url="trs://reg.example.org/t/2"))
    assert resolver.apply(RunSubmission(workflow_url="trs://me:8080/count/1.0")) is not None


def test_the_host_a_request_was_sent_to_names_this_server(resolver: ToolResolver) -> None:
    sub = RunSubmission(workflow_url="trs://wes.internal:81/count/1.0", host="wes.internal:81")
    resolved = resolver.apply(sub)
    assert resolved is not None and resolved.registry == "catalog"
