"""The options the Cloudflare commands share, and what they become: where uploads go (a
`CloudflareAccount`'s `target()`), what an upload sends and checks (`UploadSettings`).

Kept beside the commands with no import beyond Typer: every `402claw` invocation builds its
command list from these annotations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from claw402.cli.options import OptionGroup

if TYPE_CHECKING:
    from claw402.cloudflare.api import Target

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


def _r2_bucket(otherwise: str) -> Any:
    return typer.Option(
        "--r2-bucket",
        envvar="CLOUDFLARE_R2_BUCKET",
        show_default=False,
        help=f"R2 bucket for datasets too large to embed in a Worker ({otherwise}).",
    )


R2Bucket = Annotated[str | None, _r2_bucket("else refused")]
R2BucketMade = Annotated[
    str | None, _r2_bucket("created if missing; else such tenants are refused")
]
EventsUrl = Annotated[
    str | None, typer.Option("--events-url", help="Where the Worker posts lifecycle events.")
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


@dataclass(frozen=True)
class CloudflareAccount(OptionGroup):
    """`--account-id`, `--api-token`, `--dispatch-namespace`: where uploads go."""

    account_id: AccountId = None
    api_token: ApiToken = None
    dispatch_namespace: Namespace = DEFAULT_NAMESPACE

    def target(self) -> Target:
        """The API settings (`claw402.control.edge.target`; a placeholder without an id)."""
        from claw402.control import edge

        return edge.target(self.account_id, self.api_token, self.dispatch_namespace)


@dataclass(frozen=True)
class UploadSettings(OptionGroup):
    """`--secret`, `--workers-plan`: the secrets a Worker is uploaded with, and the size
    limits it is checked against."""

    secret: Secrets = None
    workers_plan: WorkersPlanOption = WorkersPlanName.paid

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.secret or ())

    def arguments(self) -> dict[str, Any]:
        """As the `claw402.control.edge` operations take them."""
        return {"secrets": self.secrets, "workers_plan": self.workers_plan.value}
