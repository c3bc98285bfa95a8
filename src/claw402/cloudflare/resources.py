"""What `cloudflare up` and `cloudflare status` read and create besides script uploads, through
the official SDK: the dispatch namespace, scripts' live etags, the dispatcher's workers.dev
subdomain, zone routes and Cloudflare for SaaS custom hostnames.

Reads answer None (or False) for "not there" (a 404), so a caller can decide what to create;
every other failure is a `CloudflareApiError` that says what to do (`api.explain`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from claw402.cloudflare.api import Target, explained

T = TypeVar("T")

# Domain-validated certificates over HTTP: Cloudflare validates once the customer's CNAME points
# at the zone (the docs' recommended method when the CNAME is, or soon will be, in place).
HOSTNAME_SSL = {"method": "http", "type": "dv"}


@contextmanager
def _calls(target: Target) -> Iterator[None]:
    with explained(target):
        yield


def _or_none(target: Target, read: Callable[[], T]) -> T | None:
    """`read()`, or None when the API answers 404 (the thing does not exist)."""
    import cloudflare

    with _calls(target):
        try:
            return read()
        except cloudflare.NotFoundError:
            return None


def namespace_exists(target: Target) -> bool:
    """GET /accounts/{a}/workers/dispatch/namespaces/{ns}."""
    client = target.client()
    found = _or_none(
        target,
        lambda: client.workers_for_platforms.dispatch.namespaces.get(
            target.dispatch_namespace, account_id=target.account_id
        ),
    )
    return found is not None


def create_namespace(target: Target) -> None:
    """POST /accounts/{a}/workers/dispatch/namespaces."""
    with _calls(target):
        target.client().workers_for_platforms.dispatch.namespaces.create(
            account_id=target.account_id, name=target.dispatch_namespace
        )


def tenant_script_etag(target: Target, script_name: str) -> str | None:
    """GET .../dispatch/namespaces/{ns}/scripts/{name}: the live copy's etag (None: absent)."""
    client = target.client()
    found = _or_none(
        target,
        lambda: client.workers_for_platforms.dispatch.namespaces.scripts.get(
            script_name, account_id=target.account_id, dispatch_namespace=target.dispatch_namespace
        ),
    )
    if found is None:
        return None
    return (found.script.etag if found.script else None) or ""


def account_scripts(target: Target) -> dict[str, dict[str, Any]]:
    """GET /accounts/{a}/workers/scripts: each script's etag and migration tag, by name."""
    with _calls(target):
        scripts = target.client().workers.scripts.list(account_id=target.account_id)
        return {
            s.id: {"etag": s.etag or "", "migrationTag": s.migration_tag} for s in scripts if s.id
        }


def workers_dev_enabled(target: Target, script_name: str) -> bool:
    """GET /accounts/{a}/workers/scripts/{name}/subdomain."""
    client = target.client()
    found = _or_none(
        target,
        lambda: client.workers.scripts.subdomain.get(script_name, account_id=target.account_id),
    )
    return bool(found and found.enabled)


def enable_workers_dev(target: Target, script_name: str) -> None:
    """POST /accounts/{a}/workers/scripts/{name}/subdomain {enabled: true}."""
    with _calls(target):
        target.client().workers.scripts.subdomain.create(
            script_name, account_id=target.account_id, enabled=True, previews_enabled=False
        )


def account_subdomain(target: Target) -> str | None:
    """GET /accounts/{a}/workers/subdomain: the account's `<name>.workers.dev`, if it has one."""
    client = target.client()
    found = _or_none(target, lambda: client.workers.subdomains.get(account_id=target.account_id))
    return found.subdomain if found else None


def zone_routes(target: Target, zone_id: str) -> list[dict[str, Any]]:
    """GET /zones/{z}/workers/routes."""
    with _calls(target):
        routes = target.client().workers.routes.list(zone_id=zone_id)
        return [{"id": r.id, "pattern": r.pattern, "script": r.script} for r in routes]


def create_route(target: Target, zone_id: str, pattern: str, script_name: str) -> None:
    """POST /zones/{z}/workers/routes {pattern, script}."""
    with _calls(target):
        target.client().workers.routes.create(zone_id=zone_id, pattern=pattern, script=script_name)


def _hostname(h: Any) -> dict[str, Any]:
    verification = h.ownership_verification
    return {
        "id": h.id,
        "hostname": h.hostname,
        "status": h.status,
        "sslStatus": h.ssl.status if h.ssl else None,
        "verification": (
            {"type": verification.type, "name": verification.name, "value": verification.value}
            if verification
            else None
        ),
    }


def custom_hostname(target: Target, zone_id: str, hostname: str) -> dict[str, Any] | None:
    """GET /zones/{z}/custom_hostnames?hostname.exact=...: one page, an exact match at most."""
    with _calls(target):
        page = target.client().custom_hostnames.list(zone_id=zone_id, hostname={"exact": hostname})
        found = [h for h in page.result if h.hostname == hostname]
    return _hostname(found[0]) if found else None


def create_custom_hostname(target: Target, zone_id: str, hostname: str) -> dict[str, Any]:
    """POST /zones/{z}/custom_hostnames {hostname, ssl: http dv}."""
    with _calls(target):
        created = target.client().custom_hostnames.create(
            zone_id=zone_id, hostname=hostname, ssl=HOSTNAME_SSL
        )  # type: ignore[arg-type]
    if created is None:
        return {"hostname": hostname, "status": None, "sslStatus": None, "verification": None}
    return _hostname(created)


def bucket_exists(target: Target, bucket: str) -> bool:
    """GET /accounts/{a}/r2/buckets/{b}."""
    client = target.client()
    found = _or_none(target, lambda: client.r2.buckets.get(bucket, account_id=target.account_id))
    return found is not None


def create_bucket(target: Target, bucket: str) -> None:
    """POST /accounts/{a}/r2/buckets {name}."""
    with _calls(target):
        target.client().r2.buckets.create(account_id=target.account_id, name=bucket)


def upload_objects(target: Target, bucket: str, objects: dict[str, bytes]) -> None:
    """PUT /accounts/{a}/r2/buckets/{b}/objects/{key}, one per object (each <= 300 MB)."""
    with _calls(target):
        client = target.client()
        for key, content in objects.items():
            client.r2.buckets.objects.upload(
                key, content, account_id=target.account_id, bucket_name=bucket
            )
