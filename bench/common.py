"""Shared set-up for the benchmarks: the MNIST arrays, from data/mnist or MNIST_MIRROR."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from stn.data import MIRROR_ENV, load_split, prepare_mnist
from stn.layout import DATA_DIR


def mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    if not (DATA_DIR / f"{split}.npz").is_file():
        prepare_mnist(DATA_DIR, {"train": 60000, "test": 10000}, os.environ.get(MIRROR_ENV) or None)
    return load_split(DATA_DIR, split)


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
