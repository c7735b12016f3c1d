"""serve's limit options travel to the server processes as TOOLCHEST_WES_* variables."""

from __future__ import annotations

from click.testing import CliRunner

from toolchest_wes.cli import main
from toolchest_wes.config import Settings


def test_serve_passes_the_limit_options_on(tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr(main, "_exec", lambda env, *args: captured.update(env))
    flags = [
        "--max-request-bytes=2048",
        "--max-active-runs-per-user=3",
        "--submit-rate=0.5",
        "--submit-burst=4",
        "--allow-private-workflow-urls",
        "--workflow-url-allowed-hosts=git.internal,10.0.0.0/8",
        "--output-locations=file",
    ]

    result = CliRunner().invoke(main.cli, ["serve", "--data-dir", str(tmp_path), *flags])

    assert result.exit_code == 0, result.output
    for key in list(captured):
        if key.startswith("TOOLCHEST_WES_"):
            monkeypatch.setenv(key, captured[key])
    settings = Settings()
    assert settings.max_request_bytes == 2048
    assert settings.max_active_runs_per_user == 3
    assert settings.submit_rate == 0.5 and settings.submit_burst == 4
    assert settings.allow_private_workflow_urls is True
    assert settings.workflow_url_allowed_hosts == "git.internal,10.0.0.0/8"
    assert settings.output_locations == "file"


def test_serve_refuses_a_bad_network(tmp_path):
    result = CliRunner().invoke(
        main.cli,
        ["serve", "--data-dir", str(tmp_path), "--workflow-url-allowed-hosts", "10.0.0.0/40"],
    )

    assert result.exit_code == 2
    assert "--workflow-url-allowed-hosts" in result.output and "10.0.0.0/40" in result.output


def test_per_user_limits_default_to_none_without_authentication(tmp_path, monkeypatch):
    for key in ("AUTH", "HOST", "SUBMIT_RATE", "MAX_ACTIVE_RUNS_PER_USER"):
        monkeypatch.delenv(f"TOOLCHEST_WES_{key}", raising=False)
    personal = Settings(data_dir=tmp_path)
    assert personal.effective_submit_rate == 0 and personal.effective_max_active_runs_per_user == 0
    shared = Settings(data_dir=tmp_path, auth="tokens")
    assert shared.effective_submit_rate == 60 and shared.effective_max_active_runs_per_user == 100
    on_all_addresses = Settings(data_dir=tmp_path, host="0.0.0.0")
    assert on_all_addresses.effective_submit_rate == 60
    chosen = Settings(data_dir=tmp_path, submit_rate=5, max_active_runs_per_user=2)
    assert chosen.effective_submit_rate == 5 and chosen.effective_max_active_runs_per_user == 2
