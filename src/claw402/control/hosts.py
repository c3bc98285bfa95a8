"""Who may point a custom host at a tenant: proof by DNS, or an admin's approval.

A custom host outranks `/t/<slug>` routing, so on a platform with several creators a host
must be shown to be the creator's before it routes: `verify` looks for the host's token in a
TXT record at `_402claw.<host>` (dnspython; `CLAW402_DNS_NAMESERVER=IP[:PORT]` points it at
one server, else the system resolver answers), and `approve` lets an admin vouch for it.
Both, and every refused host, are audited.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.resolver
from sqlalchemy import Engine

from claw402.control import audit
from claw402.control.authz import Actor, authorize, may_read, require_owner
from claw402.control.errors import ControlError
from claw402.control.keys import ADMIN, DEPLOY, READ
from claw402.limits.notify import announce
from claw402.registry.models import HOST_APPROVED, HOST_VERIFIED, HostClaim
from claw402.registry.store import Registry

NAMESERVER_ENV = "CLAW402_DNS_NAMESERVER"
DNS_TIMEOUT = 5.0  # seconds for the whole lookup


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """What a host-claim step did: the claim after it, and whether it changed."""

    claim: HostClaim
    changed: bool  # False: it was routable already
    found: tuple[str, ...] = ()  # the TXT strings seen (verify)


def resolver_from_env(environ: dict[str, str] | None = None) -> dns.resolver.Resolver:
    """The system resolver, or the one server `CLAW402_DNS_NAMESERVER` names (`IP[:PORT]`)."""
    value = (environ if environ is not None else os.environ).get(NAMESERVER_ENV, "").strip()
    if not value:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise ControlError(
                f"no system DNS resolver configured: set {NAMESERVER_ENV}=IP[:PORT]"
            ) from None
    else:
        address, port = value, 53
        if value.count(":") == 1 or value.startswith("["):  # v4:port or [v6]:port
            address, _, raw_port = value.rpartition(":")
            if not raw_port.isdigit():
                raise ControlError(f"{NAMESERVER_ENV}={value!r}: expected IP[:PORT]")
            port = int(raw_port)
        resolver = dns.resolver.Resolver(configure=False)
        try:
            resolver.nameservers = [address.strip("[]")]
        except ValueError:
            raise ControlError(f"{NAMESERVER_ENV}={value!r}: expected IP[:PORT]") from None
        resolver.port = port
    resolver.lifetime = DNS_TIMEOUT
    return resolver


def txt_strings(resolver: dns.resolver.Resolver, name: str) -> tuple[str, ...]:
    """Every TXT string at `name` (a record split in 255-byte pieces is joined)."""
    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return ()
    except dns.exception.Timeout:
        raise ControlError(f"DNS lookup of {name} timed out: try again later") from None
    return tuple(b"".join(r.strings).decode("utf-8", "replace") for r in answer)


def _claim(registry: Registry, host: str) -> HostClaim:
    from claw402.dispatch.naming import InvalidName, normalize_host

    try:
        name = normalize_host(host)
    except InvalidName as exc:
        raise ControlError(str(exc), code="invalid_host") from None
    found = registry.host_claims(host=name)
    if not found:
        raise ControlError(
            f"no tenant claims host {name!r}: deploy with --host first", code="host_not_found"
        )
    return found[0]


def _mark(registry: Registry, claim: HostClaim, actor: Actor, status: str, action: str,
          details: dict[str, object]) -> ClaimOutcome:  # fmt: skip
    with registry.engine.begin() as conn:
        if not registry.mark_host(conn, claim, status):
            raise ControlError(f"host {claim.host!r} changed meanwhile: try again")
        audit.append(conn, actor.label, action, tenant_id=claim.tenant_id,
                     subject=f"host:{claim.host}",
                     details={"tenant": claim.slug, **details})  # fmt: skip
    announce(f"host:{claim.host}")
    return ClaimOutcome(registry.host_claims(host=claim.host)[0], True, ())


def listing(registry: Registry, secret: str | None, slug: str | None = None) -> list[HostClaim]:
    """Custom hosts the key may see (tokens included): a creator's tenants', or all for an
    admin; with `slug` that tenant's, if the key may read it."""
    actor = authorize(registry.engine, secret, READ)
    if slug is not None:
        tenant = registry.get(slug)
        if tenant is None:
            raise ControlError(f"tenant {slug!r} not found", code="tenant_not_found")
        require_owner(actor, tenant.owner, slug)
    return [c for c in registry.host_claims(slug=slug) if may_read(actor, c.owner)]


def verify(
    registry: Registry,
    secret: str | None,
    host: str,
    resolver: dns.resolver.Resolver | None = None,
) -> ClaimOutcome:
    """Route `host` once `_402claw.<host>` holds its token; the tenant's owner or an admin asks.
    A failed check changes nothing but is audited, and raises saying what was found."""
    actor = authorize(registry.engine, secret, DEPLOY)
    claim = _claim(registry, host)
    require_owner(actor, claim.owner, claim.slug)
    if claim.status in (HOST_VERIFIED, HOST_APPROVED):
        return ClaimOutcome(claim, False)
    name = f"_402claw.{claim.host}"
    found = txt_strings(resolver or resolver_from_env(), name)
    if claim.token not in (s.strip() for s in found):
        audit.record(registry.engine, actor.label, "host.verification_failed",
                     tenant_id=claim.tenant_id, subject=f"host:{claim.host}",
                     details={"tenant": claim.slug, "found": list(found)})  # fmt: skip
        seen = ", ".join(repr(s) for s in found) if found else "no TXT record"
        raise ControlError(
            f"host {claim.host!r} is not verified: publish TXT {name} = {claim.token!r} "
            f"(found {seen}), then run `402claw hosts verify {claim.host}` again",
            code="host_not_verified",
        )
    outcome = _mark(registry, claim, actor, HOST_VERIFIED, "host.verified",
                    {"method": "dns-txt", "record": name})  # fmt: skip
    return ClaimOutcome(outcome.claim, True, found)


def approve(registry: Registry, secret: str | None, host: str) -> ClaimOutcome:
    """Route `host` on an admin's word (the admin checked it some other way)."""
    actor = authorize(registry.engine, secret, ADMIN)
    claim = _claim(registry, host)
    if claim.status in (HOST_VERIFIED, HOST_APPROVED):
        return ClaimOutcome(claim, False)
    return _mark(registry, claim, actor, HOST_APPROVED, "host.approved", {"was": claim.status})


def refused(engine: Engine, actor: Actor, slug: str, hosts: Iterable[object], reason: str) -> None:
    """Audit a deploy refused for its hosts (nothing else was written)."""
    audit.record(engine, actor.label, "host.refused", subject=f"tenant:{slug}",
                 details={"hosts": [str(h) for h in hosts], "reason": reason})  # fmt: skip
