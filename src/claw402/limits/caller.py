"""Who a call counts against: the paying wallet when a payment header proves it (its
signature recovers to it: `limits/signer.py`), else the client's address. `X-Forwarded-For`
counts only when the peer is a trusted proxy (`CLAW402_TRUSTED_PROXIES`: addresses or CIDR
blocks), and then its rightmost address that is not itself a trusted proxy is the client
(anything left of it a caller could have forged)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(text: str | Iterable[str] | None) -> tuple[Network, ...]:
    """`10.0.0.1, 10.1.0.0/16` -> networks; a malformed entry is an error, not skipped."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    found: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"CLAW402_TRUSTED_PROXIES: {item!r} is not an address or CIDR"
            ) from None
    return tuple(found)


class Callers:
    def __init__(self, trusted: Iterable[Network] = ()) -> None:
        self.trusted = tuple(trusted)
        self._is_trusted = lru_cache(maxsize=4096)(self._check)

    def client(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The client address of a request whose TCP peer is `peer`."""
        peer = peer or "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        forwarded = headers.get("x-forwarded-for")
        if not forwarded:
            return peer
        hops = [h.strip() for h in forwarded.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            if not self._is_trusted(hop):
                return hop if _is_address(hop) else peer
        return hops[0] or peer

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
