"""Where each run's files live: one folder per stage, one file per seed; dvc.yaml declares the
same paths. Apart from stn.layout (the data's paths), so that the data stages do not depend on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_DIR = Path("checkpoints")  # outside DVC outputs: survives a rerun, removed on success


def run_name(dataset: str, variant: str, seed: int) -> str:
    return f"{dataset}/{variant}-s{seed}"


@dataclass(frozen=True)
class StagePaths:
    """The folders one train/evaluate stage writes: every seed of (group, dataset, variant).

    `group` is the stage group of dvc.yaml (a study, or a study's extra seeds: "distorted-extra"),
    so that a dataset and variant can run in two studies, each stage owning its own folders.
    """

    group: str
    dataset: str
    variant: str
    root: Path = Path(".")

    def _dir(self, *parts: str) -> Path:
        return self.root.joinpath(*parts, self.group, self.dataset, self.variant)

    @property
    def models(self) -> Path:
        return self._dir("models")

    @property
    def histories(self) -> Path:
        return self._dir("plots", "train")

    @property
    def checkpoints(self) -> Path:
        return self._dir(str(CHECKPOINT_DIR))

    @property
    def stacked_checkpoint(self) -> Path:
        """The one checkpoint of all seeds trained together (stn.training.stacked)."""
        return self.checkpoints / "stacked.pt"

    @property
    def metrics(self) -> Path:
        return self._dir("metrics", "eval")

    @property
    def predictions(self) -> Path:
        return self._dir("plots", "predictions")

    @property
    def rotation(self) -> Path:
        return self._dir("plots", "rotation")

    @property
    def images(self) -> Path:
        return self._dir("plots", "images")

    def run(self, seed: int) -> RunPaths:
        return RunPaths(self.group, self.dataset, self.variant, seed, self.root)


@dataclass(frozen=True)
class RunPaths:
    """The files of one run (dataset, variant, seed) of stage group `group`."""

    group: str
    dataset: str
    variant: str
    seed: int
    root: Path = Path(".")

    @property
    def name(self) -> str:
        return run_name(self.dataset, self.variant, self.seed)

    @property
    def stage(self) -> StagePaths:
        return StagePaths(self.group, self.dataset, self.variant, self.root)

    @property
    def _stem(self) -> str:
        return f"s{self.seed}"

    @property
    def model(self) -> Path:
        return self.stage.models / f"{self._stem}.pt"

    @property
    def history(self) -> Path:
        return self.stage.histories / f"{self._stem}.csv"

    @property
    def checkpoint(self) -> Path:
        return self.stage.checkpoints / f"{self._stem}.pt"

    @property
    def metrics(self) -> Path:
        return self.stage.metrics / f"{self._stem}.json"

    @property
    def predictions(self) -> Path:
        return self.stage.predictions / f"{self._stem}.csv"

    @property
    def rotation(self) -> Path:
        return self.stage.rotation / f"{self._stem}.csv"

    @property
    def images(self) -> Path:
        return self.stage.images / self._stem
