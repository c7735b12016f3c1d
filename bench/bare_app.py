"""The baseline of the status benchmark: bare Flask returning a constant dict."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/status")
def status() -> dict[str, str]:
    """What GET /runs/{id}/status returns, without connexion, validation or a store."""
    return {"run_id": "00000000-0000-0000-0000-000000000000", "state": "COMPLETE"}
