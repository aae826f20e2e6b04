"""Behind a reverse proxy: the client's address and scheme from the proxy's headers, believed only
from the proxies the server is told to trust (``Server(trusted_proxies=[...])``).

Each proxy appends the address it received the request from, so the chain is read from the right:
the connection's peer must be trusted, then every entry that is itself a trusted proxy is skipped,
and the first one that is not is the client (all of them trusted: the leftmost). Whatever a client
puts in the header itself stays on the left of what the trusted proxies appended, so it is never
reached. Which header the proxies write is configured, not guessed (``headers``):

- ``"x-forwarded"`` (default; nginx, HAProxy, the cloud load balancers): ``X-Forwarded-For``
  and ``X-Forwarded-Proto`` (one value, or one per hop);
- ``"forwarded"``: RFC 7239 ``Forwarded: for=...;proto=...`` elements.

Reading both would let a client forge the one its proxy does not write (it passes through
untouched), so only the configured one is read.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["PROXY_HEADERS", "TrustedProxies"]

PROXY_HEADERS = ("x-forwarded", "forwarded")
_SECURE_SCHEMES = {"https": True, "wss": True, "http": False, "ws": False}
_CACHE_LIMIT = 4096  # addresses whose trust is remembered (mostly the proxies themselves)

# one "name=value" pair of a Forwarded element, the value a token or a quoted string, and the
# separator after it (";" next pair, "," next element)
_FORWARDED_PAIR = re.compile(
    r"""\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*([;,]|$)"""
)


def _node_address(node: str) -> str:
    """The address of a node as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]``,
    ``"[::1]:5678"``, ``::1``; anything else (``unknown``, ``_hidden``) as it is."""
    node = node.strip().strip('"')
    if node.startswith("["):
        end = node.find("]")
        return node[1:end] if end > 0 else node
    if node.count(":") == 1:  # IPv4 with a port
        return node.partition(":")[0]
    return node


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header (lower-case names, unquoted values); None when
    it is malformed."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = 0
    length = len(value)
    while position < length:
        match = _FORWARDED_PAIR.match(value, position)
        if match is None or match.end() == position:
            return None
        name, raw, separator = match.groups()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        element[name.lower()] = raw
        position = match.end()
        if separator != ";":
            elements.append(element)
            element = {}
    if element:
        elements.append(element)
    return elements


class TrustedProxies:
    """``trusted``: addresses and networks (``"10.0.0.0/8"``, ``"::1"``), or ``"*"`` for every
    peer (only where nothing but the proxy can reach the server). ``headers``: which headers the
    proxies write, ``"x-forwarded"`` or ``"forwarded"``. Raises ValueError for anything else."""

    def __init__(self, trusted: Iterable[str] | str, headers: str = "x-forwarded") -> None:
        if headers not in PROXY_HEADERS:
            raise ValueError(f"proxy_headers must be one of {PROXY_HEADERS}, not {headers!r}")
        if isinstance(trusted, str):
            trusted = [part for part in trusted.split(",") if part.strip()]
        self.headers = headers
        self.trust_all = False
        networks = []
        for entry in trusted:
            entry = str(entry).strip()
            if entry == "*":
                self.trust_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (CIDR)"
                ) from None
        self.networks = tuple(networks)
        self._known: dict[str, bool] = {}

    def __repr__(self) -> str:
        listed = ["*"] if self.trust_all else [str(net) for net in self.networks]
        return f"TrustedProxies({listed}, headers={self.headers!r})"

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP address as text) is one of the trusted proxies."""
        known = self._known.get(address)
        if known is not None:
            return known
        if self.trust_all:
            trusted = True
        else:
            try:
                ip: Any = ipaddress.ip_address(address)
            except ValueError:
                trusted = False  # "unknown", an obfuscated identifier: never a proxy of ours
            else:
                if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack listener
                    ip = ip.ipv4_mapped
                trusted = any(ip in network for network in self.networks)
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        self._known[address] = trusted
        return trusted

    def resolve(self, peer: str, headers: dict[str, str], secure: bool) -> tuple[str, bool]:
        """The client's address and whether it came over TLS, for a request from ``peer`` with
        ``headers`` (lower-case names) over a connection that is TLS or not (``secure``)."""
        if not self.trusts(peer):
            return peer, secure
        if self.headers == "forwarded":
            value = headers.get("forwarded")
            elements = _parse_forwarded(value) if value else None
            if not elements:
                return peer, secure
            addresses = [_node_address(element.get("for", "")) for element in elements]
            index = self._client_index(addresses)
            if not addresses[index]:
                return peer, secure  # an element without "for": nothing to believe
            # its own proto, else the nearest one to its right (those on its left are not
            # believed)
            for element in elements[index:]:
                proto = element.get("proto")
                if proto is not None:
                    return addresses[index], _SECURE_SCHEMES.get(proto.lower(), secure)
            return addresses[index], secure
        value = headers.get("x-forwarded-for")
        if not value:
            return peer, secure
        addresses = [_node_address(part) for part in value.split(",")]
        index = self._client_index(addresses)
        if not addresses[index]:
            return peer, secure  # an empty entry: nothing to believe
        protos = headers.get("x-forwarded-proto")
        if protos:
            values = protos.split(",")
            # the proto of the same hop, counted from the right (a proxy that overwrites the
            # header leaves one value: that one)
            hop = len(addresses) - 1 - index
            proto = values[max(len(values) - 1 - hop, 0)].strip().lower()
            secure = _SECURE_SCHEMES.get(proto, secure)
        return addresses[index], secure

    def _client_index(self, addresses: list[str]) -> int:
        """Walking from the right, the first address that is not a trusted proxy (else 0)."""
        index = len(addresses) - 1
        while index > 0 and self.trusts(addresses[index]):
            index -= 1
        return index

    def apply(self, request: Any) -> None:
        """Make ``request.client`` the client's address (port 0: the proxy's connection's is
        not the client's) and ``request.secure`` its scheme, when the peer is trusted."""
        peer = request.client[0]
        address, secure = self.resolve(peer, request.headers, request.secure)
        if address != peer:
            request.client = (address, 0)
        request.secure = secure
