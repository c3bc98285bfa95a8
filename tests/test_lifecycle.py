"""`lifecycle`: `with part:` stops the part, and `terminate` ends a child that ignores SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from claw402.lifecycle import Stops, terminate
from procs import running

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_terminate_asks_first():
    with running([sys.executable, "-c", "import time; time.sleep(60)"]) as proc:
        terminate(proc)
        assert proc.returncode == -signal.SIGTERM


def test_terminate_kills_a_process_that_ignores_sigterm():
    with running([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        terminate(proc, grace=0.3)
        assert proc.returncode == -signal.SIGKILL


def test_with_stops_the_part_even_when_the_block_fails():
    class Part(Stops):
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    with pytest.raises(RuntimeError), Part() as part:
        raise RuntimeError("inside")
    assert part.stopped == 1
