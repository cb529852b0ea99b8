"""The real pipeline: `dvc repro` in a temporary git repo on tiny data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import N_TEST, N_TRAIN, dvc, make_project, mirror_spellings, tiny_params

PNG = b"\x89PNG\r\n\x1a\n"


def _env(mirror: Path) -> dict:
    return {**os.environ, "MNIST_MIRROR": str(mirror)}


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_repro_end_to_end_and_selective_rerun(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params(
        distorted=("rts",),
        distorted_variants=("cnn-aug", "stn-conv", "stn-idpen"),
        extra_seeds={"variants": ["stn-conv", "stn-idpen"], "seeds": [1]},
    )
    project = make_project(tmp_path / "p", params)
    env = _env(tiny_mirror)
    first = dvc(project, "repro", env=env)
    runs = {"mnist-cnn", "mnist-stn-conv", "rts-cnn-aug", "rts-stn-conv", "rts-stn-idpen"}
    extra = {"rts-stn-conv", "rts-stn-idpen"}  # the extra seed of two variants
    upright = {r for r in runs if r.startswith("mnist")}
    expected = {
        "download",
        "prepare@mnist",
        "prepare@rts",
        "samples@mnist",
        "samples@rts",
        "compare",
        "benchmark",
        "search-report",  # the recipe search's and Table 1's reports, of empty studies here
        "table1-report",
    }
    for run in runs:
        study = "upright" if run in upright else "distorted"
        expected |= {f"train-{study}@{run}", f"evaluate-{study}@{run}"}
    expected |= {f"rotation-upright@{run}" for run in upright}  # rts (42x42) has no rotation curve
    expected |= {f"{kind}-distorted-extra@{run}" for run in extra for kind in ("train", "evaluate")}
    assert _ran(first.stdout) == expected
    meta = json.loads((project / "data" / "rts" / "meta.json").read_text())
    assert meta["image_size"] == [42, 42] and meta["counts"] == {
        "train": N_TRAIN - 64,
        "val": 64,
        "test": N_TEST,
    }
    for run in [
        "upright/mnist/cnn/s0",
        "upright/mnist/stn-conv/s0",
        "distorted/rts/cnn-aug/s0",
        "distorted/rts/stn-conv/s0",
        "distorted-extra/rts/stn-conv/s1",
    ]:
        metrics = json.loads((project / "metrics" / "eval" / f"{run}.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] == N_TEST
        assert metrics["error_rate"] == pytest.approx(1 - metrics["accuracy"])
        assert metrics["loss"] > 0 and len(metrics["per_class_accuracy"]) == 10
        predictions = pd.read_csv(project / "plots" / "predictions" / f"{run}.csv")
        assert list(predictions.columns) == ["actual", "predicted", "nll", "confidence"]
        assert len(predictions) == N_TEST
        assert (predictions["actual"] == predictions["predicted"]).sum() == metrics["n_correct"]
        history = pd.read_csv(project / "plots" / "train" / f"{run}.csv")
        assert list(history["epoch"]) == [1] and {"loss", "accuracy"} <= set(history.columns)
        assert history["val_accuracy"].between(0, 1).all()
        for image in ("stn.png", "cm.png"):
            assert (project / "plots" / "images" / run / image).read_bytes().startswith(PNG)
        assert (project / "models" / f"{run}.pt").stat().st_size > 50_000
    curve = pd.read_csv(project / "plots" / "rotation" / "upright" / "mnist" / "stn-conv" / "s0.csv")
    assert list(curve["angle"]) == [0, 90, 180]
    assert not list((project / "plots" / "rotation" / "distorted").rglob("*.csv"))
    summary = json.loads((project / "metrics" / "upright" / "stn-conv.json").read_text())
    assert set(summary) == {"seeds", "acc", "sd", "ci_low", "ci_high", "nll", "ece", "macro_f1"}
    report = (project / "reports" / "results.md").read_text()
    assert "| stn-conv |" in report and "\nData: MNIST, " in report
    assert "NOT the official MNIST" in report  # a 384-image subset is not MNIST as published
    provenance = json.loads((project / "reports" / "data-provenance.json").read_text())
    assert provenance["files"]["train-images-idx3-ubyte.gz"]["items"] == N_TRAIN
    assert provenance["identity"] == "unknown"
    for figure in ("accuracy", "reliability", "curves", "validation"):
        assert (project / "plots" / "compare" / f"{figure}.png").read_bytes().startswith(PNG)
        assert f"../plots/compare/{figure}.png" in report or figure == "curves"
    per_class = pd.read_csv(project / "reports" / "per-class.csv")
    assert len(per_class) == 2 * 10 and set(per_class["variant"]) == {"cnn", "stn-conv"}
    assert "| variant | epoch 1 |" in report  # the validation table (a 1-epoch study)
    benchmark = (project / "reports" / "benchmark.md").read_text()
    assert "| cnn-aug | " in benchmark and "*paper: ST-CNN affine*" in benchmark
    assert "- **rts**: `stn-conv` against `cnn-aug`:" in benchmark
    assert "`stn-idpen` did best on the validation split" in benchmark  # the only idea here
    assert "- **`stn-idpen`** (identity_penalty: 1.0, identity_penalty_epochs: 3)" in benchmark
    assert re.search(r"^\| stn-idpen \| 2 \| \d \| [\d.]+ \|$", benchmark, re.M)  # stability: 2 runs
    assert re.search(r"^\| stn-conv \| 2 \| [\d.]+ ± ", benchmark, re.M)  # error table: 2 seeds
    assert "`stn-conv` against `cnn-aug`: " in benchmark and "(1 seed paired; 95% CI" in benchmark
    assert "and seeds 1 for `stn-conv`, `stn-idpen` on every dataset" in benchmark
    # Paired on the seeds both ran: two pairs for stn-idpen, one for cnn-aug.
    assert (
        "| rts | stn-idpen − stn-conv | 2 |" in benchmark and "| rts | cnn-aug − stn-conv | 1 |" in benchmark
    )
    assert "inference MFLOPs/image" in benchmark
    assert (project / "plots" / "benchmark" / "error-rts.png").read_bytes().startswith(PNG)
    assert (project / "plots" / "datasets" / "rts.png").read_bytes().startswith(PNG)
    headline = json.loads((project / "metrics" / "distorted" / "rts-stn-conv.json").read_text())
    assert headline["seeds"] == 2 and 0 <= headline["acc"] <= 100
    assert not list((project / "checkpoints").rglob("*.pt"))  # removed once a run completes

    dvc(project, "plots", "show", "-o", str(tmp_path / "plots-html"))
    assert (tmp_path / "plots-html" / "index.html").is_file()
    assert dvc(project, "status").stdout.strip().startswith("Data and pipelines are up to date")

    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "study"], cwd=project, check=True)
    # Editing one dataset reruns that dataset's stages only.
    edited = yaml.safe_load((project / "params.yaml").read_text())
    edited["datasets"]["rts"]["distortion"]["max_degrees"] = 30
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert _pending(project) == {  # and the reports that describe every dataset
        "benchmark",
        "table1-report",
        "prepare@rts",
        "train-distorted@rts-cnn-aug",
        "train-distorted@rts-stn-conv",
        "train-distorted@rts-stn-idpen",
        "train-distorted-extra@rts-stn-conv",
        "train-distorted-extra@rts-stn-idpen",
    }
    subprocess.run(["git", "checkout", "params.yaml"], cwd=project, check=True)
    # Editing one variant reruns that variant's runs on every dataset, and the report.
    edited = yaml.safe_load((project / "params.yaml").read_text())
    edited["variants"]["stn-conv"]["layer"] = "coordconv"
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert _pending(project) == {
        "train-upright@mnist-stn-conv",
        "train-distorted@rts-stn-conv",
        "train-distorted-extra@rts-stn-conv",
        "compare",
        "benchmark",
        "table1-report",  # re-checks the distorted study's verdicts
    }
    second = dvc(project, "repro", env=env)
    assert _ran(second.stdout) == {
        "train-upright@mnist-stn-conv",
        "train-distorted@rts-stn-conv",
        "train-distorted-extra@rts-stn-conv",
        "evaluate-upright@mnist-stn-conv",
        "evaluate-distorted@rts-stn-conv",
        "evaluate-distorted-extra@rts-stn-conv",
        "rotation-upright@mnist-stn-conv",
        "compare",
        "benchmark",
        "table1-report",
    }
    diff = dvc(project, "metrics", "diff", "--json").stdout
    assert "metrics/upright.json" in diff and "metrics/distorted.json" in diff
    assert "cnn" not in diff
    # A rotation curve needs 28x28 models: asking one of the 42x42 rts runs says so.
    edited = yaml.safe_load((project / "params.yaml").read_text())
    edited["studies"]["distorted"]["rotation_curve"] = ["rts"]
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    failed = dvc(project, "repro", "rotation-distorted@rts-stn-conv", env=env, check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stdout + failed.stderr
    assert "rotation_curve: dataset 'rts' holds 42x42 images" in failed.stdout + failed.stderr


def _pending(project: Path) -> set[str]:
    """Stages `dvc status` reports as changed (their own deps/params, not just upstream ones)."""
    status = json.loads(dvc(project, "status", "--json").stdout or "{}")
    return {
        name
        for name, changes in status.items()
        if any("changed deps" in c for c in changes if isinstance(c, dict))
    }


def _start_repro(project: Path, env: dict, *targets: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *targets],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As in a terminal: a shell's background job (`pytest &`) would pass SIGINT on ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_stage_resumes_to_the_same_metrics(tiny_mirror: Path, tmp_path: Path, sig) -> None:
    # 100 tiny epochs (about 10 s): time for the signal to land mid-run on a busy machine.
    params = tiny_params(epochs=100, variants=("stn-conv",))
    env = _env(tiny_mirror)
    reference = make_project(tmp_path / "uninterrupted", params)
    dvc(reference, "repro", env=env)

    project = make_project(tmp_path / "interrupted", params)
    dvc(project, "repro", "download", env=env)
    checkpoint = project / "checkpoints" / "upright" / "mnist" / "stn-conv" / "s0.pt"
    process = _start_repro(project, env)
    _wait_for(checkpoint, process)
    os.killpg(process.pid, sig)  # as a terminal's Ctrl-C or a scheduler's kill would
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output
    assert checkpoint.is_file()
    assert not (project / "metrics" / "eval" / "upright").exists()

    resumed = dvc(project, "repro", env=env)
    assert "resuming after epoch" in resumed.stdout
    assert not checkpoint.exists()
    for name in (
        "metrics/eval/upright/mnist/stn-conv/s0.json",
        "plots/predictions/upright/mnist/stn-conv/s0.csv",
    ):
        assert (project / name).read_text() == (reference / name).read_text()


def test_second_concurrent_repro_is_refused(tiny_mirror: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", tiny_params(epochs=100, variants=("stn-conv",)))
    env = _env(tiny_mirror)
    dvc(project, "repro", "download", env=env)
    first = _start_repro(project, env)
    _wait_for(project / "checkpoints" / "upright" / "mnist" / "stn-conv" / "s0.pt", first)
    second = dvc(project, "repro", env=env, check=False)
    assert second.returncode != 0
    message = second.stderr + second.stdout
    # DVC's lock message: the repo lock, or (while a stage runs) the rwlock on its paths.
    assert "Unable to acquire lock" in message or ("is busy" in message and "rwlock" in message), message
    output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, output
    assert (
        json.loads((project / "metrics" / "eval" / "upright" / "mnist" / "stn-conv" / "s0.json").read_text())[
            "n"
        ]
        == N_TEST
    )


def test_bad_params_rejected_before_anything_runs(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params()
    params["variants"]["stn-conv"]["layer"] = "conv3d"
    project = make_project(tmp_path / "p", params)
    result = dvc(project, "repro", env=_env(tiny_mirror), check=False)
    assert result.returncode != 0
    assert "variants.stn-conv.layer: Input should be 'conv' or 'coordconv'" in result.stderr + result.stdout
    assert not (project / "data" / "mnist").exists() and not (project / "models").exists()


def test_divergence_fails_the_stage_without_metrics(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params(variants=("stn-conv",))
    params["train"]["lr"] = 1.0e12
    project = make_project(tmp_path / "p", params)
    result = dvc(project, "repro", env=_env(tiny_mirror), check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "error: mnist/stn-conv-s0: training diverged: loss is" in out and "at epoch 1" in out
    assert "Traceback" not in out
    assert not list((project / "metrics" / "eval").rglob("*.json")) and not (project / "models").exists()


def test_the_mirrors_spelling_stales_nothing(tiny_mirror: Path, http_mirror: str, tmp_path: Path) -> None:
    """`dvc repro -f download` with MNIST_MIRROR spelled six ways: data/raw/mnist keeps one hash in
    dvc.lock and `dvc status` finds the whole study up to date after each."""
    project = make_project(tmp_path / "p", tiny_params(variants=("stn-conv",)))
    dvc(project, "repro", env=_env(tiny_mirror))
    hashes = set()
    for spelling in mirror_spellings(tiny_mirror, project, http_mirror, tmp_path / "link"):
        dvc(project, "repro", "-f", "download", env=_env(spelling))
        outs = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["download"]["outs"]
        hashes.add(tuple((out["path"], out["md5"]) for out in outs))
        status = dvc(project, "status").stdout.strip()
        assert status.startswith("Data and pipelines are up to date"), f"{spelling}: {status}"
    assert len(hashes) == 1, hashes


def test_a_stage_trains_each_seed_as_if_alone(tiny_mirror: Path, tmp_path: Path) -> None:
    """One train stage runs every seed of its (dataset, variant) in one process: seed 1 trained
    after seed 0 is the same, byte for byte, as seed 1 trained by itself."""
    env = _env(tiny_mirror)
    both = make_project(tmp_path / "both", tiny_params(variants=("stn-conv",), seeds=(0, 1)))
    alone = make_project(tmp_path / "alone", tiny_params(variants=("stn-conv",), seeds=(1,)))
    for project in (both, alone):
        dvc(project, "repro", "train-upright@mnist-stn-conv", env=env)
    run = Path("upright/mnist/stn-conv")
    assert sorted(p.name for p in (both / "models" / run).iterdir()) == ["s0.pt", "s1.pt"]
    for path in (Path("models") / run / "s1.pt", Path("plots/train") / run / "s1.csv"):
        assert (both / path).read_bytes() == (alone / path).read_bytes(), path
    assert not list((both / "checkpoints").rglob("*.pt"))  # removed once every seed is saved


def test_the_recipe_search_trains_each_recipe_in_its_own_stage(tiny_mirror: Path, tmp_path: Path) -> None:
    """studies.search: one train stage per (dataset, variant, recipe), each trained with its
    recipe (not the dataset's budget); editing one recipe reruns only its own stages."""
    search = {"datasets": ["rot"], "variants": ["stn-conv"], "recipes": ["sgd-a", "adamw-b"], "seeds": [0]}
    params = tiny_params(search=search)
    params["recipes"] = {
        "sgd-a": {"epochs": 1, "batch_size": 32, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
        "adamw-b": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.001, "momentum": 0.0},
    }
    params["recipes"]["sgd-a"].update(schedule="step", nesterov=False, weight_decay=0.0)
    params["recipes"]["adamw-b"].update(schedule="onecycle", nesterov=False, weight_decay=0.01)
    project = make_project(tmp_path / "p", params)
    env = _env(tiny_mirror)
    stages = {"train-search@rot-stn-conv-sgd-a", "train-search@rot-stn-conv-adamw-b"}
    assert _ran(dvc(project, "repro", *stages, env=env).stdout) >= stages
    for recipe, epochs in (("sgd-a", 1), ("adamw-b", 2)):
        history = pd.read_csv(project / "plots" / "train" / "search" / recipe / "rot" / "stn-conv" / "s0.csv")
        assert history["epoch"].tolist() == list(range(1, epochs + 1))
        assert history["val_accuracy"].notna().all()
        assert (project / "models" / "search" / recipe / "rot" / "stn-conv" / "s0.pt").is_file()
    assert not (project / "metrics" / "eval" / "search").exists()  # judged on validation only
    dvc(project, "repro", "search-report", env=env)
    metrics = json.loads((project / "metrics" / "search.json").read_text())
    assert set(metrics["val_error"]) == {"sgd-a", "adamw-b"} and metrics["best"] in metrics["val_error"]
    report = (project / "reports" / "recipe-search.md").read_text()
    assert f"Lowest mean validation error: **`{metrics['best']}`**" in report
    view = pd.read_csv(project / "plots" / "views" / "search" / "validation.csv")
    assert set(view["variant"]) == {"stn-conv / sgd-a", "stn-conv / adamw-b"} and len(view) == 3
    edited = yaml.safe_load((project / "params.yaml").read_text())
    edited["train"]["lr"] = 0.5  # the tutorial's settings: no recipe run reads them
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert "up to date" in dvc(project, "status", *stages, "search-report").stdout
    edited["recipes"]["sgd-a"]["lr"] = 0.02
    (project / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert _ran(dvc(project, "repro", *stages, "search-report", env=env).stdout) == {
        "train-search@rot-stn-conv-sgd-a",
        "search-report",
    }
