"""`402claw` installed from a wheel and run outside the checkout, as `pip install .` or pipx
leave it: the package data ships in the wheel, and `dev`/`demo` fetch the Node tools (the
lock file that ships in the package) into the per-user cache with `npm ci` on first use, or
stop with the command that installs npm. npm's own download cache (~/.npm, filled by
scripts/setup.sh) is reused, so nothing is downloaded twice.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from procs import run

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def ok(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    done = run([str(a) for a in args], timeout=300, **kwargs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel built from this checkout; its dependencies are
    this venv's, through a .pth file (the wheel is under test here, not PyPI)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: an in-tree build leaves build/ and egg-info behind
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ok([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", source])
    (wheel,) = (root / "dist").glob("claw402-*.whl")
    venv = root / "venv"
    ok([sys.executable, "-m", "venv", venv])
    ok([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel])
    (purelib,) = (venv / "lib").glob("python3.*/site-packages")
    (purelib / "zz_claw402_deps.pth").write_text(site.getsitepackages()[0] + "\n")
    check = ok([venv / "bin" / "python", "-m", "pip", "check"])  # the wheel's requirements
    assert "No broken requirements" in check.stdout
    return venv


def user_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAW402_")}
    return {**env, "COLUMNS": "200", **extra}


def test_installed_wheel_ships_its_data_and_fetches_its_node_tools(installed: Path, tmp_path):
    cli = installed / "bin" / "402claw"
    outside = tmp_path / "elsewhere"  # no checkout, no node_modules in any parent
    outside.mkdir()
    where = ok([installed / "bin" / "python", "-c",
                "import claw402, claw402.nodetools as n; print(claw402.__file__); "
                "print(n.MANIFEST)"], cwd=outside).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(installed) for p in where), where
    assert ok([cli, "--help"], cwd=outside).stdout.count("demo") >= 1

    # Without npm: a clear error naming the command that installs it; nothing is left half-made.
    no_npm = tmp_path / "bin"
    no_npm.mkdir()
    if shutil.which("apt-get"):
        (no_npm / "apt-get").symlink_to(shutil.which("apt-get"))
    empty_cache = tmp_path / "cache-without-npm"
    refused = run(
        [str(cli), "demo"],
        cwd=outside,
        env=user_env(tmp_path, PATH=str(no_npm), CLAW402_NODE_CACHE=str(empty_cache)),
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "npm is not installed" in refused.stderr and "Traceback" not in refused.stderr
    if shutil.which("apt-get"):
        assert "apt-get install -y nodejs npm" in refused.stderr
    assert not any(p.name != ".lock" for p in empty_cache.rglob("*"))

    # With npm: the first use installs the lock file's tools into the cache, and says so.
    cache = tmp_path / "node-cache"
    env = user_env(tmp_path, CLAW402_NODE_CACHE=str(cache))
    demo = ok([cli, "demo"], cwd=outside, env=env)
    assert "installing its Node tools" in demo.stderr and "npm ci" in demo.stderr
    assert "-> 402 payment_required" in demo.stdout and "settlement tx 0x" in demo.stdout
    assert "available $0.00095" in demo.stdout
    anvil = ok([installed / "bin" / "python", "-c",
                "from claw402.nodetools import binary; print(binary('anvil'))"],
               cwd=outside, env=env).stdout.strip()  # fmt: skip
    assert Path(anvil).is_relative_to(cache) and os.access(anvil, os.X_OK)
    again = ok([cli, "demo"], cwd=outside, env=env)  # the cache is used as it is
    assert "installing" not in again.stderr and "settlement tx 0x" in again.stdout
