"""The layer contract (setup.cfg's [importlinter]) holds, and would catch an upward import."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "setup.cfg"), "--no-cache"], cwd=tree,
                          env=environment, capture_output=True, text=True, timeout=120)


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    shutil.copytree(ROOT / "xmpp_vtn", tmp_path / "xmpp_vtn", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    tree = copy_of_the_package(tmp_path)
    codes = tree / "xmpp_vtn" / "services" / "codes.py"
    codes.write_text(codes.read_text() + "\nfrom ..runtime import outbox  # noqa: E402,F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "xmpp_vtn.services.codes -> xmpp_vtn.runtime.outbox" in result.stdout


def test_the_product_does_not_import_test_support(tmp_path):
    tree = copy_of_the_package(tmp_path)
    component = tree / "xmpp_vtn" / "runtime" / "component.py"
    component.write_text(component.read_text() + "\nfrom ..testing import clock  # noqa: E402,F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "xmpp_vtn.runtime.component -> xmpp_vtn.testing.clock" in result.stdout
