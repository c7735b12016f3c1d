"""Webhooks from settings: the secret, subscriptions files and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchest_wes.config import Settings
from toolchest_wes.wiring.webhooks import build_webhooks, load_subscriptions


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_no_secret_and_no_subscriptions_means_no_webhooks(tmp_path: Path) -> None:
    assert build_webhooks(_settings(tmp_path)) is None


def test_the_secret_file_gives_the_secret(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    secret = tmp_path / "secret"
    secret.write_text("from-file\nignored\n")
    hooks = build_webhooks(_settings(tmp_path, webhook_secret_file=secret))
    assert hooks is not None
    assert hooks.secret_of("") == "from-file"
    hooks.outbox.close()


def test_subscriptions_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "hooks.yaml"
    yaml_file.write_text("webhooks:\n  - {url: 'https://a.example/', secret: s1, events: all}\n")
    json_file = tmp_path / "hooks.json"
    json_file.write_text('[{"url": "https://b.example/", "secret": "s2"}]')
    (first,) = load_subscriptions(yaml_file)
    (second,) = load_subscriptions(json_file)
    assert (first.url, first.secret, first.events) == ("https://a.example/", "s1", "all")
    assert second.events == "terminal"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- {url: 'https://a.example/'}", "needs a url and a secret"),
        ("- {url: 'https://a.example/', secret: s, events: some}", "all or terminal"),
        ("url: x", "expected a list"),
    ],
)
def test_bad_subscriptions_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        load_subscriptions(path)


def test_a_webhook_url_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a webhook secret"):
        build_webhooks(_settings(tmp_path, webhook=["https://a.example/"]))


def test_a_loopback_subscription_needs_the_operators_leave(tmp_path: Path) -> None:
    values = {"webhook": ["http://127.0.0.1:9/"], "webhook_secret": "s"}
    with pytest.raises(ValueError, match="TOOLCHEST_WES_ALLOW_PRIVATE_WEBHOOKS"):
        build_webhooks(_settings(tmp_path, **values))
    (tmp_path / "data").mkdir()
    hooks = build_webhooks(_settings(tmp_path, allow_private_webhooks=True, **values))
    assert hooks is not None
    hooks.outbox.close()
