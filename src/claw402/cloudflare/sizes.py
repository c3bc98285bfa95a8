"""How big a Worker may be, and the refusal when one is not.

Three limits, the strictest wins:

- The compressed script size Cloudflare documents per Workers plan: 10 MiB (gzip) on Workers
  Paid, 3 MiB on Workers Free. Workers for Platforms needs the paid plan, so `paid` is the
  default; `free` is for trying the dispatcher on a free account.
- 64 MiB uncompressed, the platform's ceiling on every plan.
- Memory, for an embedded dataset: an isolate gets 128 MB, and a dataset parsed from JSON costs
  about 7x its JSON size in heap (measured under workerd: +44 MB of RSS for 5.9 MiB of JSON,
  +130 MB for 17.9 MiB). 8 MiB of JSON (~60 MB parsed) leaves room for queries and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claw402.cloudflare.bundle import WorkerBundle

MiB = 1024 * 1024
MAX_EMBEDDED_DATA = 8 * MiB


@dataclass(frozen=True)
class WorkersPlan:
    name: str
    max_gzip: int
    max_raw: int = 64 * MiB


WORKERS_PLANS = {"paid": WorkersPlan("paid", 10 * MiB), "free": WorkersPlan("free", 3 * MiB)}


class ScriptTooLarge(ValueError):
    """The Worker would not fit the platform; the message says which limit and why."""


def mib(size: int) -> str:
    return f"{size / MiB:.2f} MiB"


@dataclass(frozen=True)
class ScriptSize:
    raw: int
    gzip: int
    plan: WorkersPlan

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.raw,
            "gzipBytes": self.gzip,
            "workersPlan": self.plan.name,
            "limitGzipBytes": self.plan.max_gzip,
            "limitBytes": self.plan.max_raw,
        }


def check_size(bundle: WorkerBundle, plan: str = "paid") -> ScriptSize:
    limits = WORKERS_PLANS[plan]
    size = ScriptSize(bundle.raw_size, bundle.gzip_size, limits)
    if size.gzip > limits.max_gzip:
        raise ScriptTooLarge(
            f"{bundle.script_name} is {mib(size.gzip)} compressed; Cloudflare accepts at most "
            f"{mib(limits.max_gzip)} per Worker on the Workers {plan} plan"
        )
    if size.raw > limits.max_raw:
        raise ScriptTooLarge(
            f"{bundle.script_name} is {mib(size.raw)} uncompressed; Cloudflare accepts at most "
            f"{mib(limits.max_raw)} per Worker"
        )
    return size


def check_embedded_data(slug: str, size: int, rows: int) -> None:
    if size > MAX_EMBEDDED_DATA:
        raise ScriptTooLarge(
            f"tenant {slug!r}: its dataset ({rows:,} rows) is {mib(size)} as JSON, and a user "
            f"Worker embeds at most {mib(MAX_EMBEDDED_DATA)}: a Workers isolate has 128 MB of "
            "memory and parsed rows take about 7x their JSON size. Serve it with "
            "`402claw serve`, or deploy a smaller dataset to the edge."
        )
