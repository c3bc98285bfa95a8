"""`402claw` as a new user meets it: `--help` of every command, `--version`, shell completion,
and `--home`/`--json` given before the command as well as after it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from claw402.cli.main import app
from claw402.samples import CITIES

CLI = str(Path(sys.executable).with_name("402claw"))
runner = CliRunner()


def commands(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, cmd)]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        found += commands(sub, (*path, name))
    return found


def options_of(cmd: Any) -> set[str]:
    names = {"--help"}
    for param in cmd.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names


def test_every_help_shows_flags_as_flags_and_names_only_its_own_options():
    every = commands(get_command(app))
    assert len(every) > 30
    for path, cmd in every:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        assert "<bool>" not in text, (path, text)
        for flag in ("--json", "--execute", "--publish", "--dry-run", "--allow-empty"):
            assert not re.search(rf"{flag} <", text), (path, flag)  # takes no value
        described = text.split("Options:")[0]  # the command's own words, before the table
        for named in re.findall(r"(?<![\w-])--[a-z][a-z-]*", described):
            assert named in options_of(cmd), f"{' '.join(path)} --help names {named}"
    withdraw = runner.invoke(app, ["withdraw", "--help"]).stdout
    assert "Reserve --amount" in withdraw and "AMOUNT" not in withdraw


def test_version():
    done = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    from importlib.metadata import version

    assert done.stdout == f"402claw {version('claw402')}\n"


def test_shell_completion_is_on():
    script = subprocess.run(
        [CLI, "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    assert script.returncode == 0 and "_402CLAW_COMPLETE=complete_bash" in script.stdout
    root_help = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert "--install-completion" in root_help.stdout and "--show-completion" in root_help.stdout
    env = {**os.environ, "_402CLAW_COMPLETE": "complete_bash", "COMP_CWORD": "4",
           "COMP_WORDS": "402claw deploy x.txt --format "}  # fmt: skip
    answer = subprocess.run([CLI], env=env, capture_output=True, text=True, timeout=60)
    assert answer.stdout.split() == ["csv", "json", "ndjson", "parquet"]


def test_home_and_json_before_or_after_the_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    env["CLAW402_HOME"] = str(tmp_path / "elsewhere")  # never used: --home is given each time
    home, other = str(tmp_path / "home"), str(tmp_path / "other")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)

    deployed = run("--home", home, "--json", "deploy", str(CITIES), "--tenant", "acme",
                   "--price", "0")  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["tenant"]["slug"] == "acme"
    assert (tmp_path / "home" / "registry.sqlite3").exists()
    assert not (tmp_path / "elsewhere").exists()

    def slugs(*args: str) -> list[str]:
        done = run(*args)
        assert done.returncode == 0, done.stderr
        return [t["slug"] for t in json.loads(done.stdout)["tenants"]]

    assert slugs("--home", home, "list", "--json") == ["acme"]
    assert slugs("--json", "list", "--home", home) == ["acme"]
    assert slugs("--home", other, "--json", "list", "--home", home) == ["acme"]  # its own wins
    assert slugs("--home", home, "--json", "list", "--home", other) == []
    shown = run("--home", home, "show", "acme")
    assert shown.returncode == 0 and "tenant-acme-worker" in shown.stdout  # not JSON: people
    missing = run("--json", "--home", home, "show", "nope")
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"] == "tenant_not_found"


def test_which_commands_take_home_and_json_is_what_the_readme_says():
    """README: every command takes --home (`facilitator serve` keeps its catalogue there), and
    --json but the servers and the demo (they print a running log or speak MCP, not a result)."""
    leaves = [
        (" ".join(path), cmd)
        for path, cmd in commands(get_command(app))
        if path and not getattr(cmd, "commands", None)
    ]
    assert {name for name, cmd in leaves if "--home" not in options_of(cmd)} == set()
    assert {name for name, cmd in leaves if "--json" not in options_of(cmd)} == {
        "facilitator serve",
        "serve",
        "demo",
        "mcp",
    }
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "Every command takes `--home DIR`" in readme
