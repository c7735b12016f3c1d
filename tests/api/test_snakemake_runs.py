"""SMK runs through the API in both modes: the local pool and Celery workers run Snakemake."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.conftest import API, EXAMPLES, Wes
from tests.snakemake_support import require_snakemake
from toolchest_wes.models import State

pytestmark = pytest.mark.integration


@pytest.fixture
def smk_wes(make_app: Any, make_settings: Any) -> Wes:
    require_snakemake()
    return Wes(make_app(make_settings(engines=["cwltool", "snakemake"])).app.test_client())


def test_scatter_gather_runs_in_each_mode(smk_wes: Wes) -> None:
    snakefile = EXAMPLES / "snakemake" / "scatter-gather" / "Snakefile"
    response = smk_wes.client.post(
        f"{API}/runs",
        data={
            "workflow_type": "SMK",
            "workflow_type_version": "9",
            "workflow_url": "Snakefile",
            "workflow_params": json.dumps({"samples": ["p", "q"]}),
            "workflow_attachment": [(io.BytesIO(snakefile.read_bytes()), "Snakefile")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    run_id = response.get_json()["run_id"]
    assert smk_wes.wait(run_id, timeout=120) is State.COMPLETE, smk_wes.log(run_id)
    log = smk_wes.log(run_id)
    assert log["request"]["workflow_engine"] == "snakemake"
    assert list(log["outputs"]) == ["gathered.txt"]
    body = smk_wes.get(f"/runs/{run_id}/outputs/gathered.txt").get_data(as_text=True)
    assert body == "sample p\nsample q\n"
    tasks = smk_wes.client.get(f"{API}/runs/{run_id}/tasks").get_json()["task_logs"]
    assert sorted(t["name"] for t in tasks) == [
        "all",
        "gather",
        "scatter[sample=p]",
        "scatter[sample=q]",
    ]


def test_an_unknown_version_names_the_smk_versions(smk_wes: Wes) -> None:
    response = smk_wes.client.post(
        f"{API}/runs",
        data={
            "workflow_type": "SMK",
            "workflow_type_version": "7",
            "workflow_url": "Snakefile",
            "workflow_attachment": [(io.BytesIO(b"rule a:\n    shell: 'true'\n"), "Snakefile")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "1.0, 9" in response.get_json()["msg"]
