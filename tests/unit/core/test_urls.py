"""UrlPolicy: which hosts an http(s) URL of a submission may name. Names are resolved by an
injected resolver, so no DNS query leaves the machine."""

from __future__ import annotations

import ipaddress

import pytest

from toolchest_wes.core.errors import BadRequestError
from toolchest_wes.core.urls import UrlPolicy, remote_locations, system_resolver

PUBLIC = "93.184.216.34"


def resolver(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


NAMES = resolver(
    {
        "public.test": [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"],
        "internal.test": ["10.0.0.5"],
        "metadata.test": ["169.254.169.254"],
        "mixed.test": [PUBLIC, "127.0.0.1"],
        "mapped.test": ["::ffff:10.0.0.1"],
        "scoped.test": ["fe80::1%eth0"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "https://public.test/wf.cwl",
        f"http://{PUBLIC}:8080/wf.cwl",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/wf.cwl",
        "https://PUBLIC.test./wf.cwl#main",
    ],
)
def test_public_hosts_pass(url):
    UrlPolicy(resolver=NAMES).check(url)


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("https://internal.test/wf.cwl", ["internal.test resolves to 10.0.0.5", "private"]),
        ("https://metadata.test/", ["169.254.169.254", "link-local"]),
        ("https://mixed.test/wf.cwl", ["127.0.0.1", "loopback"]),
        ("https://mapped.test/wf.cwl", ["10.0.0.1", "private"]),
        ("https://scoped.test/wf.cwl", ["fe80::1", "link-local"]),
        ("http://100.64.0.1/wf.cwl", ["non-public"]),
        ("http://192.0.2.1/wf.cwl", ["192.0.2.1 is a"]),
        ("https://nowhere.test/wf.cwl", ["'nowhere.test' could not be resolved"]),
        ("https:///wf.cwl", ["has no host"]),
    ],
)
def test_non_public_hosts_are_refused_with_the_address(url, fragments):
    with pytest.raises(BadRequestError) as info:
        UrlPolicy(resolver=NAMES).check(url)
    for fragment in fragments:
        assert fragment in info.value.msg


def test_the_message_names_the_field_and_the_settings():
    with pytest.raises(BadRequestError) as info:
        UrlPolicy(resolver=NAMES).check("http://internal.test/x", what="workflow_params.a")
    msg = info.value.msg
    assert msg.startswith("workflow_params.a 'http://internal.test/x'")
    assert "TOOLCHEST_WES_WORKFLOW_URL_ALLOWED_HOSTS (such as internal.test)" in msg
    assert "TOOLCHEST_WES_ALLOW_PRIVATE_WORKFLOW_URLS=true" in msg


def test_allowed_hosts_and_networks_pass():
    policy = UrlPolicy.from_setting(False, " Internal.test , 169.254.0.0/16,[::1]", NAMES)

    assert policy.allowed_hosts == frozenset({"internal.test"})
    policy.check("https://internal.test/wf.cwl")
    policy.check("https://metadata.test/")
    policy.check("http://[::1]:9/wf.cwl")
    with pytest.raises(BadRequestError):
        policy.check("https://mixed.test/wf.cwl")


def test_allow_private_passes_everything_with_a_host():
    policy = UrlPolicy.from_setting(True, "", NAMES)
    policy.check("http://127.0.0.1/x")
    policy.check("https://nowhere.test/x")


def test_a_bad_network_is_refused_at_start():
    with pytest.raises(ValueError, match="workflow_url_allowed_hosts"):
        UrlPolicy.from_setting(False, "10.0.0.0/99", NAMES)


def test_params_locations_are_checked_once_per_host():
    seen: list[str] = []

    def counting(host: str) -> list[str]:
        seen.append(host)
        return NAMES(host)

    params = {
        "a": {"class": "File", "location": "https://public.test/a"},
        "b": [{"class": "File", "path": "https://public.test/b"}],
        "c": {"class": "Directory", "location": "relative/dir"},
    }
    UrlPolicy(resolver=counting).check_params(params)
    assert seen == ["public.test"]

    params["d"] = {"class": "File", "location": "http://internal.test/d", "secondaryFiles": []}
    with pytest.raises(BadRequestError, match=r"workflow_params\.d\.location"):
        UrlPolicy(resolver=NAMES).check_params(params)


def test_remote_locations_walks_nested_values():
    params = {
        "x": [
            {
                "class": "File",
                "location": "http://h/1",
                "secondaryFiles": [{"class": "File", "location": "https://h/2"}],
            }
        ],
        "y": "http://not-a-file",
    }
    assert list(remote_locations(params, "p")) == [
        ("p.x[0].location", "http://h/1"),
        ("p.x[0].secondaryFiles[0].location", "https://h/2"),
    ]


def test_system_resolver_resolves_localhost_without_the_network():
    addresses = {ipaddress.ip_address(a) for a in system_resolver("localhost")}
    assert addresses and all(a.is_loopback for a in addresses)
