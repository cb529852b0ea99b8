"""Where each run's files live; dvc.yaml declares the same paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RAW_MNIST = Path("data/raw/mnist")  # the validated source arrays and their provenance
PROVENANCE = Path("reports/data-provenance.json")  # a git-tracked copy of where the data came from
CHECKPOINT_DIR = Path("checkpoints")  # outside DVC outputs: survives a rerun, removed on success


def dataset_dir(name: str, root: Path = Path(".")) -> Path:
    return root / "data" / name


def run_name(dataset: str, variant: str, seed: int) -> str:
    return f"{dataset}/{variant}-s{seed}"


@dataclass(frozen=True)
class RunPaths:
    """The files of one run (dataset, variant, seed)."""

    dataset: str
    variant: str
    seed: int
    root: Path = Path(".")

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.variant, self.seed)

    def _file(self, *parts: str, suffix: str) -> Path:
        return self.root.joinpath(*parts, self.dataset, f"{self.variant}-s{self.seed}{suffix}")

    @property
    def model(self) -> Path:
        return self._file("models", suffix=".pt")

    @property
    def history(self) -> Path:
        return self._file("plots", "train", suffix=".csv")

    @property
    def checkpoint(self) -> Path:
        return self._file(str(CHECKPOINT_DIR), suffix=".pt")

    @property
    def metrics(self) -> Path:
        return self._file("metrics", "eval", suffix=".json")

    @property
    def predictions(self) -> Path:
        return self._file("plots", "predictions", suffix=".csv")

    @property
    def rotation(self) -> Path:
        return self._file("plots", "rotation", suffix=".csv")

    @property
    def images(self) -> Path:
        return self._file("plots", "images", suffix="")
