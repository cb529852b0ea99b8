"""A stage reruns exactly when what it reads changes: its code (the import closure of its script,
generated into dvc.yaml by `stn.stage_deps`) and its own params keys."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, dvc, make_project, tiny_params

from stn.stage_deps import code_closure, main, stage_scripts

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
SCRIPTS = stage_scripts(PIPELINE)

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


def test_dvc_yaml_code_deps_are_generated_and_current() -> None:
    """dvc.yaml's code deps are what `python -m stn.stage_deps --write` makes of today's imports."""
    assert main(["--root", str(ROOT)]) == 0, "run: python -m stn.stage_deps --write"


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_stage_deps_cover_what_python_imports(name: str) -> None:
    """The generated closure (read from the source) holds every module Python actually loads."""
    body = PIPELINE["stages"][name].get("do", PIPELINE["stages"][name])
    deps = [d for d in body["deps"] if "$" not in d]
    assert deps[0] == SCRIPTS[name], f"{name}: its script is not its first dep"
    result = subprocess.run(
        [sys.executable, "-c", CLOSURE, SCRIPTS[name]], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = sorted(set(result.stdout.split()))
    assert imported, f"{name}: no project module imported?"
    missing = [f for f in imported if not any(f == d or f.startswith(d + "/") for d in deps)]
    assert not missing, f"{name}: dvc.yaml deps miss {missing}"


def test_training_code_does_not_depend_on_the_study_schema_or_the_reports() -> None:
    for script in ("stages/train.py", "stages/evaluate.py", "stages/rotation.py", "stages/prepare.py"):
        closure = code_closure(Path(script), ROOT)
        assert "src/stn/params/run.py" in closure
        assert not [f for f in closure if f.startswith("src/stn/params/study") or "report" in f], script
    report = code_closure(Path("stages/benchmark.py"), ROOT)
    assert "src/stn/params/study.py" in report and "src/stn/analysis/benchmark_report.py" in report
    assert "src/stn/training/loop.py" not in report  # reports never train


# --- with DVC, on a tiny study ------------------------------------------------------------------
DATASETS = ("rot", "rts", "proj", "elastic")


@pytest.fixture(scope="module")
def study(tiny_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study on every dataset of params.yaml, reproduced and committed; each distorted
    dataset has its own train section, as in params.yaml (where rot, proj and elastic once shared
    one through a YAML anchor)."""
    params = tiny_params(distorted=DATASETS)
    for name in DATASETS:
        params["datasets"][name]["train"] = {"epochs": 1, "momentum": 0.9}
    project = make_project(tmp_path_factory.mktemp("deps") / "p", params)
    dvc(project, "repro", env={**os.environ, "MNIST_MIRROR": str(tiny_mirror)})
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "study"], cwd=project, check=True)
    return project


def _stale(project: Path) -> set[str]:
    from dvc.repo import Repo

    with contextlib.chdir(project), Repo(".") as repo:  # stage names, not paths from elsewhere
        return set(repo.status())


def _instances(project: Path) -> dict[str, str]:
    """Every stage instance (e.g. train-upright@mnist-cnn) -> its script."""
    from dvc.repo import Repo

    scripts = stage_scripts(yaml.safe_load((project / "dvc.yaml").read_text()))
    with contextlib.chdir(project), Repo(".") as repo:
        return {stage.addressing: scripts[stage.addressing.split("@")[0]] for stage in repo.index.stages}


@pytest.mark.slow
def test_editing_a_module_stales_exactly_the_stages_that_import_it(study: Path) -> None:
    """Each module under src/ edited in turn: `dvc status` lists the stages whose closure holds it,
    and no others (a report module or the study schema stales no training)."""
    assert _stale(study) == set()
    instances = _instances(study)
    closures = {script: set(code_closure(Path(script), study)) for script in set(instances.values())}
    modules = sorted(p.relative_to(study).as_posix() for p in (study / "src").rglob("*.py"))
    assert len(modules) > 40
    for module in modules:
        path = study / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        try:
            stale = _stale(study)
        finally:
            path.write_bytes(original)
        expected = {name for name, script in instances.items() if module in closures[script]}
        assert stale == expected, f"editing {module}"
    assert _stale(study) == set()
    trained = {name for name in instances if name.startswith("train-")}
    assert not any(name.startswith("train-") for name in _edited(study, "src/stn/params/study.py"))
    assert trained <= _edited(study, "src/stn/training/loop.py")


def _edited(project: Path, module: str) -> set[str]:
    path = project / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited\n")
    try:
        return _stale(project)
    finally:
        path.write_bytes(original)


def _queued_params(project: Path, key_value: str) -> dict:
    """params.yaml as `dvc exp run --queue -S key=value` stashes it for the queued experiment."""
    dvc(project, "exp", "run", "--queue", "-S", key_value)
    text = subprocess.run(
        ["git", "show", "refs/exps/celery/stash:params.yaml"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    dvc(project, "queue", "remove", "--all")
    return yaml.safe_load(text)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("datasets.mnist.validation", 32),
        ("datasets.rot.train.momentum", 0.3),
        ("datasets.rts.train.momentum", 0.3),
        ("datasets.proj.seed", 7),
        ("datasets.elastic.train.epochs", 2),
    ],
)
def test_exp_run_set_changes_one_dataset_only(study: Path, key: str, value: object) -> None:
    """`dvc exp run -S` on one dataset's key: the queued params.yaml differs in that key alone,
    and with it `dvc status` finds only that dataset's stages (and the reports) out of date."""
    original = (study / "params.yaml").read_text()
    before = yaml.safe_load(original)
    queued = _queued_params(study, f"{key}={value}")
    *parents, last = key.split(".")
    expected = yaml.safe_load(original)
    node = expected
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    assert queued == expected, f"-S {key}={value} changed other keys too (or was dropped)"
    assert before == yaml.safe_load((study / "params.yaml").read_text())  # the workspace untouched
    dataset = parents[1]
    (study / "params.yaml").write_text(yaml.safe_dump(queued, sort_keys=False))
    try:
        stale = _stale(study)
    finally:
        (study / "params.yaml").write_text(original)
    own = {s for s in stale if s.endswith(f"@{dataset}") or f"@{dataset}-" in s}
    assert own and stale - own <= {"compare", "benchmark", "table1-report"}, stale


def test_imports_under_type_checking_are_no_deps(tmp_path: Path) -> None:
    """An import only for annotations (`if TYPE_CHECKING:`) never runs: it is no dependency."""
    from stn.stage_deps import _imported_modules

    script = tmp_path / "script.py"
    script.write_text(
        "from typing import TYPE_CHECKING\nimport stn.errors\n"
        "if TYPE_CHECKING:\n    from stn.params.study import StudySpec\n"
    )
    assert _imported_modules(script, ROOT / "src") == {"stn.errors"}


def test_the_lock_records_only_stages_of_the_pipeline() -> None:
    """DVC keeps the dvc.lock entry of a stage removed from dvc.yaml: none may linger (they made
    every DVC command parse 431 dead entries once)."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {stage.addressing for stage in repo.index.stages}
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    assert not set(lock) - stages
