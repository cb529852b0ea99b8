"""The report stages' outputs are functions of their declared inputs alone: rerun on the same
inputs, `compare` and `benchmark` write the same bytes, without the models or the data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import dvc, make_project, tiny_params

REPORT_STAGES = ("compare", "benchmark")


def _outputs(project: Path, stage: dict) -> dict[str, bytes]:
    """Every file of the stage's declared outs (folders walked), by path relative to `project`."""
    files = {}
    for out in stage["outs"]:
        path = project / (out if isinstance(out, str) else next(iter(out)))
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        files |= {p.relative_to(project).as_posix(): p.read_bytes() for p in found if p.is_file()}
    return files


@pytest.mark.slow
def test_report_stages_rerun_to_the_same_bytes(tiny_mirror: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", tiny_params())
    dvc(project, "repro", env={**os.environ, "MNIST_MIRROR": str(tiny_mirror)})
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    first = {name: _outputs(project, stages[name]) for name in REPORT_STAGES}
    assert "reports/results.md" in first["compare"] and "reports/benchmark.md" in first["benchmark"]

    # Neither report may read the weights or the data: both folders go, and DVC reruns the two
    # stages (their declared deps are all still there).
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for folder in ("models", "data"):
        (project / folder).rename(hidden / folder)
    for name in REPORT_STAGES:
        dvc(project, "repro", "--force", "--single-item", name)
        again = _outputs(project, stages[name])
        assert sorted(again) == sorted(first[name])
        changed = [path for path in first[name] if again[path] != first[name][path]]
        assert not changed, f"{name}: rerun on the same inputs changed {changed}"
