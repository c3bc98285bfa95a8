"""The anvil process manager: free ports, fast start, dev keys, and no orphans."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from claw402.chain.anvil import Anvil, AnvilError
from claw402.chain.wallet import Wallet


def _rpc(url: str, method: str) -> object:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).json()[
        "result"
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state to tell.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_nodes_get_distinct_free_ports_and_stop_cleanly() -> None:
    started = time.perf_counter()
    with Anvil.start() as first, Anvil.start(chain_id=4242, accounts=3) as second:
        assert time.perf_counter() - started < 5
        assert first.port != second.port
        assert _rpc(first.rpc_url, "eth_chainId") == hex(31337)
        assert _rpc(second.rpc_url, "eth_chainId") == hex(4242)
        assert second.network == "eip155:4242"
        assert len(second.accounts) == 3
        pids = (first.process.pid, second.process.pid)
    assert not first.running and not second.running
    assert not any(_alive(pid) for pid in pids)


def test_dev_accounts_match_their_keys() -> None:
    with Anvil.start(accounts=2) as node:
        for account in node.accounts:
            assert Wallet.from_key(account.private_key).address == account.address
        # anvil's well-known first dev account
        assert node.accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_stop_is_idempotent() -> None:
    node = Anvil.start()
    node.stop()
    node.stop()
    assert not node.running


def test_bad_arguments_raise_with_anvil_output() -> None:
    with pytest.raises(AnvilError, match="exited"):
        Anvil.start(extra_args=["--no-such-flag"])


def test_node_dies_with_a_killed_parent() -> None:
    """Even SIGKILL of the owning Python process (no atexit) must not leave anvil behind."""
    script = textwrap.dedent(
        """
        import os, signal
        from claw402.chain.anvil import Anvil
        node = Anvil.start()
        print(node.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def test_atexit_stops_a_node_left_running() -> None:
    script = textwrap.dedent(
        """
        from claw402.chain.anvil import Anvil
        node = Anvil.start()
        print(node.process.pid, flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    pid = int(proc.stdout.split()[0])
    assert not _alive(pid)
