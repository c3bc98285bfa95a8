"""The gateway's tenant runtimes: a least-recently-used cache with a size you can set.

Why a bound: a worker may be called for every tenant of the registry; each runtime it keeps
holds a dataset handle and the tenant's schema, so without one its memory would grow with
the tenants touched. Why this default: the repeat calls of 10,000 small tenants spread over
all of them should cost what calls over 10 cost, so the default keeps more runtimes than
that (a miss rebuilds one: a handle, the column list, a runtime object); the bytes a runtime
holds are measured in bench/bench_tenants.py and docs/architecture.md.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from claw402.registry.models import Tenant
from claw402.tenant_api.call import TenantFailure

if TYPE_CHECKING:  # DuckDB loads with the first cache, not with `serve`'s check of the setting
    from claw402.datasets.schema import Column
    from claw402.tenant_api.runtime import TenantRuntime

ENV_RUNTIMES = "CLAW402_RUNTIMES"
MAX_RUNTIMES = 16_384  # per worker, least recently used dropped first
MAX_COLUMNS = 65_536  # distinct (name, type) pairs shared by the runtimes, then started over


def runtimes_from_env(env: Mapping[str, str] = os.environ) -> int:
    """`CLAW402_RUNTIMES` (a positive integer), else `MAX_RUNTIMES`; raises ValueError."""
    value = env.get(ENV_RUNTIMES, "").strip()
    if not value:
        return MAX_RUNTIMES
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{ENV_RUNTIMES} must be a positive integer, got {value!r}")
    return number


class Runtimes:
    """Runtimes by (tenant id, dataset version), at most `size` of them."""

    def __init__(self, size: int | None = None) -> None:
        self.size = runtimes_from_env() if size is None else size
        if self.size <= 0:
            raise ValueError(f"the runtime cache size must be positive, got {self.size}")
        self._kept: OrderedDict[tuple[str, int], TenantRuntime] = OrderedDict()
        self._columns: dict[tuple[str, str], Column] = {}  # one object per (name, type)
        from claw402.datasets.engine import open_dataset
        from claw402.datasets.schema import Column
        from claw402.tenant_api.runtime import TenantRuntime

        self._open, self._runtime, self._column = open_dataset, TenantRuntime, Column

    def __len__(self) -> int:
        return len(self._kept)

    def kept(self) -> list[tuple[str, int]]:
        """The kept (tenant id, version)s, least recently used first."""
        return list(self._kept)

    def get(self, tenant: Tenant) -> TenantRuntime:
        """`tenant`'s runtime, kept or built (raises `TenantFailure` if its data is unreadable).

        A kept runtime serves only the same tenant row: a changed price or plan rebuilds it."""
        ds = tenant.dataset
        assert ds is not None
        key = (tenant.tenant_id, ds.version)
        kept = self._kept
        runtime = kept.get(key)
        if runtime is not None and (runtime.tenant is tenant or runtime.tenant == tenant):
            kept.move_to_end(key)
            return runtime
        try:
            columns = self._shared(ds.columns)
            dataset = self._open(ds.data_path, columns, ds.key, version=str(ds.version))
        except Exception as exc:
            raise TenantFailure(f"dataset unreadable: {exc}") from exc
        runtime = kept[key] = self._runtime(tenant, dataset)
        kept.move_to_end(key)  # a rebuilt key may sit anywhere in the order
        while len(kept) > self.size:
            kept.popitem(last=False)
        return runtime

    def _shared(self, columns: list[dict[str, str]]) -> list[Column]:
        """The version's columns as `Column`s, one object per distinct (name, type) across
        tenants: a rebuild looks them up instead of validating and building each again, and
        the many tenants with an `id` or a `name` column hold one each (they are immutable)."""
        known = self._columns
        if len(known) > MAX_COLUMNS:
            known.clear()
        found = []
        for c in columns:
            pair = (c["name"], c["type"])
            column = known.get(pair)
            if column is None:
                column = known[pair] = self._column.from_dict(c)  # raises ValueError on a bad type
            found.append(column)
        return found
