"""Cloudflare commands: export the tenant directory, build the Workers, deploy, roll back."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from claw402.cli.options import Home, Json, open_registry
from claw402.cli.output import console, emit_json
from claw402.cloudflare.directory import export_directory
from claw402.cloudflare.files import dump_json, write_atomic


class DirectoryShape(enum.StrEnum):
    maps = "maps"
    registry = "registry"


def export_tenant_directory_command(
    format: Annotated[
        DirectoryShape, typer.Option("--format", help="maps (byHost/bySlug) or registry (a list).")
    ] = DirectoryShape.maps,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (else print it).")
    ] = None,
    home: Home = None,
    json: Json = False,
) -> None:
    """Export the tenant directory the dispatch Worker routes with."""
    _, registry = open_registry(home)
    directory = export_directory(registry.list_tenants(), format.value)
    count = len(directory.get("tenants", directory.get("bySlug", ())))
    if out is None:
        emit_json(directory)
        return
    write_atomic(out, dump_json(directory))
    if json:
        emit_json({"ok": True, "path": str(out), "format": format.value, "tenants": count})
    else:
        console.print(f"[green]wrote[/] {count} tenant(s) to {out} ({format.value} format)")


def register(app: typer.Typer) -> None:
    """Add the Cloudflare commands to the `402claw` app."""
    app.command("export-tenant-directory")(export_tenant_directory_command)
