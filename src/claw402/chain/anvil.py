"""Run a local anvil node: start on a free port, wait until it answers, stop without orphans.

anvil binds port 0 itself and prints the port it got, so two nodes (two pytest-xdist workers,
a test beside `402claw dev`) never race for a port. Its dev accounts and their keys come from
the `--config-out` file it writes at startup. Three guards keep a node from outliving us:
`stop()`/the context manager, an `atexit` hook, and a parent-death signal (set through
`setpriv` when Python starts it from the main thread, since the kernel ties that signal to the
thread that forked).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from claw402.lifecycle import Stops, terminate
from claw402.nodetools import binary

DEFAULT_CHAIN_ID = 31337
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")
_POLL_SECONDS = 0.005


class AnvilError(RuntimeError):
    pass


@dataclass(frozen=True)
class DevAccount:
    """One of anvil's prefunded accounts (10,000 ETH each by default)."""

    address: str
    private_key: str


class Anvil(Stops):
    """A running anvil process. Build one with `Anvil.start(...)`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        workdir: Path,
        host: str,
        port: int,
        chain_id: int,
        accounts: tuple[DevAccount, ...],
    ) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.accounts = accounts
        self.owner_pid = os.getpid()
        self._workdir = workdir
        _live.add(self)

    @classmethod
    def start(
        cls,
        *,
        chain_id: int = DEFAULT_CHAIN_ID,
        accounts: int = 10,
        balance_eth: int = 10_000,
        host: str = "127.0.0.1",
        port: int = 0,
        block_time: float | None = None,
        timeout: float = 15.0,
        extra_args: Sequence[str] = (),
    ) -> Anvil:
        """Start anvil and return once its RPC port is open (~0.3 s).

        `port=0` lets anvil pick a free port; `block_time=None` mines each transaction
        as it arrives.
        """
        workdir = Path(tempfile.mkdtemp(prefix="claw402-anvil-"))
        log_path = workdir / "anvil.log"
        config_path = workdir / "config.json"
        cmd = [
            binary("anvil"),
            "--host", host,
            "--port", str(port),
            "--chain-id", str(chain_id),
            "--accounts", str(accounts),
            "--balance", str(balance_eth),
            "--config-out", str(config_path),
            *(["--block-time", str(block_time)] if block_time is not None else []),
            *extra_args,
        ]  # fmt: skip
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            cmd = [setpriv, "--pdeathsig", "KILL", *cmd]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            bound_port, config = _wait_until_listening(process, log_path, config_path, timeout)
        except BaseException:
            terminate(process)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        dev_accounts = tuple(
            DevAccount(address=to_checksum_address(address), private_key=key)
            for address, key in zip(
                config["available_accounts"], config["private_keys"], strict=True
            )
        )
        return cls(process, workdir, host, bound_port, chain_id, dev_accounts)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def network(self) -> str:
        """The CAIP-2 id x402 uses for this chain, e.g. `eip155:31337`."""
        return f"eip155:{self.chain_id}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """anvil's output so far (for error messages and debugging)."""
        path = self._workdir / "anvil.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL after 5 s) and remove its temp files."""
        terminate(self.process)
        shutil.rmtree(self._workdir, ignore_errors=True)
        _live.discard(self)

    def __repr__(self) -> str:
        return f"<Anvil {self.rpc_url} chain_id={self.chain_id} pid={self.process.pid}>"


def _wait_until_listening(
    process: subprocess.Popen[bytes], log_path: Path, config_path: Path, timeout: float
) -> tuple[int, dict[str, Any]]:
    """Poll anvil's log for its bound port and its config file for the dev keys."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        match = _LISTENING.search(text)
        if match and config_path.exists():
            try:
                return int(match.group(2)), json.loads(config_path.read_text())
            except json.JSONDecodeError:
                pass  # caught mid-write; read it again on the next poll
        if process.poll() is not None:
            raise AnvilError(f"anvil exited with code {process.returncode}:\n{text[-2000:]}")
        if time.monotonic() > deadline:
            raise AnvilError(f"anvil did not start within {timeout} s:\n{text[-2000:]}")
        time.sleep(_POLL_SECONDS)


# Nodes this process started and has not stopped; strong references so that a node dropped
# without stop() is still ended at interpreter exit.
_live: set[Anvil] = set()


@atexit.register
def _stop_all() -> None:
    for node in list(_live):
        if node.owner_pid == os.getpid():  # a forked child must not stop its parent's node
            node.stop()
