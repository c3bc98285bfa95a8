"""`402claw cloudflare up` and `cloudflare status`: from the registry to a reachable deployment.

What the registry wants (`wanted`): the dispatch namespace, the R2 bucket when a dataset is
too large to embed (`storage`: its chunks go up with its Worker), one user Worker per tenant, the
dispatcher with the current directory, the dispatcher on workers.dev (`/t/<slug>/...` works at
once), and with a zone a `*/*` route to the dispatcher plus one Cloudflare for SaaS custom
hostname per tenant host. What is live (`observe`) is read through the SDK; each item compares
the two, and `apply` makes only the calls that close the gap, so running `up` twice changes
nothing the second time.

A script is `current` when the live copy's etag is the etag Cloudflare answered to a 402claw
upload (the history) of the same content digest; `stale` when it is a 402claw upload of other
content; `changed outside 402claw` when no upload in the history has its etag.

Tenant hosts are custom hostnames on the SaaS zone, not Workers custom domains: a custom domain
must be a hostname in a zone of this account and binds one Worker, while a tenant's host is its
own domain (`data.acme.com`) that must reach the dispatcher; Cloudflare's hostname-routing
guide for Workers for Platforms recommends custom hostnames plus a wildcard route for this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claw402.cloudflare import api, resources
from claw402.cloudflare.deploy import execute
from claw402.cloudflare.directory import export_directory
from claw402.cloudflare.dispatcher import DEFAULT_SCRIPT_NAME, DispatcherOptions
from claw402.cloudflare.history import History
from claw402.cloudflare.plans import DeployPlan, plan_dispatcher, plan_tenant
from claw402.cloudflare.sizes import ScriptTooLarge
from claw402.cloudflare.tenant import EdgeUnsupported
from claw402.payments.config import payment_config_from_env
from claw402.registry.store import Registry

ROUTE_PATTERN = "*/*"  # every hostname of the zone, the custom hostnames included


class UpRefused(ValueError):
    """`up` would leave the deployment broken (a tenant that cannot be built, a route owned by
    another Worker); nothing was changed."""


@dataclass(frozen=True)
class UpOptions:
    script_name: str = DEFAULT_SCRIPT_NAME
    zone_id: str | None = None
    route: str = ROUTE_PATTERN
    workers_dev: bool = True
    events_url: str | None = None
    secrets: tuple[str, ...] = ()
    workers_plan: str = "paid"
    directory_format: str = "maps"
    r2_bucket: str | None = None  # where rows too large to embed go


@dataclass
class Wanted:
    dispatcher: DeployPlan
    tenants: dict[str, DeployPlan]  # slug -> the tenant Worker's plan
    refused: dict[str, str]  # slug -> why its Worker cannot be built
    hosts: dict[str, str]  # host -> slug


@dataclass
class Item:
    """One thing the deployment needs: what is live, and the call that fixes it (if any)."""

    kind: str  # namespace, bucket, tenant, dispatcher, workers.dev, route, hostname
    name: str
    live: str
    action: str | None = None  # create, upload, enable; "refuse": up cannot proceed
    call: dict[str, str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    plan: DeployPlan | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "live": self.live,
            "action": self.action,
            "inSync": self.action is None,
            "call": self.call,
            **self.detail,
        }


def wanted(registry: Registry, target: api.Target, options: UpOptions) -> Wanted:
    dispatcher = DispatcherOptions(
        script_name=options.script_name,
        dispatch_namespace=target.dispatch_namespace,
        events_url=options.events_url,
        payment=payment_config_from_env(),
        secrets=options.secrets,
        directory_format=options.directory_format,  # type: ignore[arg-type]
    )
    result = Wanted(
        plan_dispatcher(registry, target, dispatcher, workers_plan=options.workers_plan), {}, {}, {}
    )
    tenants = registry.list_tenants()
    for tenant in tenants:
        try:
            result.tenants[tenant.slug] = plan_tenant(
                registry,
                tenant.slug,
                target,
                workers_plan=options.workers_plan,
                r2_bucket=options.r2_bucket,
            )
        except (ScriptTooLarge, EdgeUnsupported) as exc:
            result.refused[tenant.slug] = str(exc)
    by_host = export_directory(tenants)["byHost"]
    result.hosts = {host: entry["slug"] for host, entry in by_host.items()}
    return result


def _call(method: str, target: api.Target, path: str, sdk: str) -> dict[str, str]:
    return {"method": method, "url": target.api_base + path, "path": path, "sdk": sdk}


def _put(plan: DeployPlan) -> dict[str, str]:
    return _call("PUT", plan.target, plan.path, plan.sdk_method)


def script_state(history: History, plan: DeployPlan, etag: str | None) -> tuple[str, str | None]:
    """(what is live, the action) for a script whose live etag is `etag` (None: absent)."""
    if etag is None:
        return "missing", "upload"
    t = plan.target
    namespace = t.dispatch_namespace if plan.kind == "tenant" else None
    ours = [
        e
        for e in history.succeeded(plan.kind, plan.bundle.script_name, t.account_id, namespace)
        if etag and (e.get("result") or {}).get("etag") == etag
    ]
    if not ours:
        return "changed outside 402claw", "upload"
    digest = ours[-1].get("digest") or ours[-1]["bundle"]["sha256"]
    return ("current", None) if digest == plan.bundle.content_digest else ("stale", "upload")


def observe(history: History, target: api.Target, want: Wanted, options: UpOptions) -> list[Item]:
    """Read the live state (GETs only) and compare it with `want`, item by item."""
    a, ns = target.account_id, target.dispatch_namespace
    items = []
    has_ns = resources.namespace_exists(target)
    items.append(
        Item(
            "namespace",
            ns,
            "present" if has_ns else "missing",
            None if has_ns else "create",
            _call(
                "POST",
                target,
                f"/accounts/{a}/workers/dispatch/namespaces",
                "client.workers_for_platforms.dispatch.namespaces.create",
            ),
        )
    )
    if options.r2_bucket and any(p.stored for p in want.tenants.values()):
        bucket = options.r2_bucket
        has_bucket = resources.bucket_exists(target, bucket)
        items.append(
            Item(
                "bucket",
                bucket,
                "present" if has_bucket else "missing",
                None if has_bucket else "create",
                _call("POST", target, f"/accounts/{a}/r2/buckets", "client.r2.buckets.create"),
            )
        )
    for slug, plan in sorted(want.tenants.items()):
        name = plan.bundle.script_name
        etag = resources.tenant_script_etag(target, name) if has_ns else None
        live, action = script_state(history, plan, etag)
        items.append(Item("tenant", name, live, action, _put(plan), {"slug": slug}, plan))
    for slug, reason in sorted(want.refused.items()):
        items.append(
            Item(
                "tenant", slug, "cannot be built", "refuse", None, {"slug": slug, "reason": reason}
            )
        )
    plan = want.dispatcher
    script = plan.bundle.script_name
    live_script = resources.account_scripts(target).get(script)
    live, action = script_state(history, plan, live_script["etag"] if live_script else None)
    items.append(Item("dispatcher", script, live, action, _put(plan), {}, plan))
    if options.workers_dev:
        enabled = live_script is not None and resources.workers_dev_enabled(target, script)
        sub = resources.account_subdomain(target)
        url = f"https://{script}.{sub}.workers.dev" if sub else None
        items.append(
            Item(
                "workers.dev",
                script,
                "enabled" if enabled else "disabled",
                None if enabled else "enable",
                _call(
                    "POST",
                    target,
                    f"/accounts/{a}/workers/scripts/{script}/subdomain",
                    "client.workers.scripts.subdomain.create",
                ),
                {"url": url},
            )
        )
    if options.zone_id:
        items += _zone_items(target, options.zone_id, options.route, script, want.hosts)
    else:
        items += [
            Item(
                "hostname",
                host,
                "not attached (no zone)",
                None,
                None,
                {"slug": slug, "note": "pass --zone-id or set CLOUDFLARE_ZONE_ID"},
            )
            for host, slug in sorted(want.hosts.items())
        ]
    return items


def _zone_items(
    target: api.Target, zone: str, pattern: str, script: str, hosts: dict[str, str]
) -> list[Item]:
    routes = [r for r in resources.zone_routes(target, zone) if r["pattern"] == pattern]
    path = f"/zones/{zone}/workers/routes"
    call = _call("POST", target, path, "client.workers.routes.create")
    if any(r["script"] == script for r in routes):
        items = [Item("route", pattern, "present", None, call, {"zone": zone})]
    elif routes:
        items = [
            Item(
                "route",
                pattern,
                f"taken by {routes[0]['script'] or 'no Worker'}",
                "refuse",
                call,
                {
                    "zone": zone,
                    "reason": f"route {pattern} on zone {zone} already "
                    f"serves {routes[0]['script'] or 'no Worker'}: remove it first",
                },
            )
        ]
    else:
        items = [Item("route", pattern, "missing", "create", call, {"zone": zone})]
    call = _call(
        "POST", target, f"/zones/{zone}/custom_hostnames", "client.custom_hostnames.create"
    )
    for host, slug in sorted(hosts.items()):
        found = resources.custom_hostname(target, zone, host)
        live = "missing" if found is None else str(found["status"] or "present")
        items.append(
            Item(
                "hostname",
                host,
                live,
                "create" if found is None else None,
                call,
                {"slug": slug, "zone": zone, "found": found},
            )
        )
    return items


def refusals(items: list[Item]) -> list[str]:
    return [
        f"{i.kind} {i.name}: {i.detail.get('reason', i.live)}"
        for i in items
        if i.action == "refuse"
    ]


def apply(
    items: list[Item],
    history: History,
    target: api.Target,
    options: UpOptions,
    on_change: Callable[[Item, dict[str, Any] | None], None] | None = None,
) -> list[Item]:
    """Make the calls the items ask for, in order (namespace, tenants, dispatcher, workers.dev,
    route, hostnames); `on_change` sees each as it succeeds (an upload with its history entry)."""
    refused = refusals(items)
    if refused:
        raise UpRefused("nothing was changed: " + "; ".join(refused))
    done = []
    for item in items:
        entry = None
        if item.action is None:
            continue
        if item.action == "create" and item.kind == "namespace":
            resources.create_namespace(target)
        elif item.action == "create" and item.kind == "bucket":
            resources.create_bucket(target, item.name)
        elif item.action == "upload":
            assert item.plan is not None
            entry = execute(item.plan, history)
            item.detail["deployId"] = entry["id"]
        elif item.action == "enable":
            resources.enable_workers_dev(target, item.name)
        elif item.action == "create" and item.kind == "route":
            resources.create_route(target, str(options.zone_id), item.name, options.script_name)
        elif item.action == "create" and item.kind == "hostname":
            item.detail["found"] = resources.create_custom_hostname(
                target, str(options.zone_id), item.name
            )
        done.append(item)
        if on_change is not None:
            on_change(item, entry)
    return done
