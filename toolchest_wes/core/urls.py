"""Which hosts the engine may fetch from: http(s) URLs on public addresses, unless allowed.

A ``workflow_url`` (and an http(s) File or Directory in ``workflow_params``) is fetched by the
engine on the server's network, so without a check anyone who may submit could make the
server read from loopback services, cloud metadata endpoints (169.254.169.254) or the
private network. The host is resolved at submit time and every address it resolves to must
be public. The engine fetches later and resolves the name again, so a name whose DNS answer
changes in between (DNS rebinding) is only stopped by egress rules on the network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from toolchest_wes.core.errors import BadRequestError

__all__ = ["Resolver", "UrlPolicy", "remote_locations", "system_resolver"]

#: Turns a host name into the IP addresses it resolves to (as text).
Resolver = Callable[[str], list[str]]
_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_REMOTE = ("http", "https")


def system_resolver(host: str) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host``; ``OSError`` if it has none."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _kind(ip: _IpAddress) -> str | None:
    """Why ``ip`` is not a public address, or ``None`` if it is."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


def _parse_ip(text: str) -> _IpAddress:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    # ::ffff:127.0.0.1 reaches 127.0.0.1; Python before 3.13 does not call it loopback.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True)
class UrlPolicy:
    """The hosts an http(s) URL of a submission may name.

    Attributes:
        allow_private: Accept every host, public or not.
        allowed_hosts: Host names accepted whatever they resolve to (lower case).
        allowed_networks: Addresses accepted even though they are not public.
        resolver: Name resolution; tests inject one so that no real DNS query is sent.
    """

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[_IpNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)
    #: The settings that allow a host, named in refusals.
    settings: tuple[str, str] = (
        "TOOLCHEST_WES_WORKFLOW_URL_ALLOWED_HOSTS",
        "TOOLCHEST_WES_ALLOW_PRIVATE_WORKFLOW_URLS",
    )

    @classmethod
    def from_setting(
        cls,
        allow_private: bool,
        allowed: str,
        resolver: Resolver = system_resolver,
        settings: tuple[str, str] | None = None,
    ) -> UrlPolicy:
        """A policy from the settings; ``allowed`` is a comma-separated list of hosts and CIDRs.

        Raises:
            ValueError: An entry that looks like an address or network but is not valid.
        """
        hosts: set[str] = set()
        networks: list[_IpNetwork] = []
        for entry in (e.strip().lower() for e in allowed.split(",")):
            if not entry:
                continue
            if "/" in entry or entry.replace(".", "").isdigit() or ":" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError as exc:
                    raise ValueError(f"workflow_url_allowed_hosts: {exc}") from None
            else:
                hosts.add(entry.rstrip("."))
        policy = cls(allow_private, frozenset(hosts), tuple(networks), resolver)
        return policy if settings is None else replace(policy, settings=settings)

    def check(self, url: str, *, what: str = "workflow_url") -> None:
        """Refuse ``url`` unless its host is public or allowed.

        Raises:
            BadRequestError: No host, a host that does not resolve, or one that resolves to
                a loopback, link-local, private, unspecified, multicast or other non-public
                address; the message names the address and the setting that allows it.
        """
        host = (urlsplit(url).hostname or "").rstrip(".")
        if not host:
            raise BadRequestError(f"{what} {url!r} has no host; give a full http(s) URL")
        if self.allow_private or host in self.allowed_hosts:
            return
        for address in self._addresses(host, url, what):
            kind = _kind(address)
            if kind is None or any(address in net for net in self.allowed_networks):
                continue
            named = "" if str(address) == host.strip("[]") else f" resolves to {address}, which"
            raise BadRequestError(
                f"{what} {url!r}: {host}{named} is a {kind} address, which this server does "
                "not fetch from; use a URL on a public host or attach the file instead. The "
                f"operator can allow it with {self.settings[0]} "
                f"(such as {host.strip('[]')}) or {self.settings[1]}=true"
            )

    def _addresses(self, host: str, url: str, what: str) -> list[_IpAddress]:
        try:
            return [_parse_ip(host.strip("[]"))]
        except ValueError:
            pass
        try:
            found = self.resolver(host)
        except (OSError, UnicodeError):
            found = []
        addresses = []
        for text in found:
            try:
                addresses.append(_parse_ip(text))
            except ValueError:
                continue
        if not addresses:
            raise BadRequestError(
                f"{what} {url!r}: the host {host!r} could not be resolved; check the name"
            )
        return addresses

    def check_params(self, params: dict[str, Any]) -> None:
        """:meth:`check` every http(s) File and Directory location in ``workflow_params``."""
        checked: set[str] = set()
        for where, url in remote_locations(params, "workflow_params"):
            host = urlsplit(url).hostname or ""
            if host and host in checked:
                continue
            self.check(url, what=where)
            checked.add(host)


def remote_locations(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """``(where, url)`` of every http(s) ``location`` or ``path`` of a File or Directory."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from remote_locations(item, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if value.get("class") in ("File", "Directory"):
        for key in ("location", "path"):
            ref = value.get(key)
            if isinstance(ref, str) and urlsplit(ref).scheme.lower() in _REMOTE:
                yield f"{where}.{key}", ref
    for key, item in value.items():
        yield from remote_locations(item, f"{where}.{key}")
