"""Slug and host rules: what may name a tenant, checked before anything is written."""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Words a tenant may not take: they name platform routes or would confuse a reader of a URL.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "dashboard",
        "docs",
        "healthz",
        "internal",
        "platform",
        "root",
        "static",
        "status",
        "system",
        "t",
        "www",
        "402claw",
    }
)
_HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidName(ValueError):
    """A slug or host that breaks the rules; the message says which rule."""


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise InvalidName(
            f"invalid slug {slug!r}: use 1-63 lowercase letters, digits or dashes, "
            "not starting or ending with a dash"
        )
    if slug in RESERVED_SLUGS:
        raise InvalidName(f"slug {slug!r} is reserved")
    return slug


def is_valid_slug(slug: str) -> bool:
    return bool(SLUG_RE.fullmatch(slug)) and slug not in RESERVED_SLUGS


def normalize_host(host: str) -> str:
    """Lowercase, drop a trailing dot; a port or anything but a DNS name is an error."""
    value = host.strip().lower().rstrip(".")
    if ":" in value:
        raise InvalidName(f"invalid host {host!r}: give the name without a port")
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_HOST_LABEL_RE.fullmatch(p) for p in labels):
        raise InvalidName(f"invalid host {host!r}: expected a DNS name like api.example.com")
    return value


def request_host(header: str | None) -> str | None:
    """The host part of a Host header, lowercased, port removed (`[::1]:80` kept as is).

    Every request asks this of one of a few distinct headers: the answers are remembered
    (a bounded table: callers choose the headers)."""
    if not header:
        return None
    found = _REQUEST_HOSTS.get(header)
    if found is None:
        if len(_REQUEST_HOSTS) >= 1024:
            _REQUEST_HOSTS.clear()
        found = _REQUEST_HOSTS[header] = _parse_request_host(header)
    return found


_REQUEST_HOSTS: dict[str, str] = {}


def _parse_request_host(header: str) -> str:
    value = header.strip().lower()
    if value.startswith("["):
        return value
    return value.rsplit(":", 1)[0].rstrip(".") if ":" in value else value.rstrip(".")


def default_worker_name(slug: str) -> str:
    return f"tenant-{slug}-worker"
