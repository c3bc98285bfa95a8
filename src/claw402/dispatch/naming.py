"""Slug and host rules: what may name a tenant, checked before anything is written."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import idna

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Words a tenant may not take: they name platform routes or would confuse a reader of a URL.
# A caller's x-request-id the dispatchers keep as its correlation id (anything else is dropped).
CORRELATION_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
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
# Anything that makes a Host value more than a name: a port, a path, a user, whitespace.
_NOT_A_NAME_RE = re.compile(r"[\s:/\\?#@\[\]%]")
_NUMERIC_LABEL_RE = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")  # a last label like this is an IP


class InvalidName(ValueError):
    """A slug or host that breaks the rules; the message says which rule."""


class InvalidHost(InvalidName):
    """A custom host refused; `host` is the value as given."""

    def __init__(self, message: str, host: object) -> None:
        super().__init__(message)
        self.host = host


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


def normalize_host(host: str, reserved: Iterable[str] = ()) -> str:
    """A custom host as the registry stores it: IDNA (punycode), lower case, no trailing dot.

    A custom host outranks `/t/<slug>` routing, so a name the gateway itself answers to would
    let one tenant take every other's traffic: IP literals (in any spelling `inet_aton`
    accepts, like `2130706433` or `0x7f.1`), `localhost` and `*.localhost`, and `reserved`
    names (with their subdomains) raise `InvalidHost`, as does anything but a DNS name.
    """
    if not isinstance(host, str) or not host:
        raise InvalidHost(f"invalid host {host!r}: expected a DNS name like api.example.com", host)
    if _is_ip_literal(host):
        raise InvalidHost(
            f"host {host!r} is an IP address: a custom host must be a DNS name you control", host
        )
    if _NOT_A_NAME_RE.search(host):
        raise InvalidHost(
            f"invalid host {host!r}: give the bare name (no scheme, port, path, user or spaces)",
            host,
        )
    value = host[:-1] if host.endswith(".") else host
    try:
        value = idna.encode(value, uts46=True).decode("ascii")
        idna.decode(value)  # punycode labels must decode
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidHost(f"invalid host {host!r}: not a valid (IDNA) DNS name", host) from None
    if value == "localhost" or value.endswith(".localhost"):
        raise InvalidHost(f"host {host!r} is a loopback name: it names the gateway itself", host)
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_HOST_LABEL_RE.fullmatch(p) for p in labels):
        raise InvalidHost(f"invalid host {host!r}: expected a DNS name like api.example.com", host)
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        raise InvalidHost(
            f"host {host!r} is an IP address: a custom host must be a DNS name you control", host
        )
    for name in reserved:
        if value == name or value.endswith("." + name):
            raise InvalidHost(
                f"host {host!r} is reserved by the platform ({name}): choose a name you own", host
            )
    return value


def _is_ip_literal(text: str) -> bool:
    """An IPv4/IPv6 address, bracketed or not, with or without a port, in any spelling."""
    value = text.strip().lower().rstrip(".")
    if value.startswith("["):
        return True  # only IPv6 literals are bracketed
    candidates = [value]
    if value.count(":") == 1:
        candidates.append(value.split(":")[0])
    for candidate in candidates:
        try:
            ipaddress.ip_address(candidate.split("%")[0])
            return True
        except ValueError:
            pass
        try:
            socket.inet_aton(candidate)  # decimal, octal, hex and short forms: 127.1, 0x7f.1
            return True
        except OSError:
            pass
    return False


def platform_hosts(public_url: str | None, reserved: Iterable[str] = ()) -> frozenset[str]:
    """Names no tenant may take: `reserved` (CLAW402_RESERVED_HOSTS) and the public URL's host."""
    names = set()
    for raw in [*reserved, *([urlsplit(public_url).hostname or ""] if public_url else [])]:
        name = raw.strip().lower().rstrip(".")
        if name:
            # an IP or an odd name is kept as given (IP literals are refused anyway)
            with contextlib.suppress(idna.IDNAError, UnicodeError, ValueError):
                name = idna.encode(name, uts46=True).decode("ascii")
            names.add(name)
    return frozenset(names)


def check_public_url(url: str) -> str:
    """The gateway's public base URL (`http[s]://host[:port][/prefix]`), without a trailing
    slash; a query, fragment, user or another scheme is an error."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidName(f"invalid public URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidName(f"invalid public URL {url!r}: expected http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidName(f"invalid public URL {url!r}: no query, fragment or user allowed")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def is_loopback_host(name: str) -> bool:
    """`localhost`, `*.localhost`, 127.0.0.0/8 or ::1 (a Host header's name, port removed)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


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
