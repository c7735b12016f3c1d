"""Catalog entries with a Dockstore-style TRS id (``#workflow/github.com/org/repo``): the
manifest field, and the TRS API finding the tool by that id when it arrives percent-encoded,
as Dockstore's clients send it, or with its slashes as they are."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.unit.catalog.test_catalog_manifest import MANIFEST, TOOL, make_entry
from toolchest_wes.catalog.catalog import Catalog, CatalogError
from toolchest_wes.catalog.manifest import ManifestError, load_manifest

TRS = "/ga4gh/trs/v2"
TRS_ID = "#workflow/github.com/org/count"
ENCODED = quote(TRS_ID, safe="")


def with_trs_id(trs_id: str) -> str:
    return MANIFEST.replace("tags: [text]", f'tags: [text]\ntrs_id: "{trs_id}"')


@pytest.fixture
def trs(make_app: Any, make_settings: Any, tmp_path: Path) -> Any:
    catalog = tmp_path / "catalog"
    make_entry(catalog, with_trs_id(TRS_ID))
    make_entry(catalog, MANIFEST.replace("id: count", "id: other"), name="other")
    return make_app(make_settings(catalog=str(catalog))).app.test_client()


def get(client: Any, path: str, status: int = 200) -> Any:
    response = client.get(TRS + path)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


@pytest.mark.parametrize(
    "trs_id",
    ["#workflow/github.com/org/repo", "#tool/quay.io/org/repo/name", "#workflow/gitlab.com/o/r_2"],
)
def test_a_manifest_may_give_a_dockstore_style_id(tmp_path: Path, trs_id: str) -> None:
    tool = load_manifest(make_entry(tmp_path, with_trs_id(trs_id)), "org")
    assert (tool.id, tool.trs_id, tool.served_id) == ("count", trs_id, trs_id)
    assert load_manifest(make_entry(tmp_path, name="plain"), "org").served_id == "count"


@pytest.mark.parametrize(
    "trs_id",
    [
        "workflow/github.com/org/repo",
        "#workflows/github.com/org/repo",
        "#workflow",
        "#workflow/",
        "#workflow/github.com//repo",
        "#workflow/github.com/../repo",
        "#workflow/github.com/org/repo:1.0",
        "#workflow/github.com/org/re po",
        "#workflow/github.com/org/repo%2F",
    ],
)
def test_a_wrong_dockstore_style_id_is_named(tmp_path: Path, trs_id: str) -> None:
    with pytest.raises(ManifestError, match="trs_id"):
        load_manifest(make_entry(tmp_path, with_trs_id(trs_id)), "org")


def test_two_tools_with_one_dockstore_style_id_are_refused(tmp_path: Path) -> None:
    make_entry(tmp_path, with_trs_id(TRS_ID))
    make_entry(tmp_path, with_trs_id(TRS_ID).replace("id: count", "id: two"), name="two")
    with pytest.raises(CatalogError, match=re.escape(f"trs_id: {TRS_ID!r} is the id")):
        Catalog(tmp_path)


def test_the_catalog_finds_a_tool_by_its_dockstore_style_id(tmp_path: Path) -> None:
    make_entry(tmp_path, with_trs_id(TRS_ID))
    catalog = Catalog(tmp_path)
    found = catalog.tool(TRS_ID)
    assert found is not None and found.id == "count"
    assert catalog.tool("#workflow/github.com/org") is None


EMBEDDED = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


@EMBEDDED
def test_the_listing_shows_the_dockstore_style_id(trs: Any) -> None:
    tools = {t["id"]: t for t in get(trs, "/tools").get_json()}
    assert sorted(tools) == [TRS_ID, "other"]
    tool = tools[TRS_ID]
    assert tool["url"] == f"http://localhost{TRS}/tools/{ENCODED}"
    assert tool["versions"][0]["url"] == f"http://localhost{TRS}/tools/{ENCODED}/versions/1.0"
    assert [t["id"] for t in get(trs, f"/tools?id={ENCODED}").get_json()] == [TRS_ID]


@EMBEDDED
@pytest.mark.parametrize("tool_path", [ENCODED, quote(TRS_ID, safe="/")])
def test_every_operation_finds_the_tool_by_that_id(trs: Any, tool_path: str) -> None:
    base = f"/tools/{tool_path}"
    assert get(trs, base).get_json()["id"] == TRS_ID
    assert [v["id"] for v in get(trs, f"{base}/versions").get_json()] == ["1.0"]
    assert get(trs, f"{base}/versions/1.0").get_json()["id"] == "1.0"
    wrapped = get(trs, f"{base}/versions/1.0/CWL/descriptor").get_json()
    assert wrapped["content"] == TOOL
    assert wrapped["url"].startswith(f"http://localhost{TRS}/tools/{ENCODED}/versions/1.0/")
    assert get(trs, f"{base}/versions/1.0/PLAIN_CWL/descriptor").get_data(as_text=True) == TOOL
    for nested in ("lib/step.cwl", "lib%2Fstep.cwl"):
        step = get(trs, f"{base}/versions/1.0/PLAIN_CWL/descriptor/{nested}")
        assert step.get_data(as_text=True) == TOOL
    files = get(trs, f"{base}/versions/1.0/CWL/files").get_json()
    assert {f["path"] for f in files} == {"main.cwl", "lib/step.cwl", "test.json"}
    archive = get(trs, f"{base}/versions/1.0/CWL/files?format=zip")
    assert archive.headers["Content-Disposition"] == 'attachment; filename="count-1.0.zip"'
    assert "main.cwl" in zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert len(get(trs, f"{base}/versions/1.0/CWL/tests").get_json()) == 1
    get(trs, f"{base}/versions/1.0/containerfile", 404)


@EMBEDDED
def test_an_encoded_id_is_told_from_one_it_extends(
    make_app: Any, make_settings: Any, tmp_path: Path
) -> None:
    # Decoded, ID/versions reads as either tool's path; the request as sent tells which.
    make_entry(tmp_path, with_trs_id(TRS_ID))
    longer = with_trs_id(TRS_ID + "/versions").replace("id: count", "id: longer")
    make_entry(tmp_path, longer, name="longer")
    trs = make_app(make_settings(catalog=str(tmp_path))).app.test_client()
    encoded = quote(TRS_ID + "/versions", safe="")
    assert get(trs, f"/tools/{encoded}").get_json()["id"] == TRS_ID + "/versions"
    assert get(trs, f"/tools/{encoded}/versions/1.0").get_json()["id"] == "1.0"
    assert [v["id"] for v in get(trs, f"/tools/{ENCODED}/versions").get_json()] == ["1.0"]


@EMBEDDED
def test_what_the_catalog_lacks_is_a_404_that_names_it(trs: Any) -> None:
    missing = get(trs, f"/tools/{quote('#workflow/github.com/org/nope', safe='')}", 404)
    assert "'#workflow/github.com/org/nope'" in missing.get_json()["message"]
    version = get(trs, f"/tools/{ENCODED}/versions/9.9", 404).get_json()["message"]
    assert f"{TRS_ID!r} has no version '9.9'" in version
    assert "not WDL" in get(trs, f"/tools/{ENCODED}/versions/1.0/WDL/descriptor", 404).text
    get(trs, f"/tools/{ENCODED}/versions/1.0/CWL/descriptor/nope.cwl", 404)
    get(trs, f"/tools/{ENCODED}/versions/1.0/CWL/elsewhere", 404)
    # The plain id still names the tool, as before it had a Dockstore-style one.
    assert get(trs, "/tools/count").get_json()["id"] == TRS_ID
