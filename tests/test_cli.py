"""The original study's command line, as the Docker image runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import N_TEST, N_TRAIN, ROOT, tiny_params

from stn.cli import DEFAULT_DATASETS, build_parser, ensure_dataset
from stn.datasets.mnist import prepare_mnist
from stn.errors import DataError
from stn.layout import RAW_MNIST, dataset_dir


def _run(args: list[str], cwd: Path, mirror: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MNIST_MIRROR": str(mirror)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_docker_entrypoint_trains_one_model(tiny_mirror: Path, tmp_path: Path) -> None:
    """`docker run ... pytorch-stn --layer=coordconv --epochs=1` without Docker: its entrypoint."""
    result = _run(
        [
            "sh",
            str(ROOT / "docker-entrypoint.sh"),
            "--layer=coordconv",
            "--function=leakyrelu",
            "--epochs=1",
            f"--train-count={N_TRAIN}",
            f"--test-count={N_TEST}",
        ],
        tmp_path,
        tiny_mirror,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stn-coordconv-leakyrelu-s0 epoch 1/1" in out
    assert "| 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |" in out
    assert "Test set: Average loss: " in out and f"/{N_TEST} (" in out
    for image in ("stn.png", "cm.png"):
        assert (tmp_path / "imgs" / image).read_bytes().startswith(b"\x89PNG")
    assert not list((tmp_path / "checkpoints").glob("*.pt"))
    # No params.yaml here: the built-in mnist, as the pipeline's layout would hold it.
    assert (tmp_path / RAW_MNIST / "provenance.json").is_file()
    meta = json.loads((tmp_path / dataset_dir("mnist") / "meta.json").read_text())
    assert meta["counts"] == {"train": N_TRAIN, "val": 0, "test": N_TEST}
    assert meta["normalization"] == {"mean": 0.1307, "std": 0.3081} and meta["distortion"] is None


def test_cli_trains_on_a_distorted_dataset(tiny_mirror: Path, tmp_path: Path) -> None:
    """--dataset rot takes the dataset's spec (and the counts) from ./params.yaml."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    result = _run(["stn", "--dataset", "rot", "--epochs", "1"], tmp_path, tiny_mirror)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "rot/stn-conv-relu-s0 epoch 1/1" in out and "val acc" in out  # rot holds out 64 images
    assert "Test set: Average loss: " in out and f"/{N_TEST} (" in out
    meta = json.loads((tmp_path / "data" / "rot" / "meta.json").read_text())
    assert meta["distortion"] == {"kind": "rot", "max_degrees": 90.0} and meta["seed"] == 1
    assert meta["counts"] == {"train": N_TRAIN - 64, "val": 64, "test": N_TEST}
    for image in ("stn.png", "cm.png"):
        assert (tmp_path / "imgs" / image).read_bytes().startswith(b"\x89PNG")
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


def test_cli_rejects_bad_options(tiny_mirror: Path, tmp_path: Path) -> None:
    result = _run(["stn", "--epochs=0"], tmp_path, tiny_mirror)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: invalid option: epochs: Input should be greater than 0"
    result = _run(["stn", "--layer=conv3d"], tmp_path, tiny_mirror)
    assert result.returncode == 2 and "invalid choice: 'conv3d'" in result.stderr


def test_cli_reports_missing_data(tmp_path: Path) -> None:
    result = _run(["stn", "--epochs=1"], tmp_path, tmp_path / "no-mirror")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "MNIST_MIRROR" in result.stderr and "not a folder" in result.stderr


def test_cli_unknown_dataset(tiny_mirror: Path, tmp_path: Path) -> None:
    result = _run(["stn", "--dataset=rot"], tmp_path, tiny_mirror)  # no params.yaml: mnist only
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --dataset rot: no params.yaml in ")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    result = _run(["stn", "--dataset=rott"], tmp_path, tiny_mirror)
    assert result.returncode == 1
    assert result.stderr.startswith("error: datasets.rott: no such dataset; defined: mnist, rot")
    assert not (tmp_path / "data").exists()


def test_flags_keep_their_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.layer, args.function, args.negative_slope, args.no_stn) == ("conv", "relu", 0.01, False)
    assert (args.dataset, args.seed, args.data_dir, args.out) == ("mnist", 0, Path("data"), Path("imgs"))
    # Unset: the dataset's training budget and counts decide (50 epochs, lr 0.01, ... for mnist).
    assert (args.epochs, args.batch_size, args.lr, args.threads) == (None, None, None, None)
    assert (args.train_count, args.test_count) == (None, None)


def test_prepared_dataset_with_other_settings_is_not_reused(tiny_mirror: Path, tmp_path: Path) -> None:
    counts = {"train": N_TRAIN, "test": N_TEST}
    prepare_mnist(tmp_path / "raw" / "mnist", counts, str(tiny_mirror))
    spec = DEFAULT_DATASETS["mnist"]
    folder = ensure_dataset(tmp_path, "mnist", spec, counts)
    before = (folder / "meta.json").read_bytes()
    assert ensure_dataset(tmp_path, "mnist", spec, counts) == folder  # prepared already: reused
    assert (folder / "meta.json").read_bytes() == before
    other = spec.model_copy(update={"validation": 64})
    with pytest.raises(DataError, match=r"mnist: prepared with other settings .*validation 0 instead of 64"):
        ensure_dataset(tmp_path, "mnist", other, counts)
    assert (folder / "meta.json").read_bytes() == before
