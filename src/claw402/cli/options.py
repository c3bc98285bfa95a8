"""Options every command shares, declared once.

`--home` and `--json` are also options of `402claw` itself, so `402claw --home X list` works as
well as `402claw list --home X`: a command's own option, when given, wins; else it inherits the
one given before the command.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer

from claw402.cli.output import fail
from claw402.config import Settings, load_settings

if TYPE_CHECKING:
    from claw402.registry.store import Registry

R = TypeVar("R")


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


class OptionGroup:
    """Base of a frozen dataclass whose fields are options several commands share.

    A command decorated with `grouped` takes the group as one parameter; Typer sees the group's
    fields in its place (their names, annotations and defaults), so every command that takes it
    has the same options, declared once, and gets them back as one value with its own methods.
    """


def grouped(command: Callable[..., R]) -> Callable[..., R]:
    """`command` as Typer should see it: each parameter annotated with an `OptionGroup`
    replaced in place by the group's fields (a group inside a group too); the groups are built
    again from the parsed values before `command` runs. The group parameter's own default is
    only for direct calls."""
    flat, build = _flatten(inspect.signature(command).parameters.values(), command)

    @functools.wraps(command)
    def run(**values: Any) -> R:
        return command(**build(values))

    run.__signature__ = inspect.Signature(flat)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in flat}
    return run


def _flatten(
    params: Iterable[inspect.Parameter], owner: Any
) -> tuple[list[inspect.Parameter], Callable[[dict[str, Any]], dict[str, Any]]]:
    hints = get_type_hints(owner, include_extras=True)
    flat: list[inspect.Parameter] = []
    groups: list[tuple[str, type[OptionGroup], Callable[..., Any], list[str]]] = []
    for param in params:
        hint = hints.get(param.name, param.annotation)
        if isinstance(hint, type) and issubclass(hint, OptionGroup):
            fields = [
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_default(f))
                for f in dataclasses.fields(hint)  # type: ignore[arg-type]
            ]
            inner, build = _flatten(fields, hint)
            flat += inner
            groups.append((param.name, hint, build, [f.name for f in fields]))
        else:
            flat.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))

    def build_groups(values: dict[str, Any]) -> dict[str, Any]:
        for name, group, build, names in groups:
            values = build(values)
            values[name] = group(**{n: values.pop(n) for n in names})
        return values

    return flat, build_groups


def _default(field: dataclasses.Field[Any]) -> Any:
    """A field's default as a parameter's (a group inside a group has a factory instead)."""
    return inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
