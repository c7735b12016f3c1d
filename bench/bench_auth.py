"""What authentication costs on the busiest request, ``GET /runs/{id}/status``.

Three in-process embedded apps (auth off, API tokens, OIDC with an RS256 JWT) answer the same
status poll of a run their user owns, through Flask's test client, so the figures are the
server's own work without sockets. Requests are interleaved in rounds so all three see the
same machine load; the script prints the median time per request and its ratio to auth off.

Usage: python bench/bench_auth.py [--rounds 30] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT

sys.path.insert(0, str(ROOT))

from tests.oidc_keys import AUDIENCE, ISSUER, Provider
from toolchest_wes.config import Settings
from toolchest_wes.models import RunRequest, State
from toolchest_wes.server.app import create_app, get_state
from toolchest_wes.server.tokens import TokenFile
from toolchest_wes.store.base import RunRecord

API = "/ga4gh/wes/v1"


class _NoRunner:
    def submit(self, run_id: str) -> None:
        pass

    def cancel(self, run_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def _app(root: Path, name: str, **auth: Any) -> tuple[Any, str, dict[str, str]]:
    """An app whose store holds one COMPLETE run of alice; returns the client, run id, headers."""
    settings = Settings(data_dir=root / name, container_runtime="none", **auth)
    headers: dict[str, str] = {}
    if settings.effective_auth.value == "tokens":
        headers["Authorization"] = f"Bearer {TokenFile(settings.tokens_file).create('alice')[1]}"
    app = create_app(settings, runner=_NoRunner())
    request = RunRequest(workflow_url="x.cwl", workflow_type="CWL", workflow_type_version="v1.2")
    run_id = f"{name}-run"
    get_state(app).store.create_run(
        RunRecord(run_id, State.COMPLETE, request, time.time(), owner="alice")
    )
    return app.app.test_client(), run_id, headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    provider = Provider()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jwks = provider.write_jwks(root / "jwks.json")
        apps = {
            "off": _app(root, "off"),
            "tokens": _app(root, "tokens", auth="tokens"),
            "oidc": _app(
                root,
                "oidc",
                auth="oidc",
                oidc_issuer=ISSUER,
                oidc_audience=AUDIENCE,
                oidc_jwks=str(jwks),
            ),
        }
        client, run_id, headers = apps["oidc"]
        headers["Authorization"] = f"Bearer {provider.token('alice', exp=int(time.time()) + 3600)}"
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):
            for name, (client, run_id, headers) in apps.items():
                url = f"{API}/runs/{run_id}/status"
                assert client.get(url, headers=headers).status_code == 200
                started = time.perf_counter()
                for _ in range(args.requests):
                    client.get(url, headers=headers)
                samples[name].append((time.perf_counter() - started) / args.requests)
    off = statistics.median(samples["off"])
    result = {
        name: {
            "median_us": round(statistics.median(values) * 1e6, 1),
            "ratio_to_off": round(statistics.median(values) / off, 2),
        }
        for name, values in samples.items()
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
