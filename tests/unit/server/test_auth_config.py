"""Authentication settings: the default by address, validation, and startup checks."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tests.oidc_keys import Provider
from toolchest_wes.cli.main import cli
from toolchest_wes.config import AuthMode, Settings, is_loopback
from toolchest_wes.server.auth import build_authenticator, check_auth_config


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("wes.example.org", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback
    expected = AuthMode.OFF if loopback else AuthMode.TOKENS
    assert Settings(host=host).effective_auth is expected


def test_explicit_mode_wins_and_comes_from_the_environment(monkeypatch):
    assert Settings(host="0.0.0.0", auth="off").effective_auth is AuthMode.OFF
    assert Settings(auth="tokens").effective_auth is AuthMode.TOKENS
    monkeypatch.setenv("TOOLCHEST_WES_AUTH", "tokens")
    monkeypatch.setenv("TOOLCHEST_WES_ADMIN_USERS", " root, boss ,,")
    settings = Settings()
    assert settings.effective_auth is AuthMode.TOKENS
    assert settings.admin_user_names == {"root", "boss"}


def test_oidc_needs_issuer_audience_and_jwks():
    with pytest.raises(ValidationError, match="--oidc-issuer, --oidc-audience, --oidc-jwks"):
        Settings(auth="oidc")
    with pytest.raises(ValidationError, match="needs --oidc-jwks"):
        Settings(auth="oidc", oidc_issuer="https://i", oidc_audience="a")


def test_auth_off_on_a_public_address_warns(caplog, tmp_path):
    with caplog.at_level(logging.WARNING):
        assert build_authenticator(Settings(host="0.0.0.0", auth="off", data_dir=tmp_path)) is None
    assert "authentication is off" in caplog.text


def test_startup_checks_name_the_problem(tmp_path):
    (tmp_path / "tokens.json").write_text("garbage")
    with pytest.raises(ValueError, match="not a valid token file"):
        check_auth_config(Settings(auth="tokens", data_dir=tmp_path))
    oidc = {"oidc_issuer": "https://i", "oidc_audience": "a"}
    with pytest.raises(ValueError, match="--oidc-jwks"):
        check_auth_config(Settings(auth="oidc", oidc_jwks=str(tmp_path / "none.json"), **oidc))
    good = Provider().write_jwks(tmp_path / "jwks.json")
    check_auth_config(Settings(auth="oidc", oidc_jwks=str(good), **oidc))
    check_auth_config(Settings(auth="oidc", oidc_jwks="https://idp.invalid/jwks", **oidc))


def test_serve_fails_fast_with_a_clear_message(tmp_path):
    runner = CliRunner()

    result = runner.invoke(cli, ["serve", "--auth", "oidc", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--auth oidc needs --oidc-issuer" in result.output

    (tmp_path / "tokens.json").write_text("[]")
    result = runner.invoke(cli, ["serve", "--auth", "tokens", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a valid token file" in result.output
