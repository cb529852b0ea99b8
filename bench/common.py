"""Shared set-up for the benchmarks: upright MNIST as the pipeline prepares it (data/mnist).

The benchmarks compare with the tutorial, which trains on all 60000 training images
normalised with its constants: the `mnist` dataset of params.yaml. When data/mnist is
missing it is prepared here, from data/raw/mnist (fetched from MNIST_MIRROR or the
public mirrors if that is missing too).
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from reference import TUTORIAL_NORMALIZATION

from stn.datasets.mnist import MIRROR_ENV, prepare_mnist
from stn.datasets.prepare import prepare_dataset
from stn.datasets.store import DatasetMeta, load_arrays, read_meta
from stn.errors import DataError
from stn.layout import RAW_MNIST, dataset_dir

MNIST_DIR = dataset_dir("mnist")


def mnist_meta() -> DatasetMeta:
    """The meta of data/mnist, prepared first if missing; checked to be the tutorial's setting."""
    if not (MNIST_DIR / "meta.json").is_file():
        if not (RAW_MNIST / "provenance.json").is_file():
            prepare_mnist(RAW_MNIST, {"train": 60000, "test": 10000}, os.environ.get(MIRROR_ENV) or None)
        prepare_dataset("mnist", RAW_MNIST, MNIST_DIR, None, 0, 0, TUTORIAL_NORMALIZATION)
    meta = read_meta(MNIST_DIR)
    if meta.counts.get("val", 0) != 0 or meta.normalization != TUTORIAL_NORMALIZATION:
        raise DataError(
            f"{MNIST_DIR}: prepared with a validation split or another normalisation than the "
            "tutorial's; the benchmarks compare with the tutorial's setting (datasets.mnist of params.yaml)"
        )
    return meta


def mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and labels of data/mnist's `split` (train or test)."""
    mnist_meta()
    return load_arrays(MNIST_DIR, split)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"
    )


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="stn-bench-"))
