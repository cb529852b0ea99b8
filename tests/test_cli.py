"""The original study's command line, as the Docker image runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import N_TEST, N_TRAIN, ROOT


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
