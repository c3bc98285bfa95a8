"""`402claw cloudflare build`: every Worker of the edge, written to a folder.

    out/directory.json            the tenant directory (the shape the dispatcher was built with)
    out/dispatcher/               dispatcher.js, paywall.js, paths.js, rules.js, kinds.js,
                                  directory.js, payconfig.js, metadata.json
    out/tenants/<workerName>/     worker.js, query.js, grammar.js, engine.js, output.js, paths.js,
                                  tenant.json, dataset.json, metadata.json
    out/r2/<bucket>/<key>         with --r2-bucket: the chunks of datasets too large to embed
    out/build.json                what was built, sizes, and which tenants were refused and why

A tenant whose Worker cannot be built (too large for the platform, no dataset, integers
JavaScript cannot hold) is refused with its reason; the others are still built. Priced tenants
without payment settings refuse the whole build (`require_payments`): nothing is written.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claw402.cloudflare.bundle import WorkerBundle
from claw402.cloudflare.directory import export_directory
from claw402.cloudflare.dispatcher import DispatcherOptions, build_dispatcher, require_payments
from claw402.cloudflare.files import write_atomic, write_json
from claw402.cloudflare.sizes import ScriptTooLarge, check_size
from claw402.cloudflare.storage import StoredData, edge_tenant
from claw402.cloudflare.tenant import EdgeUnsupported
from claw402.registry.models import Tenant


@dataclass
class BuildResult:
    out: Path
    dispatcher: WorkerBundle
    tenants: dict[str, WorkerBundle] = field(default_factory=dict)  # slug -> bundle
    refused: dict[str, str] = field(default_factory=dict)  # slug -> reason
    stored: dict[str, StoredData] = field(default_factory=dict)  # slug -> rows in R2
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        def size(bundle: WorkerBundle) -> dict[str, int]:
            return {"bytes": bundle.raw_size, "gzipBytes": bundle.gzip_size}

        return {
            "out": str(self.out),
            "dispatcher": {"scriptName": self.dispatcher.script_name, **size(self.dispatcher)},
            "tenants": [
                {
                    "slug": slug,
                    "scriptName": b.script_name,
                    "path": f"tenants/{b.script_name}",
                    **size(b),
                }
                for slug, b in sorted(self.tenants.items())
            ],
            "refused": [{"slug": s, "reason": r} for s, r in sorted(self.refused.items())],
            "r2": [
                {
                    "slug": s,
                    "bucket": d.bucket,
                    "path": f"r2/{d.bucket}",
                    "objects": len(d.objects),
                    "bytes": d.bytes,
                }
                for s, d in sorted(self.stored.items())
            ],
            "seconds": round(self.seconds, 3),
        }


def build_all(
    tenants: list[Tenant],
    out: Path,
    options: DispatcherOptions | None = None,
    *,
    workers_plan: str = "paid",
    r2_bucket: str | None = None,
) -> BuildResult:
    started = time.perf_counter()
    options = options or DispatcherOptions()
    require_payments(tenants, options.payment)
    dispatcher = build_dispatcher(tenants, options)
    check_size(dispatcher, workers_plan)
    result = BuildResult(out, dispatcher)
    stored = result.stored
    for tenant in tenants:
        try:
            bundle, data = edge_tenant(tenant, r2_bucket)
            check_size(bundle, workers_plan)
            if data is not None:
                stored[tenant.slug] = data
        except (ScriptTooLarge, EdgeUnsupported) as exc:
            result.refused[tenant.slug] = str(exc)
        else:
            result.tenants[tenant.slug] = bundle
    for stale in (out / "dispatcher", out / "tenants", out / "r2"):
        shutil.rmtree(stale, ignore_errors=True)
    dispatcher.write(out / "dispatcher")
    for bundle in result.tenants.values():
        bundle.write(out / "tenants" / bundle.script_name)
    for data in stored.values():
        for key, content in data.objects.items():
            write_atomic(out / "r2" / data.bucket / key, content)
    write_json(out / "directory.json", export_directory(tenants, options.directory_format))
    result.seconds = time.perf_counter() - started
    write_json(out / "build.json", result.to_json())
    return result
