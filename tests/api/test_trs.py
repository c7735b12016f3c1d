"""The TRS 2.0.1 API over the catalog: every operation, with responses checked against the
TRS spec (the app validates them)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.unit.catalog.test_catalog_manifest import MANIFEST, TOOL, make_entry

TRS = "/ga4gh/trs/v2"

pytestmark = pytest.mark.parametrize("mode", ["embedded"], indirect=True)


@pytest.fixture
def trs(make_app: Any, make_settings: Any, tmp_path: Path) -> Any:
    catalog = tmp_path / "catalog"
    make_entry(catalog, MANIFEST.replace("tags: [text]", "tags: [text]\nauthors: [Ann]"))
    make_entry(catalog, MANIFEST.replace("id: count", "id: other"), name="other")
    return make_app(make_settings(catalog=str(catalog))).app.test_client()


def get(client: Any, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = client.get(TRS + path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def test_service_info_and_tool_classes(trs: Any) -> None:
    info = get(trs, "/service-info").get_json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "trs", "version": "2.0.1"}
    assert [c["id"] for c in get(trs, "/toolClasses").get_json()] == [
        "CommandLineTool",
        "Workflow",
    ]


def test_tools_filters_and_pages(trs: Any) -> None:
    tools = get(trs, "/tools").get_json()
    assert [t["id"] for t in tools] == ["count", "other"]
    tool = tools[0]
    assert tool["url"] == f"http://localhost{TRS}/tools/count"
    assert tool["toolclass"]["id"] == "CommandLineTool"
    assert tool["versions"][0]["descriptor_type"] == ["CWL"]

    def ids(query: str) -> list[str]:
        return [t["id"] for t in get(trs, f"/tools?{query}").get_json()]

    assert ids("id=other") == ["other"]
    assert ids("author=Ann") == ["count"]
    assert ids("descriptorType=CWL&toolClass=CommandLineTool") == ["count", "other"]
    assert ids("descriptorType=WDL") == []
    assert ids("description=COUNT") == ["count", "other"]
    assert ids("checker=true") == []
    assert ids("registry=quay.io") == []

    first = get(trs, "/tools?limit=1")
    assert [t["id"] for t in first.get_json()] == ["count"]
    assert first.headers["next_page"].endswith("/tools?offset=1&limit=1")
    assert first.headers["current_limit"] == "1"
    second = get(trs, "/tools?limit=1&offset=1")
    assert [t["id"] for t in second.get_json()] == ["other"]
    assert "next_page" not in second.headers
    assert ids("offset=9") == ids("offset=nonsense") == []


def test_tool_versions_and_missing_ones(trs: Any) -> None:
    assert get(trs, "/tools/count").get_json()["name"] == "count"
    assert [v["id"] for v in get(trs, "/tools/count/versions").get_json()] == ["1.0"]
    version = get(trs, "/tools/count/versions/1.0").get_json()
    assert version["descriptor_type_version"] == {"CWL": ["v1.2"]}

    missing = get(trs, "/tools/nope", 404).get_json()
    assert missing == {"code": 404, "message": "the catalog has no tool 'nope'"}
    assert "no version '9'" in get(trs, "/tools/count/versions/9", 404).get_json()["message"]
    assert get(trs, "/tools/count/versions/1.0/containerfile", 404).get_json()["code"] == 404


def test_descriptors_by_type_and_relative_path(trs: Any) -> None:
    wrapped = get(trs, "/tools/count/versions/1.0/CWL/descriptor").get_json()
    assert wrapped["content"] == TOOL
    assert wrapped["checksum"] == [
        {"checksum": hashlib.sha256(TOOL.encode()).hexdigest(), "type": "sha-256"}
    ]
    plain = get(trs, "/tools/count/versions/1.0/PLAIN_CWL/descriptor")
    assert plain.mimetype == "text/plain" and plain.get_data(as_text=True) == TOOL
    nested = get(trs, "/tools/count/versions/1.0/CWL/descriptor/lib/step.cwl").get_json()
    assert nested["content"] == TOOL
    encoded = get(trs, "/tools/count/versions/1.0/PLAIN_CWL/descriptor/lib%2Fstep.cwl")
    assert encoded.get_data(as_text=True) == TOOL
    assert "written in CWL" in get(trs, "/tools/count/versions/1.0/WDL/descriptor", 404).text
    get(trs, "/tools/count/versions/1.0/CWL/descriptor/nope.cwl", 404)
    get(trs, "/tools/count/versions/1.0/CWL/descriptor/../manifest.yaml", 404)


def test_files_listing_zip_and_tests(trs: Any) -> None:
    files = get(trs, "/tools/count/versions/1.0/CWL/files").get_json()
    assert {(f["path"], f["file_type"]) for f in files} == {
        ("main.cwl", "PRIMARY_DESCRIPTOR"),
        ("lib/step.cwl", "SECONDARY_DESCRIPTOR"),
        ("test.json", "TEST_FILE"),
    }
    archive = get(trs, "/tools/count/versions/1.0/CWL/files?format=zip")
    assert archive.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(archive.get_data())).namelist()
    assert sorted(names) == ["lib/step.cwl", "main.cwl", "test.json"]
    tests = get(trs, "/tools/count/versions/1.0/CWL/tests").get_json()
    assert [json.loads(t["content"]) for t in tests] == [{"n": 1}]


def test_the_wes_service_info_names_the_catalog(make_app: Any, make_settings: Any) -> None:
    client = make_app(make_settings()).app.test_client()
    info = client.get("/ga4gh/wes/v1/service-info").get_json()
    assert info["toolchest_wes_catalog"] == {
        "catalog": "starter",
        "catalog_only": False,
        "trs": TRS,
        "trs_allow": [],
        "trs_registry": None,
    }
    tools = client.get(f"{TRS}/tools").get_json()
    assert {"hello", "wc", "gzip"} <= {t["id"] for t in tools}


def test_no_catalog_is_an_empty_registry(make_app: Any, make_settings: Any) -> None:
    client = make_app(make_settings(catalog="off")).app.test_client()
    assert client.get(f"{TRS}/tools").get_json() == []
    assert "no catalog" in client.get(f"{TRS}/service-info").get_json()["description"]


def test_a_bad_manifest_stops_the_app(make_app: Any, make_settings: Any, tmp_path: Path) -> None:
    from toolchest_wes.catalog.catalog import CatalogError

    make_entry(tmp_path / "bad", MANIFEST.replace("workflow_type: cwl", "workflow_type: x"))
    with pytest.raises(CatalogError, match=r"manifest.yaml: versions\[0\].workflow_type"):
        make_app(make_settings(catalog=str(tmp_path / "bad")))
