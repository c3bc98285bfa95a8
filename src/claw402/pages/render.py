"""Server-side HTML for people (Jinja2, autoescaped; no front-end build, no script).

The catalogue lists what any caller may already reach at `/t/<slug>`; a tenant's page shows
what its free documents say, five rows and how to pay for the rest. Everything here is plain
data in, text out: the gateway and the Worker generator call it with what they hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2

from claw402.datasets.query import accept_weights
from claw402.registry.models import Tenant

SAMPLE_ROWS = 5


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("claw402.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )


def catalogue_entry(tenant: Tenant, origin: str) -> dict[str, Any]:
    """One listed tenant as the catalogue shows it (and its JSON form says)."""
    v = tenant.dataset
    assert v is not None
    return {
        "slug": tenant.slug,
        "name": tenant.name or tenant.slug,
        "description": tenant.description,
        "price": tenant.price_usd,
        "free": tenant.price_atomic <= 0,
        "rows": v.rows,
        "columns": [c["name"] for c in v.columns],
        "updated": max(v.created_at, tenant.updated_at).isoformat(),
        "url": f"{origin}/t/{tenant.slug}",
    }


def catalogue(tenants: Iterable[Tenant], origin: str) -> list[dict[str, Any]]:
    """The public tenants (listed, with a dataset), by name."""
    shown = [t for t in tenants if t.listed and t.dataset is not None]
    return [catalogue_entry(t, origin) for t in sorted(shown, key=lambda t: t.slug)]


def catalogue_html(entries: Sequence[dict[str, Any]], home_url: str) -> str:
    return environment().get_template("catalogue.html").render(tenants=entries, home_url=home_url)


@dataclass(frozen=True)
class Snippet:
    id: str
    title: str
    code: str


def snippets(tenant: Tenant, root_url: str) -> list[Snippet]:
    """Copy-ready calls of a tenant's first page: curl, `402claw call`, the x402 clients."""
    url = f"{root_url}/v1/records?_limit={SAMPLE_ROWS}"
    if tenant.price_atomic <= 0:
        return [Snippet("curl", "curl", f"curl '{url}'")]
    price = tenant.price_usd
    return [
        Snippet(
            "curl",
            "curl (shows the terms: a 402 with PAYMENT-REQUIRED)",
            f"curl -i '{url}'",
        ),
        Snippet(
            "cli",
            "402claw call (pays with the official x402 client)",
            f"CLAW402_PAYER_KEY=<your key> 402claw call '{url}' --max-price {price}",
        ),
        Snippet("python", "Python (the x402 SDK: pip install 'x402[evm,httpx]')", PYTHON % url),
        Snippet("js", "JavaScript (npm install @x402/fetch @x402/evm viem)", JS % url),
    ]


PYTHON = """import asyncio, os

from eth_account import Account
from x402 import x402Client
from x402.http.clients import x402HttpxClient
from x402.mechanisms.evm.exact import ExactEvmClientScheme

client = x402Client()
client.register("eip155:*", ExactEvmClientScheme(Account.from_key(os.environ["PAYER_KEY"])))


async def main():
    async with x402HttpxClient(client) as http:
        answer = await http.get("%s")
        print(answer.json())

asyncio.run(main())"""

JS = """import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";

const client = new x402Client();
registerExactEvmScheme(client, { signer: privateKeyToAccount(process.env.PAYER_KEY) });
const fetchWithPayment = wrapFetchWithPayment(fetch, client);
const answer = await fetchWithPayment("%s");
console.log(await answer.json());"""


def tenant_html(
    tenant: Tenant, root_url: str, samples: Sequence[Sequence[object]], home_url: str = "/"
) -> str:
    """A tenant's page: its schema, `samples` (rows in column order), price and snippets."""
    v = tenant.dataset
    assert v is not None
    return (
        environment()
        .get_template("tenant.html")
        .render(
            name=tenant.name or tenant.slug,
            description=tenant.description,
            free=tenant.price_atomic <= 0,
            price=tenant.price_usd,
            rows=v.rows,
            version=v.version,
            key=v.key,
            columns=v.columns,
            samples=[[cell(v) for v in row] for row in samples],
            snippets=snippets(tenant, root_url),
            root=root_url,
            home_url=home_url,
        )
    )


def prefers_html(accept: str | None) -> bool:
    """Whether an Accept header asks for a page rather than data: `text/html` named with a
    weight at least that of `application/json` (a browser's navigation, not an API client)."""
    if not accept or "html" not in accept.lower():  # API clients: no parse on the 402 path
        return False
    weights: dict[str, float] = {}
    for media, weight in accept_weights(accept):
        weights.setdefault(media, weight)
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)


def cell(value: object) -> str:
    """A value as a sample table shows it (what the JSON says, NULL as blank)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)
