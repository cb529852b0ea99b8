"""DVC the way its users work with this project: metrics, experiments, queues, a shared remote.

One tiny study (`upright`: cnn and stn-conv on mnist; `distorted`: cnn-aug and stn-conv on rts;
1 epoch, 1 seed) is reproduced and committed once per module; tests that change it work on a copy.
Tables are read as a person reads them: `COLUMNS=120`, every line at most 120 characters, no column
collapsed to "…".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, dvc, make_project, tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WIDTH = 120
# The headline: the mean test accuracy (%) per dataset.variant, one file per study.
HEADLINE = {"metrics/upright.json", "metrics/distorted.json", "metrics/table1.json"}
HEADLINE_KEYS = {"mnist.cnn", "mnist.stn-conv", "rts.cnn-aug", "rts.stn-conv"}
# The summaries over seeds (acc, sd, CI, NLL, ...), one file per (dataset, variant): a path away.
SUMMARIES = {
    "metrics/upright/cnn.json",
    "metrics/upright/stn-conv.json",
    "metrics/distorted/rts-cnn-aug.json",
    "metrics/distorted/rts-stn-conv.json",
}
SUMMARY_DIRS = ("metrics/upright", "metrics/distorted")
PER_RUN = {
    "metrics/eval/upright/mnist/cnn/s0.json",
    "metrics/eval/upright/mnist/stn-conv/s0.json",
    "metrics/eval/distorted/rts/cnn-aug/s0.json",
    "metrics/eval/distorted/rts/stn-conv/s0.json",
}
STN_CONV_SUMMARIES = {"metrics/upright/stn-conv.json", "metrics/distorted/rts-stn-conv.json"}
STN_CONV_STAGES = {
    "train-upright@mnist-stn-conv",
    "train-distorted@rts-stn-conv",
    "evaluate-upright@mnist-stn-conv",
    "evaluate-distorted@rts-stn-conv",
    "rotation-upright@mnist-stn-conv",
    "compare",
    "benchmark",
    "table1-report",  # re-checks the distorted study's verdicts: it reads stn-conv's runs
}
# Cached by DVC (`cache: true`, the default): what `dvc push` / `dvc pull` move. Everything else the
# pipeline writes (models, metrics, plots, reports) is `cache: false` and travels with git.
CACHED_OUTS = {"data/raw/mnist", "data/mnist", "data/rts"}
LOC_LR = "variants.stn-conv.loc_lr_scale"
STN_CONV_KEYS = (("metrics/upright.json", "mnist.stn-conv"), ("metrics/distorted.json", "rts.stn-conv"))


def _readme_experiment_commands() -> dict[str, list[list[str]]]:
    """The commands of the README's "Trying an idea as an experiment" block, by subcommand
    (`run`, `show`, `diff`), each split as a shell splits it: the tests run the README's flags."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Trying an idea as an experiment\n.*?```sh\n(.*?)```", readme, re.DOTALL).group(1)
    commands: dict[str, list[list[str]]] = {}
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["dvc", "exp"]:
            commands.setdefault(words[2], []).append(words[1:])
    return commands


EXP_SHOW = tuple(_readme_experiment_commands()["show"][0])


def _env(mirror: Path | str | None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MNIST_MIRROR"}
    if mirror is not None:
        env["MNIST_MIRROR"] = str(mirror)
    return {**env, "COLUMNS": str(WIDTH), **extra}


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def _git(project: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True).stdout


def _commit(project: Path, message: str) -> None:
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", message)


def _rows(table: str) -> set[str]:
    """First cells of a `dvc metrics show/diff` table's rows (the metrics file paths)."""
    return {line.split()[0] for line in table.splitlines()[1:] if line.strip()}


def _assert_fits(table: str, readable: bool = True) -> None:
    lines = table.splitlines()
    assert lines, "empty table"
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, f"{len(too_wide)} lines wider than {WIDTH}:\n{table}"
    if readable:
        assert "…" not in table, f"a column was collapsed to fit {WIDTH} characters:\n{table}"


def _edit_params(project: Path, edit) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _experiments(exp_show_json: str) -> dict[str, dict]:
    """Every named experiment of `dvc exp show --json`, name -> its `data` (rev, params, metrics)."""
    found: dict[str, dict] = {}

    def walk(node) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("name") and isinstance(node.get("data"), dict) and "params" in node["data"]:
                found[node["name"]] = node["data"]
            for key, value in node.items():
                if key != "data":
                    walk(value)

    walk(json.loads(exp_show_json))
    return found


def _param(data: dict, dotted: str):
    value = data["params"]["params.yaml"]["data"]
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _metric(data: dict, path: str, dotted: str):
    value = data["metrics"][path]["data"]
    for key in dotted.split("."):
        value = value[key]
    return value


@pytest.fixture(scope="module")
def study(tiny_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny study, reproduced and committed; copy it before changing it."""
    params = tiny_params(distorted=("rts",), distorted_variants=("cnn-aug", "stn-conv"))
    project = make_project(tmp_path_factory.mktemp("study") / "p", params)
    dvc(project, "repro", env=_env(tiny_mirror))
    _commit(project, "study")
    return project


def _copy(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest, symlinks=True)
    return dest


def test_metrics_show_headline_by_default_summaries_and_runs_by_path(study: Path) -> None:
    """`dvc metrics show` is the headline (one accuracy per dataset.variant); the summaries over
    seeds and the per-run files are a path away, the summaries in a 120-column table."""
    headline = dvc(study, "metrics", "show", env=_env(None)).stdout
    _assert_fits(headline)
    assert _rows(headline) == HEADLINE
    assert set(headline.splitlines()[0].split()) == {"Path"} | HEADLINE_KEYS
    assert "metrics/eval" not in headline

    summaries = dvc(study, "metrics", "show", *SUMMARY_DIRS, env=_env(None)).stdout
    _assert_fits(summaries)
    assert _rows(summaries) == SUMMARIES
    assert summaries.splitlines()[0].split()[:2] == ["Path", "acc"]

    per_run = dvc(study, "metrics", "show", "metrics/eval", env=_env(None)).stdout
    assert _rows(per_run) == PER_RUN  # 20 columns (per-class accuracy): wider than 120, use --json
    per_run_json = json.loads(dvc(study, "metrics", "show", "metrics/eval", "--json").stdout)
    assert set(per_run_json[""]["data"]) == PER_RUN


def test_metrics_show_summaries_fit_the_full_study(study: Path, tmp_path: Path) -> None:
    """The summaries table of the default study (every run of params.yaml, 3 seeds) fits 120 columns.

    No training: the tiny study's summary files, with its schema, are written under the full
    study's names, their values made as wide as 3 seeds make them (sd and CI are null for 1 seed).
    """
    project = _copy(study, tmp_path / "p")
    template = json.loads((project / "metrics" / "upright" / "stn-conv.json").read_text())
    wide = {key: 99.999 if value is None else value for key, value in template.items()} | {"seeds": 3}
    studies = yaml.safe_load((ROOT / "params.yaml").read_text())["studies"]
    names = [f"upright/{v}" for v in studies["upright"]["variants"]]
    names += [
        f"distorted/{d}-{v}"
        for d in studies["distorted"]["datasets"]
        for v in studies["distorted"]["variants"]
    ]
    for name in names:
        (project / "metrics" / f"{name}.json").write_text(json.dumps(wide))
    table = dvc(project, "metrics", "show", *SUMMARY_DIRS, env=_env(None)).stdout
    _assert_fits(table)
    assert _rows(table) == {f"metrics/{name}.json" for name in names} | SUMMARIES
    assert set(table.splitlines()[0].split()[1:]) == set(wide)


def test_metrics_diff_after_editing_one_variant(study: Path, tiny_mirror: Path, tmp_path: Path) -> None:
    """Edit one variant, `dvc repro`: `dvc metrics diff` shows that variant's accuracies and no others."""
    project = _copy(study, tmp_path / "p")
    _edit_params(project, lambda p: p["variants"]["stn-conv"].update(layer="coordconv"))
    params_diff = json.loads(dvc(project, "params", "diff", "--json").stdout)
    assert params_diff == {"params.yaml": {"variants.stn-conv.layer": {"old": "conv", "new": "coordconv"}}}
    assert _ran(dvc(project, "repro", env=_env(tiny_mirror)).stdout) == STN_CONV_STAGES

    text = dvc(project, "metrics", "diff", env=_env(None)).stdout
    _assert_fits(text)
    assert text.splitlines()[0].split() == ["Path", "Metric", "HEAD", "workspace", "Change"]
    assert _rows(text) == HEADLINE - {"metrics/table1.json"}  # the tiny project has no Table 1 runs
    assert "cnn" not in text
    as_json = json.loads(dvc(project, "metrics", "diff", "--json").stdout)
    assert {path: set(keys) for path, keys in as_json.items()} == {
        "metrics/upright.json": {"mnist.stn-conv"},
        "metrics/distorted.json": {"rts.stn-conv"},
    }
    summaries = json.loads(dvc(project, "metrics", "diff", "--targets", *SUMMARY_DIRS, "--json").stdout)
    assert set(summaries) == STN_CONV_SUMMARIES
    assert {"acc", "nll"} <= set(summaries["metrics/upright/stn-conv.json"])
    per_run = json.loads(dvc(project, "metrics", "diff", "--targets", "metrics/eval", "-R", "--json").stdout)
    assert set(per_run) == {
        "metrics/eval/upright/mnist/stn-conv/s0.json",
        "metrics/eval/distorted/rts/stn-conv/s0.json",
    }


def test_exp_run_set_param_reruns_only_that_variant(study: Path, tiny_mirror: Path, tmp_path: Path) -> None:
    """`dvc exp run -S` on one variant's key; the README's `dvc exp show` readable in 120 columns."""
    project = _copy(study, tmp_path / "p")
    # loc_lr_scale is not in params.yaml (VariantSpec's default applies): Hydra's `+` adds a key;
    # a key already in params.yaml is set without it (`++` does either).
    run = dvc(project, "exp", "run", "-S", f"+{LOC_LR}=0.5", env=_env(tiny_mirror))
    assert _ran(run.stdout) == STN_CONV_STAGES
    name = re.search(r"Ran experiment\(s\): (\S+)", run.stdout).group(1)

    experiments = _experiments(dvc(project, "exp", "show", "--json").stdout)
    assert _param(experiments[name], LOC_LR) == 0.5
    assert _param(experiments[_git(project, "branch", "--show-current").strip()], LOC_LR) is None
    for path, key in STN_CONV_KEYS:
        assert 0 <= _metric(experiments[name], path, key) <= 100

    # DVC's default table squeezes every param, metric and dependency into 120 columns ("…").
    _assert_fits(dvc(project, "exp", "show", "--no-pager", "--only-changed", env=_env(None)).stdout, False)
    table = dvc(project, *EXP_SHOW, env=_env(None)).stdout
    _assert_fits(table)
    # --only-changed: the accuracies this tiny run changed (one may tie), then the param
    base = experiments[_git(project, "branch", "--show-current").strip()]
    changed = [
        key
        for path, key in STN_CONV_KEYS
        if _metric(experiments[name], path, key) != _metric(base, path, key)
    ]
    assert table.splitlines()[1].split() == ["Experiment", *changed, LOC_LR], table
    assert re.search(rf"\[{name}\](\s+[\d.]+){{{len(changed)}}}\s+0\.5\b", table), table


def _set_param(params: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        params = params.setdefault(key, {})
    params[last] = value


def _affected(param: str, dataset: str, variant: str) -> bool:
    """Whether a run of (dataset, variant) reads `param` (a variant's or a dataset's key)."""
    section, name = param.split(".")[:2]
    return (section, name) in (("variants", variant), ("datasets", dataset))


def _save_simulated_experiment(project: Path, setting: str) -> tuple[str, str, str, dict[str, str]]:
    """`dvc exp run -S SETTING` without the training: set the param, give every headline accuracy the
    change reaches a new value, `dvc exp save`, and restore the workspace (as `dvc exp run` leaves it).
    Returns (experiment name, param, its value as shown, {dataset.variant: the new value as shown})."""
    param, value = setting.lstrip("+").split("=", 1)
    _edit_params(project, lambda p: _set_param(p, param, yaml.safe_load(value)))
    changed: dict[str, str] = {}
    for path in sorted(HEADLINE):
        headline = json.loads((project / path).read_text())
        for dataset, accuracies in headline.items():
            for variant in accuracies:
                if _affected(param, dataset, variant):
                    accuracies[variant] = 11.111 * (len(changed) + 1)  # distinct, unlike any accuracy
                    changed[f"{dataset}.{variant}"] = f"{accuracies[variant]:g}"
        (project / path).write_text(json.dumps(headline))
    saved = dvc(project, "exp", "save", env=_env(None)).stdout
    name = re.search(r"Experiment has been saved as: (\S+)", saved).group(1)
    _git(project, "checkout", "--", ".")
    return name, param, value, changed


def test_readme_experiment_examples_fit(study: Path, tmp_path: Path) -> None:
    """Each of the README's `dvc exp run -S` examples, simulated on the tiny study: the README's
    `dvc exp show` shows the changed param and every changed accuracy in 120 columns, and its
    `dvc exp diff` a line for each."""
    commands = _readme_experiment_commands()
    settings = [run[run.index("-S") + 1] for run in commands["run"]]
    assert len(settings) == 2 and commands["show"] and commands["diff"]
    project = _copy(study, tmp_path / "p")
    for setting in settings:
        name, param, value, changed = _save_simulated_experiment(project, setting)
        assert changed, f"{setting}: no headline accuracy of the tiny study depends on {param}"
        for show in commands["show"]:
            table = dvc(project, *show, env=_env(None)).stdout
            _assert_fits(table)
            header = table.splitlines()[1].split()
            assert header[0] == "Experiment" and sorted(header[1:]) == sorted([*changed, param]), table
            row = next(line for line in table.splitlines() if f"[{name}]" in line)
            assert dict(zip(header[1:], row.split()[-len(header) + 1 :], strict=True)) == {
                **changed,
                param: value,
            }, table
        for diff in commands["diff"]:
            text = dvc(project, *[name if w == "<experiment>" else w for w in diff], env=_env(None)).stdout
            _assert_fits(text)
            lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
            for key, shown in [*changed.items(), (param, value)]:
                assert shown in lines[key], text
        dvc(project, "exp", "remove", name)


def test_queued_experiments_run_in_workers(study: Path, tiny_mirror: Path, tmp_path: Path) -> None:
    """`dvc exp run --queue` twice, `dvc queue start --jobs 2`: both land in `dvc exp show`.

    Queued experiments run in temporary copies of the repo, with the environment of
    `dvc queue start`: MNIST_MIRROR, an absolute path, reaches them (a third, download-only
    experiment logs which mirror it read).
    """
    project = _copy(study, tmp_path / "p")
    queue_mirror = tmp_path / "queue-mirror"
    shutil.copytree(tiny_mirror, queue_mirror)
    names = {}
    for value in (0.2, 0.8):
        queued = dvc(project, "exp", "run", "--queue", "-S", f"+{LOC_LR}={value}").stdout
        names[value] = re.search(r"Queued experiment '(\S+)'", queued).group(1)
    queued = dvc(project, "exp", "run", "--queue", "-f", "download").stdout
    download_only = re.search(r"Queued experiment '(\S+)'", queued).group(1)
    try:
        dvc(project, "queue", "start", "--jobs", "2", env=_env(queue_mirror))  # returns at once
        deadline = time.monotonic() + 600
        while True:
            status = dvc(project, "queue", "status").stdout
            states = {
                name: line.split()[-1]
                for line in status.splitlines()
                for name in (*names.values(), download_only)
                if name in line.split()
            }
            if any(state == "Failed" for state in states.values()):
                logs = {n: dvc(project, "queue", "logs", n, check=False).stdout for n in states}
                pytest.fail(f"a queued experiment failed:\n{status}\n{logs}")
            if len(states) == 3 and set(states.values()) == {"Success"}:
                break
            assert time.monotonic() < deadline, f"queue not done in time:\n{status}"
            time.sleep(5)
    finally:
        dvc(project, "queue", "stop", "--kill", check=False)

    assert _git(project, "status", "--porcelain") == ""  # the workspace is untouched
    experiments = _experiments(dvc(project, "exp", "show", "--json").stdout)
    for value, name in names.items():
        assert _param(experiments[name], LOC_LR) == value
        for path, key in STN_CONV_KEYS:
            assert 0 <= _metric(experiments[name], path, key) <= 100
    logs = dvc(project, "queue", "logs", names[0.2]).stdout
    assert _ran(logs) == STN_CONV_STAGES
    assert f"download: MNIST from {queue_mirror}" in dvc(project, "queue", "logs", download_only).stdout
    provenance = json.loads(
        _git(project, "show", f"{experiments[download_only]['rev']}:reports/data-provenance.json")
    )
    assert "source" not in provenance and provenance["identity"] == "unknown"  # no path in outputs

    table = dvc(project, *EXP_SHOW, env=_env(None)).stdout
    _assert_fits(table)
    for value, name in names.items():  # queued runs add State and Executor; a tied accuracy drops out
        row = next(line for line in table.splitlines() if f"[{name}]" in line)
        assert row.split()[-1] == str(value), table


def test_shared_remote_push_clone_pull(study: Path, tmp_path: Path) -> None:
    """`dvc push` to a shared remote; a `git clone` + `dvc pull` is up to date without the data source."""
    project = _copy(study, tmp_path / "p")
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "shared", str(remote))
    _commit(project, "shared DVC remote")  # .dvc/config: the clone knows the remote
    pushed = dvc(project, "push").stdout
    assert re.search(r"\d+ files? pushed", pushed), pushed

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    assert (
        clone / "models" / "upright" / "mnist" / "stn-conv" / "s0.pt"
    ).is_file()  # cache: false outputs: in git
    assert (clone / "metrics" / "upright" / "stn-conv.json").is_file()
    assert not (clone / "data").exists()  # cached outputs: not in git
    assert "Data and pipelines are up to date" not in dvc(clone, "status").stdout

    pulled = dvc(clone, "pull").stdout
    added = {line.split()[1].rstrip("/") for line in pulled.splitlines() if line.startswith("A ")}
    assert added == CACHED_OUTS, pulled
    assert dvc(clone, "status").stdout.strip().startswith("Data and pipelines are up to date")
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    repro = dvc(clone, "repro", env=_env(empty))
    assert _ran(repro.stdout) == set(), repro.stdout
    assert not list(empty.iterdir())
