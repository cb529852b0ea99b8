"""Where each run's files live; dvc.yaml declares the same paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path("data/mnist")
PROVENANCE = Path("reports/data-provenance.json")  # where the data came from, with sha256s
CHECKPOINT_DIR = Path("checkpoints")  # outside DVC outputs: survives a rerun, removed on success


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


@dataclass(frozen=True)
class RunPaths:
    variant: str
    seed: int
    root: Path = Path(".")

    @property
    def name(self) -> str:
        return run_name(self.variant, self.seed)

    @property
    def model(self) -> Path:
        return self.root / "models" / f"{self.name}.pt"

    @property
    def history(self) -> Path:
        return self.root / "plots" / "train" / f"{self.name}.csv"

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_DIR / f"{self.name}.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / "eval" / f"{self.name}.json"

    @property
    def predictions(self) -> Path:
        return self.root / "plots" / "predictions" / f"{self.name}.csv"

    @property
    def images(self) -> Path:
        return self.root / "plots" / "images" / self.name
