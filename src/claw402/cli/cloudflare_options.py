"""The options the Cloudflare commands share: where uploads go, what they check, their names.

Kept beside the commands with no import beyond Typer: every `402claw` invocation builds its
command list from these annotations.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

# = claw402.cloudflare.dispatcher.DEFAULT_NAMESPACE, DEFAULT_SCRIPT_NAME (tests/cli check them)
DEFAULT_NAMESPACE = "claw402"
DEFAULT_SCRIPT_NAME = "claw402-dispatcher"


class DirectoryShape(enum.StrEnum):
    maps = "maps"
    registry = "registry"


DirectoryFormat = Annotated[
    DirectoryShape,
    typer.Option(
        "--directory-format",
        help="The dispatcher's directory: maps (byHost/bySlug) or registry (tenants[]).",
    ),
]


R2Bucket = Annotated[
    str | None,
    typer.Option(
        "--r2-bucket",
        envvar="CLOUDFLARE_R2_BUCKET",
        show_default=False,
        help="R2 bucket for datasets too large to embed in a Worker (else refused).",
    ),
]


class WorkersPlanName(enum.StrEnum):
    paid = "paid"
    free = "free"


AccountId = Annotated[
    str | None,
    typer.Option(
        "--account-id",
        envvar="CLOUDFLARE_ACCOUNT_ID",
        help="Cloudflare account id (else CLOUDFLARE_ACCOUNT_ID).",
        show_default=False,
    ),
]
ApiToken = Annotated[
    str | None,
    typer.Option(
        "--api-token",
        help="API token (else CLOUDFLARE_API_TOKEN); never stored.",
        show_default=False,
    ),
]
Namespace = Annotated[
    str,
    typer.Option(
        "--dispatch-namespace",
        envvar="CLOUDFLARE_DISPATCH_NAMESPACE",
        help="Workers for Platforms dispatch namespace.",
    ),
]
Secrets = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="Upload this environment variable as a Worker secret (repeat).",
        show_default=False,
    ),
]
Execute = Annotated[
    bool, typer.Option("--execute", help="Make the API calls (default: print the plan).")
]
WorkersPlanOption = Annotated[
    WorkersPlanName, typer.Option("--workers-plan", help="Size limits to check against.")
]
DispatcherName = Annotated[str, typer.Option("--script-name", help="The dispatch Worker's name.")]
