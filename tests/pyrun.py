"""Run Python in a fresh interpreter: what a module imports shows only in a clean process."""

from __future__ import annotations

import subprocess
import sys


def python_output(code: str) -> str:
    """What `code` prints, stripped; a failure raises with the child's stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
