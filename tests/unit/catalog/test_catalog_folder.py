"""A catalog folder: tools by id and name, and changes read without a restart."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.unit.catalog.test_catalog_manifest import MANIFEST, make_entry
from toolchest_wes.catalog.catalog import Catalog, CatalogError


def test_tools_are_found_by_id_name_and_alias(tmp_path: Path) -> None:
    make_entry(tmp_path, MANIFEST.replace("id: count", "id: count-it\naliases: [tally]"))
    catalog = Catalog(tmp_path)

    assert [t.id for t in catalog.tools()] == ["count-it"]
    assert catalog.tool("count-it") is catalog.tool("count_it") is catalog.tool("tally")
    assert catalog.tool("other") is None


def test_a_missing_folder_or_bad_manifest_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="is not a folder"):
        Catalog(tmp_path / "none")
    make_entry(tmp_path, MANIFEST.replace("workflow_type: cwl", "workflow_type: x"))
    with pytest.raises(CatalogError, match=r"manifest.yaml: versions\[0\].workflow_type"):
        Catalog(tmp_path)


def test_two_tools_with_one_id_are_refused(tmp_path: Path) -> None:
    make_entry(tmp_path, name="a")
    make_entry(tmp_path, name="b")
    with pytest.raises(CatalogError, match=r"b/manifest.yaml: id: 'count' is the id"):
        Catalog(tmp_path)


def test_changes_are_read_and_a_broken_change_keeps_the_last_good_catalog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_entry(tmp_path, name="a")
    catalog = Catalog(tmp_path, rescan_interval_s=0)
    assert [t.id for t in catalog.tools()] == ["count"]

    make_entry(tmp_path, MANIFEST.replace("id: count", "id: other"), name="b")
    assert [t.id for t in catalog.tools()] == ["count", "other"]

    descriptor = tmp_path / "b" / "1.0" / "main.cwl"
    descriptor.write_text(descriptor.read_text() + "# edited\n")
    os.utime(descriptor, ns=(1, 1))
    other = catalog.tool("other")
    assert other is not None and other.latest.primary.content.endswith(b"# edited\n")

    (tmp_path / "b" / "manifest.yaml").write_text("id: [")
    with caplog.at_level(logging.ERROR):
        assert [t.id for t in catalog.tools()] == ["count", "other"]
    assert "b/manifest.yaml" in caplog.text


def test_no_rescan_within_the_interval(tmp_path: Path) -> None:
    make_entry(tmp_path, name="a")
    catalog = Catalog(tmp_path, rescan_interval_s=3600)
    make_entry(tmp_path, MANIFEST.replace("id: count", "id: other"), name="b")
    assert [t.id for t in catalog.tools()] == ["count"]
