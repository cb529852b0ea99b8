"""Every stage's deps in dvc.yaml cover the code it runs (its import closure in src/stn)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

# Imports the stage script without running main() and lists the project modules it loaded.
CLOSURE = """
import runpy, sys, pathlib
runpy.run_path(sys.argv[1], run_name="closure")
src = pathlib.Path("src").resolve()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path and pathlib.Path(path).resolve().is_relative_to(src):
        print(pathlib.Path(path).resolve().relative_to(src.parent))
"""


def _stage(name: str) -> dict:
    stage = PIPELINE[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("name", list(PIPELINE))
def test_stage_deps_cover_its_import_closure(name: str) -> None:
    stage = _stage(name)
    script = stage["cmd"].split()[1]
    deps = [d for d in stage["deps"] if "$" not in d]
    assert script in deps, f"{name}: its script {script} is not a dep"
    result = subprocess.run(
        [sys.executable, "-c", CLOSURE, script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = sorted(set(result.stdout.split()))
    assert imported, f"{name}: no project module imported?"
    missing = [f for f in imported if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not missing, f"{name}: dvc.yaml deps miss {missing}"
