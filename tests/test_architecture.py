"""The layering rules of ARCHITECTURE.md hold: import-linter's contracts in pyproject.toml are kept,
and the independence contracts name every tool package there is."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("matting", "face_swap", "assistant", "voice_conversion")
#: Tool pages: the four tools and Go live (whose engine, workers.live, runs two tools together and so is
#: not one of the independent tool workers).
PAGES = (*TOOLS, "live")


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c.get("id", c["name"]): c for c in config["tool"]["importlinter"]["contracts"]}


def _tool_packages(root: str, tools: tuple[str, ...]) -> set[str]:
    found = {p.parent.name for p in (ROOT / root).glob("*/__init__.py")}
    return {f"{root}.{name}" for name in found if name in tools}


@pytest.mark.parametrize(
    ("contract", "root", "tools"),
    [("tool-pages-independent", "snowai_studio", PAGES), ("tool-workers-independent", "workers", TOOLS)],
)
def test_independence_contracts_name_every_tool(contract: str, root: str, tools: tuple[str, ...]) -> None:
    c = _contracts()[contract]
    assert c["type"] == "independence"
    assert set(c["modules"]) == _tool_packages(root, tools) == {f"{root}.{tool}" for tool in tools}


def test_every_import_contract_is_kept() -> None:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for name in ("Tool pages are independent of each other", "Tool workers are independent of each other"):
        assert f"{name} KEPT" in run.stdout
    assert " BROKEN" not in run.stdout
