"""`402claw` imports only what the invoked command needs: building the command list is cheap."""

from __future__ import annotations

from typing import get_args

from claw402.cli import auth, cloudflare, tenants
from claw402.cloudflare import dispatcher
from claw402.control import authz
from claw402.datasets.ingest import FORMATS
from pyrun import python_output

# Each costs 0.05-0.2 s to import; a command that needs one imports it in its body.
HEAVY = (
    "alembic",
    "eth_utils",
    "httpx",
    "uvicorn",
    "sqlalchemy",
    "claw402.cloudflare",
    "claw402.control",
    "claw402.datasets",
    "claw402.ledger",
    "claw402.payments",
    "claw402.registry",
)


def test_option_defaults_copied_into_the_cli_match_their_sources():
    assert auth.API_KEY_ENV == authz.API_KEY_ENV
    assert cloudflare.DEFAULT_NAMESPACE == dispatcher.DEFAULT_NAMESPACE
    assert cloudflare.DEFAULT_SCRIPT_NAME == dispatcher.DEFAULT_SCRIPT_NAME
    assert get_args(tenants.Format) == FORMATS


def test_building_every_command_imports_no_heavy_module():
    """Typer resolves every command's annotations when it builds the command tree."""
    code = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from claw402.cli.main import app\n"
        "get_command(app)\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    assert python_output(code) == "[]"


def test_the_ledger_reads_payment_tables_without_the_x402_sdk():
    """`balance` and `reconcile` use the payments tables; loading them must not load the SDK."""
    code = (
        "import sys\n"
        "import claw402.ledger, claw402.ledger.claims, claw402.ledger.settlements\n"
        "print(sorted(m for m in sys.modules if m.startswith('x402')))\n"
    )
    assert python_output(code) == "[]"
