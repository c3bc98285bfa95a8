"""Options every command shares, declared once.

`--home` and `--json` are also options of `402claw` itself, so `402claw --home X list` works as
well as `402claw list --home X`: a command's own option, when given, wins; else it inherits the
one given before the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from claw402.cli.output import fail
from claw402.config import Settings, load_settings

if TYPE_CHECKING:
    from claw402.registry.store import Registry


def inherit_home(ctx: typer.Context, value: str | None) -> str | None:
    return value if value is not None else ctx.find_root().params.get("home")


def inherit_json(ctx: typer.Context, value: bool) -> bool:
    return value or bool(ctx.find_root().params.get("json"))


Home = Annotated[
    str | None,
    typer.Option(
        "--home",
        help="State folder (else CLAW402_HOME, else ./.402claw).",
        show_default=False,
        callback=inherit_home,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON.", callback=inherit_json)
]


def open_registry(home: str | None) -> tuple[Settings, Registry]:
    from claw402.registry.store import Registry  # SQLAlchemy: only for commands that use it

    settings = load_settings(home)
    return settings, Registry.open(settings)


@contextmanager
def session(home: str | None, json: bool) -> Iterator[tuple[Settings, Registry]]:
    """Open the registry for a command; a control-plane refusal inside the block (an
    `AuthError`, a missing tenant, ...) becomes the command's error, printed by `fail`."""
    from claw402.control.errors import ControlError  # imports nothing heavy, only when run

    settings, registry = open_registry(home)
    try:
        yield settings, registry
    except ControlError as exc:
        fail(str(exc), as_json=json, code=exc.code)
