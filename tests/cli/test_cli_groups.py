"""Option groups (`cli.options.grouped`): options several commands share, declared once, reach
the command as one value, and Typer shows them exactly as if each command spelled them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from claw402.cli.options import OptionGroup, grouped

Region = Annotated[str, typer.Option("--region", envvar="TEST_GROUP_REGION", help="Where.")]
Token = Annotated[str | None, typer.Option("--token", help="Never stored.", show_default=False)]
Verbose = Annotated[bool, typer.Option("--verbose/--quiet", help="Say more.")]


@dataclass(frozen=True)
class Where(OptionGroup):
    region: Region = "eu"
    token: Token = None


@dataclass(frozen=True)
class Call(OptionGroup):
    where: Where = field(default_factory=Where)
    verbose: Verbose = False


@dataclass(frozen=True)
class Again(OptionGroup):
    region: Region = "eu"


seen: list[object] = []


@grouped
def grouped_command(
    name: Annotated[str, typer.Argument(help="A name.")],
    call: Call = Call(),
    count: Annotated[int, typer.Option("--count", help="How many.")] = 1,
) -> None:
    seen.append((name, call, count))


def spelled_command(
    name: Annotated[str, typer.Argument(help="A name.")],
    region: Region = "eu",
    token: Token = None,
    verbose: Verbose = False,
    count: Annotated[int, typer.Option("--count", help="How many.")] = 1,
) -> None:
    seen.append((name, Call(Where(region, token), verbose), count))


def app_of(command: object) -> typer.Typer:
    app = typer.Typer()
    app.command("run")(command)
    app.command("other")(lambda: None)  # a group, so `run` is a subcommand
    return app


def described(app: typer.Typer) -> list[tuple[object, ...]]:
    command = get_command(app).commands["run"]  # type: ignore[attr-defined]
    return [
        (
            p.name,
            p.opts,
            p.secondary_opts,
            p.default,
            p.envvar,
            p.required,
            getattr(p, "help", None),
        )
        for p in command.params
    ]


def test_a_group_shows_the_same_options_in_the_same_place_as_spelled_out():
    grouped_app, spelled_app = app_of(grouped_command), app_of(spelled_command)
    assert described(grouped_app) == described(spelled_app)
    assert [p[0] for p in described(grouped_app)] == [
        "name", "region", "token", "verbose", "count"
    ]  # fmt: skip
    runner = CliRunner()
    grouped_help = runner.invoke(grouped_app, ["run", "--help"]).output
    assert grouped_help == runner.invoke(spelled_app, ["run", "--help"]).output
    assert "--verbose" in grouped_help and "TEST_GROUP_REGION" in grouped_help


@pytest.mark.parametrize("app", [app_of(grouped_command), app_of(spelled_command)])
def test_the_command_gets_the_group_built_from_what_was_given(app, monkeypatch):
    runner = CliRunner()
    seen.clear()
    assert (
        runner.invoke(app, ["run", "x", "--token", "t", "--verbose", "--count", "3"]).exit_code == 0
    )
    monkeypatch.setenv("TEST_GROUP_REGION", "us")
    assert runner.invoke(app, ["run", "y"]).exit_code == 0
    assert seen == [("x", Call(Where("eu", "t"), True), 3), ("y", Call(Where("us", None)), 1)]


def test_a_bad_value_in_a_group_is_refused_like_any_option():
    result = CliRunner().invoke(app_of(grouped_command), ["run", "x", "--count", "many"])
    assert result.exit_code == 2 and "Invalid value for '--count'" in result.output


def test_two_groups_naming_the_same_option_fail_when_the_command_is_declared():
    def clashing(call: Call = Call(), again: Again = Again()) -> None:
        raise AssertionError("never run")

    with pytest.raises(ValueError, match="duplicate parameter name: 'region'"):
        grouped(clashing)
