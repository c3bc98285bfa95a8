"""Datasets too large to embed in a Worker, served from R2 by the same user Worker.

Why R2 and not D1 (Cloudflare's published limits, and what the gateway promises): a Worker
isolate has 128 MB of memory, so an embedded dataset stops at `sizes.MAX_EMBEDDED_DATA` of JSON
whatever the script limit. R2 holds objects of up to 5 TiB (300 MB through the API upload the
SDK makes), D1 databases stop at 10 GB and take data as SQL statements of at most 100 KB. Above
all, answers must equal the gateway's: the tenant Worker's engine (`templates/engine.js`)
already matches it (collation, NULLs last, Unicode lowercasing, keyset cursors), while D1's
SQLite would answer differently (`lower()` is ASCII-only, another collation). So the rows go to
R2 as chunks of at most `CHUNK_BYTES` of JSON each, in the embedded form, and the Worker
(`templates/stored.js`) runs the same engine over one chunk at a time (a few in memory).

Object keys carry the tenant, the dataset version and the chunk's content hash: uploads never
overwrite what a live (or rolled-back) Worker reads, and uploading again is harmless. Keys have
no `/`: the SDK's object upload percent-encodes it, which the R2 API does not accept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from claw402.cloudflare.bundle import WorkerBundle
from claw402.cloudflare.sizes import MiB, ScriptTooLarge
from claw402.cloudflare.tenant import build_tenant, export_columns, tenant_bundle
from claw402.registry.models import Tenant

# Parsed, a chunk costs ~7x its JSON in heap (sizes.py): stored.js keeps three, which leaves
# room in the 128 MB isolate; chosen with bench/bench_edge_r2.py (docs/architecture.md).
CHUNK_BYTES = 4 * MiB
R2_BINDING = "DATA"


@dataclass(frozen=True)
class StoredData:
    """The R2 objects a stored tenant's Worker reads: key -> chunk JSON."""

    bucket: str
    objects: dict[str, bytes] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(len(v) for v in self.objects.values())


def stored_tenant(
    tenant: Tenant, bucket: str, chunk_bytes: int = CHUNK_BYTES
) -> tuple[WorkerBundle, StoredData]:
    """The tenant's Worker with an R2 manifest as `dataset.json`, and the chunks to upload."""
    data, rows = export_columns(tenant, embedded=False)
    version = tenant.dataset
    assert version is not None
    total = len(orjson.dumps(data))
    per_chunk = max(1, rows * chunk_bytes // max(total, 1))
    chunks: list[dict[str, Any]] = []
    stored = StoredData(bucket)
    for offset in range(0, max(rows, 1), per_chunk):
        part = [values[offset : offset + per_chunk] for values in data]
        count = len(part[0]) if part else 0
        body = orjson.dumps({"columns": version.columns, "rows": count, "data": part})
        key = (
            f"claw402-{tenant.tenant_id}-v{version.version}-"
            f"{hashlib.sha256(body).hexdigest()[:20]}.json"
        )
        stored.objects[key] = body
        chunks.append({"key": key, "offset": offset, "rows": count, "bytes": len(body)})
    manifest = {
        "columns": version.columns,
        "rows": rows,
        "r2": {"binding": R2_BINDING, "chunks": chunks},
    }
    binding = {"type": "r2_bucket", "name": R2_BINDING, "bucket_name": bucket}
    return tenant_bundle(tenant, orjson.dumps(manifest), [binding]), stored


def edge_tenant(
    tenant: Tenant, bucket: str | None = None, chunk_bytes: int = CHUNK_BYTES
) -> tuple[WorkerBundle, StoredData | None]:
    """The tenant's Worker with its rows embedded when they fit, else (with a bucket) from R2."""
    try:
        return build_tenant(tenant), None
    except ScriptTooLarge as exc:
        if bucket is None:
            raise ScriptTooLarge(
                f"{exc} Or serve it from R2: pass --r2-bucket (or set CLOUDFLARE_R2_BUCKET)."
            ) from None
    return stored_tenant(tenant, bucket, chunk_bytes)
