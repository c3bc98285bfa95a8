"""The committed artifacts are exactly what the committed Solidity compiles to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from claw402.chain import build
from claw402.nodetools import NodeToolMissing


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, Any]]:
    """A fresh solcjs compilation (~3 s), shared by the module."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot run solcjs to check the artifacts")
    try:
        build.solc_path()
    except (NodeToolMissing, build.CompileError) as exc:
        pytest.skip(f"solc from npm is not installed ({exc}); run `npm ci` to check artifacts")
    return build.compile_contracts()


def test_committed_artifacts_match_sources(compiled: dict[str, dict[str, Any]]) -> None:
    assert build.stale_artifacts(compiled) == [], "run: python -m claw402.chain.build"


def test_a_stale_artifact_is_detected(
    compiled: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "ARTIFACTS_DIR", tmp_path)
    build.write_artifacts(compiled)
    assert build.stale_artifacts(compiled) == []
    edited = json.loads((tmp_path / "ClawUSD.json").read_text())
    edited["bytecode"] = edited["bytecode"][:-2] + "00"
    (tmp_path / "ClawUSD.json").write_text(build.render(edited))
    (tmp_path / "Multicall3.json").unlink()
    assert build.stale_artifacts(compiled) == ["ClawUSD", "Multicall3"]


def test_artifact_records_compiler_and_eip3009_abi() -> None:
    data = json.loads((build.ARTIFACTS_DIR / "ClawUSD.json").read_text())
    assert data["compiler"]["version"].startswith("0.8.37")
    assert data["compiler"]["settings"]["evmVersion"] == "cancun"
    assert len(data["sourceSha256"]) == 64
    names = {item.get("name") for item in data["abi"]}
    assert {
        "transferWithAuthorization",
        "receiveWithAuthorization",
        "cancelAuthorization",
        "authorizationState",
        "AuthorizationUsed",
        "AuthorizationCanceled",
        "DOMAIN_SEPARATOR",
        "eip712Domain",
        "version",
    } <= names
    overloads = [i for i in data["abi"] if i.get("name") == "transferWithAuthorization"]
    assert sorted(len(i["inputs"]) for i in overloads) == [7, 9]  # bytes and v/r/s
