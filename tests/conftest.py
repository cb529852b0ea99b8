"""Shared fixtures: tiny MNIST mirrors made from the offline copy (or synthetic digits)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stn.datasets.idx import read_idx_gz, write_idx_gz
from stn.datasets.mnist import prepare_mnist
from stn.datasets.prepare import prepare_dataset
from stn.datasets.store import DatasetMeta, load_arrays, read_meta
from stn.models.localization import SpatialTransformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from reference import TUTORIAL_NORMALIZATION  # noqa: E402  (bench/)

OFFLINE_MNIST = ROOT.parent / "shared" / "data" / "mnist"
N_TRAIN, N_TEST = 384, 128


def _tiny_arrays() -> dict[str, np.ndarray]:
    if (OFFLINE_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        out = {}
        for stem, n in (("train", N_TRAIN), ("t10k", N_TEST)):
            out[f"{stem}-images-idx3-ubyte.gz"] = read_idx_gz(OFFLINE_MNIST / f"{stem}-images-idx3-ubyte.gz")[
                :n
            ]
            out[f"{stem}-labels-idx1-ubyte.gz"] = read_idx_gz(OFFLINE_MNIST / f"{stem}-labels-idx1-ubyte.gz")[
                :n
            ]
        return out
    rng = np.random.default_rng(0)  # no offline copy: random images, still MNIST-shaped
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


@pytest.fixture(scope="session")
def tiny_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the four MNIST .gz files with N_TRAIN / N_TEST examples."""
    folder = tmp_path_factory.mktemp("mirror")
    for name, array in _tiny_arrays().items():
        write_idx_gz(folder / name, array)
    return folder


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_mirror(tiny_mirror: Path):
    """Serve the tiny mirror on 127.0.0.1 for the length of one test."""
    handler = functools.partial(_QuietHandler, directory=str(tiny_mirror))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def mirror_spellings(mirror: Path, cwd: Path, http_mirror: str, link: Path) -> list[str]:
    """Six names for one folder of MNIST files, as MNIST_MIRROR may give them: relative to `cwd`,
    absolute, with a trailing slash, through the symlink `link` (made here), file:// and http://."""
    link.symlink_to(mirror)
    return [
        os.path.relpath(mirror, cwd),
        str(mirror),
        f"{mirror}/",
        str(link),
        f"file://{mirror}",
        http_mirror,
    ]


@pytest.fixture
def mirror_copy(tiny_mirror: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny mirror, for tests that damage a file."""
    folder = tmp_path / "mirror"
    shutil.copytree(tiny_mirror, folder)
    return folder


def tiny_params(
    epochs: int = 1,
    variants: tuple[str, ...] = ("cnn", "stn-conv"),
    seeds=(0,),
    distorted: tuple[str, ...] = ("rot",),
    distorted_variants: tuple[str, ...] = ("stn-conv",),
    extra_seeds: dict | None = None,
    search: dict | None = None,
) -> dict:
    """The project's params.yaml, cut down to tiny data and short runs.

    `distorted` names datasets of params.yaml for the distorted study; every dataset holds a
    tiny validation split; by default one run of the baseline on `rot`, so that every stage exists.
    `search`: studies.search (recipes of params.yaml's recipes section); none by default.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["mnist"] = {"train_count": N_TRAIN, "test_count": N_TEST}
    params["train"]["epochs"] = epochs
    kept = {"mnist", *distorted}
    params["datasets"] = {k: v for k, v in params["datasets"].items() if k in kept}
    for spec in params["datasets"].values():
        spec.pop("train", None)  # the train section's epochs for every dataset
        spec["validation"] = 64
    params["studies"]["upright"] = {
        "datasets": ["mnist"],
        "variants": list(variants),
        "seeds": list(seeds),
        "rotation_curve": ["mnist"],
    }
    params["studies"]["distorted"] = {
        "datasets": list(distorted),
        "variants": list(distorted_variants),
        "seeds": list(seeds),
        "rotation_curve": [],
        "extra_seeds": extra_seeds or {"variants": [], "seeds": []},
    }
    # the recipe search: none unless asked for (its datasets must be among `distorted`)
    params["studies"]["search"] = search or {"datasets": [], "variants": [], "recipes": []}
    # the paper-protocol studies: none (tests that run them give their own)
    for study in ("table1", "budget"):
        params["studies"][study] = {"datasets": [], "variants": [], "recipes": []}
    params["studies"]["table1"]["extra_seeds"] = {"variants": [], "seeds": []}
    params["evaluate"]["stn_images"] = 8
    params["evaluate"]["rotation_curve"] = {"step": 90}
    return params


def make_project(dest: Path, params: dict) -> Path:
    """A git + DVC repo holding this project's pipeline and code, with `params`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("dvc.yaml", "stages", "src", ".dvcignore"):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest / item)
    for keep in ROOT.glob("*/*/*/.keep"):  # folders the benchmark stage depends on, even when empty
        (dest / keep.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(keep, dest / keep.relative_to(ROOT))
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("/data/\n/checkpoints/\n")
    run = lambda *cmd: subprocess.run(cmd, cwd=dest, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run("git", "config", "user.email", "test@example.com")
    run("git", "config", "user.name", "test")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    shutil.copytree(ROOT / ".dvc" / "plots", dest / ".dvc" / "plots")  # dvc.yaml's plot templates
    run("git", "add", "-A")
    run("git", "commit", "-qm", "init")
    return dest


def dvc(
    project: Path, *args: str, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def interrupt_fit(trainer, at_epoch: int) -> None:
    """Run `trainer.fit()` as if Ctrl-C came at the start of epoch `at_epoch` (1-based): the
    epochs before it finish and are checkpointed, then KeyboardInterrupt propagates."""
    real_epoch = trainer.train_epoch

    def interrupted_epoch(epoch: int):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return real_epoch(epoch)

    trainer.train_epoch = interrupted_epoch
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


@pytest.fixture(scope="module")
def prepared_mnist(tiny_mirror: Path, tmp_path_factory) -> Path:
    """The tiny mirror as the pipeline's `mnist` dataset: all training images, the tutorial's constants."""
    data = tmp_path_factory.mktemp("data")
    prepare_mnist(data / "raw", {"train": N_TRAIN, "test": N_TEST}, str(tiny_mirror))
    prepare_dataset("mnist", data / "raw", data / "mnist", None, 0, 0, TUTORIAL_NORMALIZATION)
    return data / "mnist"


@pytest.fixture(scope="module")
def train_data(prepared_mnist: Path) -> tuple[DatasetMeta, np.ndarray, np.ndarray]:
    """(meta, images, labels): the Trainer's dataset arguments, in its order."""
    return (read_meta(prepared_mnist), *load_arrays(prepared_mnist, "train"))


def off_identity(model: torch.nn.Module, scale: float = 0.01) -> None:
    """Moves every transformer's start a little off the identity. At the identity with the output
    size of the input each sample point lies on a pixel centre, where bilinear sampling has a kink:
    the gradient to the transform depends on which side of the centre each device's rounding puts
    the point (seen on an H200: the CPU and CUDA losses differed by up to 0.6% after one step)."""
    noise = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SpatialTransformer):
                bias = module.fc_loc[-1].bias
                bias.add_(scale * torch.randn(bias.shape, generator=noise))
