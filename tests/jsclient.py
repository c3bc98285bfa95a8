"""The official x402 JavaScript client (`@x402/fetch`), run with node: the interop check that
the gateway and the edge Workers are paid by a client that is not ours."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("js") / "pay.mjs"


def pay_with_js_client(
    url: str,
    private_key: str,
    network: str,
    asset: str,
    max_atomic: int,
    *,
    channels: Path | None = None,
) -> dict[str, Any]:
    """Its report: `status`, `body` (JSON) and the decoded `paymentResponse`.

    With `channels` (a folder for its channel state) it pays with `@x402/evm`'s
    `batch-settlement` client instead of `exact`.
    """
    args = [url, private_key, network, asset, str(max_atomic)]
    if channels is not None:
        args += ["batch-settlement", str(channels)]
    proc = subprocess.run(
        ["node", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
