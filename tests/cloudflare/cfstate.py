"""One Cloudflare account's state behind the recording server, for the calls `cloudflare up`
and `cloudflare status` make: dispatch namespaces, scripts (in a namespace or not) with
content etags, workers.dev subdomains, zone routes and custom hostnames.

It answers as the API does where the SDK and the deploy depend on it: 404 for what does not
exist, a namespace must exist before a script is uploaded into it, the success envelope, and
Durable Object migrations: a `migrations` whose `old_tag` is not the script's tag is refused,
and so is a binding to a class of the script that no migration created.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cfapi import Recorded, failure, success

from claw402.cloudflare.bundle import Module, WorkerBundle

Answer = tuple[int, dict[str, Any], dict[str, str]]
ROOT = "/client/v4"


def _ok(result: Any, **extra: Any) -> Answer:
    status, body, headers = success()
    return status, {**body, "result": result, **extra}, headers


def _missing(what: str) -> Answer:
    return failure(404, 10007, f"{what} not found")


@dataclass
class Script:
    bundle: WorkerBundle
    etag: str
    migration_tag: str | None = None
    workers_dev: bool = False
    classes: tuple[str, ...] = ()  # Durable Object classes its migrations created


def _migrated(migrations: dict[str, Any]) -> list[str]:
    """The classes a migration (the single form or `steps`) creates."""
    steps = migrations.get("steps") or [migrations]
    kinds = ("new_classes", "new_sqlite_classes")
    return [c for step in steps for kind in kinds for c in step.get(kind, [])]


@dataclass
class CloudflareState:
    """Callable as `FakeCloudflare.responder`."""

    subdomain: str = "acme-co"
    namespaces: set[str] = field(default_factory=set)
    scripts: dict[tuple[str | None, str], Script] = field(default_factory=dict)  # (ns, name)
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # zone -> routes
    hostnames: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # zone -> host
    buckets: dict[str, dict[str, bytes]] = field(default_factory=dict)  # R2: bucket -> objects

    def bundle(self, name: str, namespace: str | None = None) -> WorkerBundle:
        return self.scripts[(namespace, name)].bundle

    def __call__(self, r: Recorded) -> Answer:
        url = urlsplit(r.path)
        path, query = url.path.removeprefix(ROOT), dict(parse_qsl(url.query))
        is_json = r.headers.get("Content-Type", "").startswith("application/json")
        body = json.loads(r.body) if r.body and is_json else {}
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, f"{r.method} {path}")
            if match:
                return handler(r, query, body, *match.groups())
        return failure(400, 10000, f"the fake does not know {r.method} {path}")

    def _routes(self) -> list[tuple[str, Any]]:
        ns = r"/accounts/[^/]+/workers/dispatch/namespaces"
        scripts = r"/accounts/[^/]+/workers/scripts"
        return [
            (rf"GET {ns}/([^/]+)", self._get_namespace),
            (rf"POST {ns}", self._create_namespace),
            (rf"PUT {ns}/([^/]+)/scripts/([^/]+)", self._put_tenant),
            (rf"GET {ns}/([^/]+)/scripts/([^/]+)", self._get_tenant),
            (rf"GET {scripts}", self._list_scripts),
            (rf"PUT {scripts}/([^/]+)", self._put_script),
            (rf"GET {scripts}/([^/]+)/subdomain", self._get_workers_dev),
            (rf"POST {scripts}/([^/]+)/subdomain", self._set_workers_dev),
            (r"GET /accounts/[^/]+/workers/subdomain", self._account_subdomain),
            (r"GET /accounts/[^/]+/r2/buckets/([^/]+)", self._get_bucket),
            (r"POST /accounts/[^/]+/r2/buckets", self._create_bucket),
            (r"PUT /accounts/[^/]+/r2/buckets/([^/]+)/objects/([^/]+)", self._put_object),
            (r"GET /zones/([^/]+)/workers/routes", self._list_routes),
            (r"POST /zones/([^/]+)/workers/routes", self._create_route),
            (r"GET /zones/([^/]+)/custom_hostnames", self._list_hostnames),
            (r"POST /zones/([^/]+)/custom_hostnames", self._create_hostname),
        ]

    # -- namespaces and scripts ----------------------------------------------------------

    def _get_namespace(self, r: Recorded, q: dict, b: dict, name: str) -> Answer:
        if name not in self.namespaces:
            return _missing(f"dispatch namespace {name}")
        return _ok({"namespace_name": name, "namespace_id": f"ns-{name}", "script_count": 0})

    def _create_namespace(self, r: Recorded, q: dict, b: dict) -> Answer:
        if b["name"] in self.namespaces:
            return failure(409, 100119, "namespace already exists")
        self.namespaces.add(b["name"])
        return _ok({"namespace_name": b["name"], "namespace_id": f"ns-{b['name']}"})

    def _store(self, r: Recorded, namespace: str | None, name: str) -> Answer:
        metadata = {k: v for k, v in r.metadata.items() if k != "keep_bindings"}
        modules = tuple(Module(p.filename, p.content) for p in r.parts if p.filename)
        bundle = WorkerBundle(name, modules, metadata)
        etag = hashlib.sha256(bundle.digest.encode()).hexdigest()
        old = self.scripts.get((namespace, name))
        current = old.migration_tag if old else None
        classes = old.classes if old else ()
        migrations = metadata.get("migrations")
        if migrations:
            if migrations.get("old_tag") != current:
                return failure(400, 10079, "migration tag precondition failed")
            current, classes = migrations["new_tag"], (*classes, *_migrated(migrations))
        for binding in metadata.get("bindings", []):
            own = binding["type"] == "durable_object_namespace" and not binding.get("script_name")
            if own and binding["class_name"] not in classes:
                return failure(400, 10061, f"no migration creates class {binding['class_name']}")
        self.scripts[(namespace, name)] = Script(
            bundle, etag, current, bool(old and old.workers_dev), classes
        )
        return _ok({"id": name, "etag": etag})

    def _put_tenant(self, r: Recorded, q: dict, b: dict, namespace: str, name: str) -> Answer:
        if namespace not in self.namespaces:
            return _missing(f"dispatch namespace {namespace}")
        return self._store(r, namespace, name)

    def _get_tenant(self, r: Recorded, q: dict, b: dict, namespace: str, name: str) -> Answer:
        script = self.scripts.get((namespace, name))
        if script is None:
            return _missing(f"script {name}")
        return _ok({"dispatch_namespace": namespace, "script": {"id": name, "etag": script.etag}})

    def _list_scripts(self, r: Recorded, q: dict, b: dict) -> Answer:
        return _ok(
            [
                {"id": name, "etag": s.etag, "migration_tag": s.migration_tag}
                for (ns, name), s in self.scripts.items()
                if ns is None
            ]
        )

    def _put_script(self, r: Recorded, q: dict, b: dict, name: str) -> Answer:
        return self._store(r, None, name)

    def _get_workers_dev(self, r: Recorded, q: dict, b: dict, name: str) -> Answer:
        script = self.scripts.get((None, name))
        if script is None:
            return _missing(f"script {name}")
        return _ok({"enabled": script.workers_dev, "previews_enabled": False})

    def _set_workers_dev(self, r: Recorded, q: dict, b: dict, name: str) -> Answer:
        script = self.scripts.get((None, name))
        if script is None:
            return _missing(f"script {name}")
        script.workers_dev = bool(b["enabled"])
        return _ok({"enabled": script.workers_dev, "previews_enabled": False})

    def _account_subdomain(self, r: Recorded, q: dict, b: dict) -> Answer:
        return _ok({"subdomain": self.subdomain})

    # -- R2 --------------------------------------------------------------------------------

    def _get_bucket(self, r: Recorded, q: dict, b: dict, name: str) -> Answer:
        if name not in self.buckets:
            return _missing(f"bucket {name}")
        return _ok({"name": name, "location": "WEUR"})

    def _create_bucket(self, r: Recorded, q: dict, b: dict) -> Answer:
        if b["name"] in self.buckets:
            return failure(409, 10004, "the bucket already exists")
        self.buckets[b["name"]] = {}
        return _ok({"name": b["name"]})

    def _put_object(self, r: Recorded, q: dict, b: dict, bucket: str, key: str) -> Answer:
        if bucket not in self.buckets:
            return _missing(f"bucket {bucket}")
        self.buckets[bucket][unquote(key)] = r.body
        return _ok({"key": unquote(key), "size": len(r.body), "etag": "o"})

    # -- zones -----------------------------------------------------------------------------

    def _list_routes(self, r: Recorded, q: dict, b: dict, zone: str) -> Answer:
        return _ok(self.routes.get(zone, []))

    def _create_route(self, r: Recorded, q: dict, b: dict, zone: str) -> Answer:
        routes = self.routes.setdefault(zone, [])
        if any(x["pattern"] == b["pattern"] for x in routes):
            return failure(409, 10020, "a route with the same pattern already exists")
        route = {
            "id": f"route-{len(routes) + 1}",
            "pattern": b["pattern"],
            "script": b.get("script"),
        }
        routes.append(route)
        return _ok(route)

    def _list_hostnames(self, r: Recorded, q: dict, b: dict, zone: str) -> Answer:
        exact = q.get("hostname.exact") or q.get("hostname[exact]")
        found = [
            h for name, h in self.hostnames.get(zone, {}).items() if exact is None or name == exact
        ]
        info = {"page": 1, "per_page": 20, "count": len(found), "total_count": len(found)}
        return _ok(found, result_info=info)

    def _create_hostname(self, r: Recorded, q: dict, b: dict, zone: str) -> Answer:
        hosts = self.hostnames.setdefault(zone, {})
        if b["hostname"] in hosts:
            return failure(409, 1406, "duplicate custom hostname")
        digest = hashlib.sha256(b["hostname"].encode()).hexdigest()[:12]
        host = {
            "id": f"ch-{digest}",
            "hostname": b["hostname"],
            "status": "pending",
            "ssl": {"status": "pending_validation", **b["ssl"]},
            "ownership_verification": {
                "type": "txt",
                "name": f"_cf-custom-hostname.{b['hostname']}",
                "value": f"verify-{digest}",
            },
        }
        hosts[b["hostname"]] = host
        return _ok(host)
