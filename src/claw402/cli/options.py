"""Options every command shares, declared once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from claw402.config import Settings, load_settings

if TYPE_CHECKING:
    from claw402.registry.store import Registry

Home = Annotated[
    str | None,
    typer.Option(
        "--home", help="State folder (else CLAW402_HOME, else ./.402claw).", show_default=False
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def open_registry(home: str | None) -> tuple[Settings, Registry]:
    from claw402.registry.store import Registry  # SQLAlchemy: only for commands that use it

    settings = load_settings(home)
    return settings, Registry.open(settings)
