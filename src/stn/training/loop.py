"""The training loop: whole dataset as one tensor, shuffled by index, checkpointed per epoch."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from stn.atomic import write_with
from stn.datasets.store import DatasetMeta
from stn.errors import DivergenceError, ParamsError
from stn.models.builder import InputShape, STNClassifier, build_model
from stn.params.run import TrainParams
from stn.training.allocator import reuse_freed_memory
from stn.training.optim import build_optimizer, per_step, set_lr
from stn.variant import VariantSpec


@dataclass
class EpochStats:
    epoch: int
    loss: float  # mean training NLL over the epoch
    accuracy: float  # training accuracy over the epoch (dropout on)
    seconds: float
    val_loss: float | None = None  # on the dataset's validation split, after the epoch
    val_accuracy: float | None = None


def log_progress(message: str) -> None:
    """Print at once, even when stdout is a pipe (as under dvc repro)."""
    print(message, flush=True)


def select_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ParamsError("train.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    if preference in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, epoch: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on one batch; returns (mean loss, number correct), both detached."""
    optimizer.zero_grad(set_to_none=True)
    loss, output = model.training_loss(x, y, epoch)
    loss.backward()
    optimizer.step()
    return loss.detach(), (output.detach().argmax(1) == y).sum()


def run_fingerprint(spec: VariantSpec, params: TrainParams, seed: int, dataset: DatasetMeta) -> str:
    """Identifies what a checkpoint belongs to (data included), so a stale one is never resumed."""
    blob = json.dumps(
        {
            "spec": spec.model_dump(mode="json"),
            "train": params.model_dump(),
            "seed": seed,
            "dataset": dataset.name,
            "data_sha256": dataset.content_sha256,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# Re-draws the training images for one epoch (augmentation); None: the stored images.
EpochImages = Callable[[int], np.ndarray]


class Trainer:
    """Trains one variant with one seed on one dataset; resumable from its per-epoch checkpoint."""

    def __init__(
        self,
        spec: VariantSpec,
        params: TrainParams,
        seed: int,
        dataset: DatasetMeta,
        images: np.ndarray,
        labels: np.ndarray,
        run_name: str = "run",
        checkpoint: Path | None = None,
        log: Callable[[str], None] = log_progress,
        epoch_images: EpochImages | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.spec, self.params, self.seed, self.run_name = spec, params, seed, run_name
        self.checkpoint, self.log, self.epoch_images = checkpoint, log, epoch_images
        self.normalize = dataset.normalization
        self.device = select_device(params.device)
        reuse_freed_memory()  # a step's activations are reused, not page-faulted in afresh
        if self.device.type == "cpu":
            torch.set_num_threads(params.threads)
        torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")
        torch.manual_seed(seed)
        self.model: STNClassifier = build_model(spec, InputShape.of(dataset)).to(self.device)
        self.memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # The whole normalised dataset stays resident (on the GPU when there is one).
        self.x = self._resident(images)
        self.y = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.val = None
        if validation is not None and len(validation[1]):
            self.val = (self._resident(validation[0]), torch.as_tensor(validation[1], dtype=torch.long))
        self.optimizer = build_optimizer(self.model, params)
        self.order = torch.Generator().manual_seed(seed)  # batch order, separate from dropout
        self.fingerprint = run_fingerprint(spec, params, seed, dataset)
        self.history: list[EpochStats] = []
        self.devices = {self.device.type}  # every device type this run has trained on

    @property
    def trained_on(self) -> str:
        """The device types this run trained on, e.g. "cpu", "cuda", or "cpu+cuda" for a run
        resumed on another device (models.builder.save_model records it)."""
        return "+".join(sorted(self.devices))

    def _resident(self, images: np.ndarray) -> torch.Tensor:
        return self.normalize(images).to(self.device).contiguous(memory_format=self.memory_format)

    # -- checkpoints -------------------------------------------------------------
    def _state(self) -> dict:
        state = {
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "order_rng": self.order.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [asdict(h) for h in self.history],
            "trained_on": sorted(self.devices),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        return state

    def save_checkpoint(self) -> None:
        if self.checkpoint is not None:
            write_with(self.checkpoint, lambda tmp: torch.save(self._state(), tmp))

    def resume(self) -> bool:
        """Load the checkpoint if it belongs to this run; returns whether it did."""
        state = read_checkpoint(self.checkpoint, self.fingerprint, self.run_name, self.log)
        if state is None:
            return False
        self.load_state(state)
        self.log(f"{self.run_name}: resuming after epoch {len(self.history)} from {self.checkpoint}")
        return True

    def load_state(self, state: dict) -> None:
        """Continue from `state` (a checkpoint's, as `_state` makes it)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.order.set_state(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.history = [EpochStats(**h) for h in state["history"]]
        # A checkpoint from before "trained_on" was recorded: one with CUDA's RNG state was CUDA's.
        self.devices |= set(state.get("trained_on", ["cuda" if "cuda_rng" in state else "cpu"]))

    def discard_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)

    # -- training ----------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> torch.Tensor:
        """Train mode, the epoch's learning rate and distortions; returns the batch order."""
        self.model.train()
        set_lr(self.optimizer, self.params, epoch)
        if self.epoch_images is not None:  # a fresh draw of the distortions, from (seed, epoch)
            self.x = self._resident(self.epoch_images(epoch))
        return torch.randperm(len(self.y), generator=self.order).to(self.device)

    def check_loss(self, value: float, epoch: int, step: int) -> None:
        """Raises DivergenceError when a batch's loss is not finite."""
        if not math.isfinite(value):
            raise DivergenceError(
                f"{self.run_name}: training diverged: loss is {value} at epoch {epoch}, "
                f"step {step + 1}; lower train.lr or check the variant's params"
            )

    def end_epoch(
        self, epoch: int, loss_sum: torch.Tensor, correct: torch.Tensor, start: float
    ) -> EpochStats:
        """The epoch's statistics (validation included) from its summed loss and hits."""
        n = len(self.y)
        stats = EpochStats(
            epoch=epoch,
            loss=float(loss_sum) / n,
            accuracy=int(correct) / n,
            seconds=time.perf_counter() - start,
        )
        if self.val is not None:
            stats.val_loss, stats.val_accuracy = self.validate()
        return stats

    def train_epoch(self, epoch: int) -> EpochStats:
        start = time.perf_counter()
        perm = self.begin_epoch(epoch)
        n, bs = len(self.y), self.params.batch_size
        steps = -(-n // bs)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for step, i in enumerate(range(0, n, bs)):
            if per_step(self.params):
                set_lr(self.optimizer, self.params, epoch, step, steps)
            idx = perm[i : i + bs]
            loss, hits = train_step(self.model, self.optimizer, self.x[idx], self.y[idx], epoch)
            self.check_loss(loss.item(), epoch, step)
            loss_sum += loss * len(idx)
            correct += hits
        return self.end_epoch(epoch, loss_sum, correct, start)

    @torch.inference_mode()
    def validate(self, batch_size: int = 1000) -> tuple[float, float]:
        """Mean NLL and accuracy on the validation split (eval mode; uses no random numbers)."""
        self.model.eval()
        x, y = self.val
        out = torch.cat([self.model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).cpu()
        self.model.train()
        return float(F.nll_loss(out, y)), float((out.argmax(1) == y).float().mean())

    def fit(self) -> list[EpochStats]:
        """Train the remaining epochs, checkpointing after each; returns the full history."""
        self.resume()
        for epoch in range(len(self.history) + 1, self.params.epochs + 1):
            self.history.append(self.train_epoch(epoch))
            self.save_checkpoint()
            self.log_epoch()
        return self.history

    def log_epoch(self) -> None:
        stats = self.history[-1]
        val = "" if stats.val_accuracy is None else f" val acc {100 * stats.val_accuracy:.2f}%"
        self.log(
            f"{self.run_name} epoch {stats.epoch}/{self.params.epochs} loss {stats.loss:.4f} "
            f"acc {100 * stats.accuracy:.2f}%{val} {stats.seconds:.1f}s "
            f"({len(self.y) / stats.seconds:.0f} img/s)"
        )


def read_checkpoint(
    path: Path | None, fingerprint: str, name: str, log: Callable[[str], None]
) -> dict | None:
    """The checkpoint at `path` if it exists, is readable and belongs to `fingerprint`; else None."""
    if path is None or not path.is_file():
        return None
    try:
        # RNG states must stay CPU ByteTensors; load_state_dict moves weights to the device.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a damaged checkpoint only costs the epochs it held
        log(f"{name}: ignoring unreadable checkpoint {path}: {exc}")
        return None
    if state.get("fingerprint") != fingerprint:
        log(f"{name}: checkpoint {path} is from other params; starting over")
        return None
    return state


def save_history(history: list[EpochStats], path: Path, trained_on: str = "cpu") -> None:
    """Per-epoch curves as CSV (epoch, loss, accuracy[, val_loss, val_accuracy][, trained_on]).

    Wall times stay in the log: an output that later stages read must not change from one
    rerun to the next (bench/ measures speed). `trained_on`, the device type, is a column only
    when not "cpu" (as in models.builder.save_model: CPU curves keep their bytes).
    """
    frame = pd.DataFrame([asdict(h) for h in history]).drop(columns="seconds").dropna(axis=1, how="all")
    if trained_on != "cpu":
        frame["trained_on"] = trained_on
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
