"""Where the data lives; dvc.yaml declares the same paths (a run's files: stn.run_paths)."""

from __future__ import annotations

from pathlib import Path

RAW_MNIST = Path("data/raw/mnist")  # the validated source arrays and their provenance
PROVENANCE = Path("reports/data-provenance.json")  # a git-tracked copy of where the data came from


def dataset_dir(name: str, root: Path = Path(".")) -> Path:
    return root / "data" / name
