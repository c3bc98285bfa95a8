"""The official x402 JavaScript client (`@x402/fetch`), run with node: the interop check that
the gateway and the edge Workers are paid by a client that is not ours."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("js") / "pay.mjs"


def pay_with_js_client(
    url: str, private_key: str, network: str, asset: str, max_atomic: int
) -> dict[str, Any]:
    """Its report: `status`, `body` (JSON) and the decoded `paymentResponse`."""
    args = [url, private_key, network, asset, str(max_atomic)]
    proc = subprocess.run(
        ["node", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
