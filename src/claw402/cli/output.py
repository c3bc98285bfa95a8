"""How commands speak: Rich for people, one JSON document for machines (`--json`)."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any, *, one_line: bool = False) -> None:
    """Indented for reading; `one_line` for a stream a reader takes line by line."""
    option = 0 if one_line else orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(data, option=option, default=str).decode() + "\n")
    sys.stdout.flush()


def fail(
    message: str, *, as_json: bool = False, code: str = "error", exit_code: int = 1
) -> NoReturn:
    """A clear error and a non-zero exit; with --json the error is a JSON document too."""
    if as_json:
        emit_json({"ok": False, "error": code, "detail": message})
    else:
        err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(exit_code)
