"""Processes a test starts, stopped and reaped whatever happens to the test.

`running` starts a command in a session (process group) of its own and, on the way out (an
assertion failed, the test passed, Ctrl-C), asks it to stop (SIGTERM: `402claw serve`, `dev`
and the facilitator shut down what they started), then kills what is left of the group and
reaps the process. Killing only the process leaves its children behind: granian's workers and
the event writer of `402claw serve`, the anvil of `402claw dev`.

`leftovers` finds the processes a test session started and left running: every process this
module starts carries `RUN_MARKER` in its environment (set in `tests/conftest.py`), and so do
their children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

RUN_MARKER = "PYTEST_CLAW402_RUN"  # not CLAW402_*: tests drop those from the env
# What the run must stop: the CLI, the Node tools and the gateway's event writer child.
WATCHED = ("402claw", "anvil", "workerd", "claw402.events.writer")


@contextmanager
def running(
    args: Sequence[str], *, grace: float = 10.0, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    proc = subprocess.Popen(list(args), start_new_session=True, **popen)
    try:
        yield proc
    finally:
        stop(proc, grace)


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, `grace` seconds to finish, then SIGKILL to the whole group; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with suppress(ProcessLookupError, PermissionError):  # the group outlives its leader
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def run(
    args: Sequence[str], *, timeout: float = 120, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(capture_output=True, text=True)` that stops the whole group on timeout."""
    with running(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, **popen,
    ) as proc:  # fmt: skip
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(list(args), proc.returncode, out, err)


def leftovers(marker: str) -> list[str]:
    """`pid command` of every live process (not a zombie) started under `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if f"{RUN_MARKER}={marker}".encode() not in environ.split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z" and any(name in command for name in WATCHED):
            found.append(f"{entry.name} {command[:200]}")
    return found


def wait_for_no_leftovers(marker: str, timeout: float = 10.0) -> list[str]:
    """The leftovers still alive after `timeout` (processes being stopped get that long)."""
    deadline = time.monotonic() + timeout
    while (found := leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found
