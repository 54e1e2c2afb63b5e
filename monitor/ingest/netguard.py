"""Which addresses an article link may make us connect to (the SSRF guard; pure).

Article links come from third parties: a feed can point us at ``http://127.0.0.1:6379/``,
``http://10.0.0.5/admin`` or the cloud metadata service at ``169.254.169.254``. By
default only globally routable addresses are fetched. ``[fetch] allow_private`` admits
intranet sources, by address, network or host name. Feeds named in the config are the
user's own choice and are not checked.

The check needs the addresses a host resolves to; the resolver is passed in by
:mod:`monitor.ingest.fetcher`, which runs it before every request, redirects included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.config import allow_entry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None


def describe(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        address = mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:  # 169.254.169.254, the cloud metadata service, is one
        return "a link-local address (cloud metadata lives there)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:  # shared (100.64/10, Alibaba's metadata), reserved, documentation
        return "a non-public address"
    return None


@dataclass(frozen=True)
class AddressGuard:
    """Decides whether a host and the addresses it resolves to may be fetched."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()  # lower case, no trailing dot; "*.x" matches below x

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> AddressGuard:
        """Raises ValueError for an entry that is neither (the config refuses those)."""
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for entry in entries:
            allowed = allow_entry(entry)
            if isinstance(allowed, str):
                hosts.append(allowed)
            else:
                networks.append(allowed)
        return cls(tuple(networks), tuple(hosts))

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    def refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        """Why ``host`` must not be fetched (None if it may). Every address it resolves
        to must be public or allowed: one private address among public ones is enough
        for a rebinding attack, so it refuses."""
        if self.host_allowed(host):
            return None
        literal = _address(host)
        candidates = [literal] if literal is not None else [_address(a) for a in addresses]
        if not candidates:
            return f"host {host!r} resolved to no address"
        for address in candidates:
            if address is None:
                return f"host {host!r} resolved to an address that cannot be read"
            kind = describe(address)
            if kind is None:
                continue
            if any(address in net for net in self.networks if net.version == address.version):
                continue
            shown = host if literal is not None else f"{host!r} resolves to {address}, which"
            return (f"{shown} is {kind}; article links may not point inside the network "
                    f"(add it to [fetch] allow_private to allow it)")
        return None


__all__ = ["AddressGuard", "describe"]
