"""The dispatch Worker bundle: the JS templates plus the generated directory and rules.

`rules.js` carries the slug rules from `claw402.dispatch.naming` and `directory.js` the tenant
directory, so the Worker and the gateway route with the same data; only the routing code is
written twice (and the contract tests hold the two together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from claw402.cloudflare.bundle import COMPATIBILITY_DATE, Module, WorkerBundle
from claw402.cloudflare.directory import DirectoryFormat, export_directory
from claw402.cloudflare.workerd import template
from claw402.dispatch.naming import RESERVED_SLUGS, SLUG_RE
from claw402.registry.models import Tenant

DEFAULT_SCRIPT_NAME = "claw402-dispatcher"
DEFAULT_NAMESPACE = "claw402"
DISPATCHER_BINDING = "DISPATCHER"
# The gateway's rule for a caller's x-request-id (gateway/app.py); anything else gets a new id.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_BINDING_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


@dataclass(frozen=True)
class DispatcherOptions:
    script_name: str = DEFAULT_SCRIPT_NAME
    dispatch_namespace: str = DEFAULT_NAMESPACE
    events_url: str | None = None  # durable sink for lifecycle events (EVENTS_URL)
    facilitator_url: str | None = None  # the x402 facilitator the edge paywall talks to
    secrets: Sequence[str] = ()  # secret_text bindings; values come from the environment
    directory_format: DirectoryFormat = "maps"


def rules_module() -> Module:
    reserved = json.dumps(sorted(RESERVED_SLUGS))
    text = (
        "// Generated from claw402.dispatch.naming: do not edit.\n"
        f"export const SLUG_RE = new RegExp({json.dumps(SLUG_RE.pattern)});\n"
        f"export const RESERVED_SLUGS = new Set({reserved});\n"
        f"export const REQUEST_ID_RE = new RegExp({json.dumps(REQUEST_ID_PATTERN)});\n"
    )
    return Module("rules.js", text.encode())


def directory_module(directory: dict[str, Any]) -> Module:
    # JSON.parse over a string literal: keys like "__proto__" stay data, and V8 parses it faster
    # than the same object literal.
    literal = json.dumps(json.dumps(directory, separators=(",", ":"), sort_keys=True))
    text = f"// Generated tenant directory: do not edit.\nexport default JSON.parse({literal});\n"
    return Module("directory.js", text.encode())


def check_secret_names(names: Iterable[str]) -> list[str]:
    result = []
    for name in names:
        if not _BINDING_NAME.fullmatch(name):
            raise ValueError(f"secret name {name!r}: use UPPER_CASE letters, digits and _")
        result.append(name)
    return sorted(set(result))


def dispatcher_bindings(options: DispatcherOptions) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = [
        {"type": "dispatch_namespace", "name": DISPATCHER_BINDING,
         "namespace": options.dispatch_namespace},
    ]
    for name, value in (("EVENTS_URL", options.events_url),
                        ("FACILITATOR_URL", options.facilitator_url)):
        if value:
            bindings.append({"type": "plain_text", "name": name, "text": value})
    bindings += [{"type": "secret_text", "name": n} for n in check_secret_names(options.secrets)]
    return bindings


def build_dispatcher(
    tenants: Iterable[Tenant], options: DispatcherOptions | None = None
) -> WorkerBundle:
    options = options or DispatcherOptions()
    directory = export_directory(tenants, options.directory_format)
    modules = (
        Module("dispatcher.js", template("dispatcher.js")),
        Module("paywall.js", template("paywall.js")),
        Module("paths.js", template("paths.js")),
        rules_module(),
        directory_module(directory),
    )
    metadata = {
        "main_module": "dispatcher.js",
        "compatibility_date": COMPATIBILITY_DATE,
        "bindings": dispatcher_bindings(options),
        "tags": ["claw402", "claw402-dispatcher", f"namespace-{options.dispatch_namespace}"],
    }
    return WorkerBundle(options.script_name, modules, metadata)
