"""The seeds of one stage trained together, as one batched model: the GPU path.

On a GPU a small model's training step is bound by kernel launches, not arithmetic
(bench/README.md, "On one H200"): K copies of one architecture, each parameter stacked into one
(K, ...) tensor (as `torch.func.stack_module_state` does) and stepped with `vmap(grad(...))`,
launch each layer's forward and backward kernels once for all K (each seed's optimizer still
steps on its own). Each seed keeps its own `Trainer`: its weights (views into the stacked tensors),
optimizer, batch order, distortion draws, validation, history and model file. What differs from
training each seed on its own is dropout's random numbers (drawn for all K from one generator),
float rounding, and which of several equal maxima a max-pooling picks (the stacked batch is not
channels-last); on the CPU, where it is slower (bench/batched_seeds.py), the stage trains
the seeds one after another.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from stn.atomic import write_with
from stn.errors import StnError
from stn.training.loop import EpochStats, Trainer, log_progress, read_checkpoint
from stn.training.optim import per_step, set_lr


def stack_seeds(device: torch.device, seeds: int, stacked_checkpoint: bool, seed_checkpoints: bool) -> bool:
    """Whether a train stage trains its seeds stacked (StackedTrainer) or one after another.

    Stacked on a GPU, when the stage has more than one seed; on the CPU stacking is slower
    (bench/README.md, "Seeds trained together"). Interrupted work goes on the way it began, on
    either device: a stacked checkpoint resumes stacked, the seeds' own checkpoints one by one.
    """
    if stacked_checkpoint:
        return True
    return device.type == "cuda" and seeds > 1 and not seed_checkpoints


class _TrainingLoss(nn.Module):
    """forward = the model's training loss, so that `functional_call` can run it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> tuple[torch.Tensor, tuple]:
        loss, output = self.model.training_loss(x, y, epoch)
        return loss, (loss.detach(), (output.argmax(1) == y).sum())


class StackedTrainer:
    """Trains the K `trainers` (one variant, one dataset, K seeds) in lock-step as one model.

    Every trainer must have the same variant, train params, device and number of training
    images (one stage's seeds have). Raises StnError otherwise, or when the models hold buffers
    (running statistics cannot be updated under vmap). `checkpoint`: one file for all K, written
    after every epoch, so an interrupted stage resumes every seed at the same epoch.
    """

    def __init__(
        self,
        trainers: list[Trainer],
        checkpoint: Path | None = None,
        log: Callable[[str], None] = log_progress,
    ) -> None:
        if not trainers:
            raise StnError("StackedTrainer needs at least one Trainer")
        first = trainers[0]

        def kind(t: Trainer) -> tuple:
            return t.spec, t.params, t.device, len(t.y)

        for t in trainers[1:]:
            if kind(t) != kind(first):
                raise StnError(
                    f"{t.run_name} cannot be stacked with {first.run_name}: the variant, train params, "
                    "device and number of training images must be the same"
                )
        if any(True for _ in first.model.buffers()):
            raise StnError(f"{first.spec} has buffers; a stacked model cannot update them under vmap")
        self.trainers, self.params, self.checkpoint, self.log = trainers, first.params, checkpoint, log
        joined = "stacked:" + ",".join(t.fingerprint for t in trainers)
        self.fingerprint = hashlib.sha256(joined.encode()).hexdigest()
        self.names = [name for name, _ in first.model.named_parameters()]
        # One (K, ...) tensor per parameter; each seed's Parameter becomes a view of its row, so
        # its optimizer, state_dict and validation work on the stacked weights in place.
        self.weights = {
            name: torch.stack([dict(t.model.named_parameters())[name].detach() for t in trainers])
            for name in self.names
        }
        for k, t in enumerate(trainers):
            for name, p in t.model.named_parameters():
                p.data = self.weights[name][k]
        self.base = _TrainingLoss(copy.deepcopy(first.model).to("meta"))
        # With a transformer, the input's gradient too (unused): without it grid_sample's batched
        # backward gets an undefined input gradient and fails.
        argnums = (0, 1) if first.model.stn is not None else (0,)
        self.grads = vmap(
            grad(self._loss, argnums=argnums, has_aux=True), in_dims=(0, 0, 0, None), randomness="different"
        )

    def _loss(self, weights: dict, x: torch.Tensor, y: torch.Tensor, epoch: int) -> tuple:
        named = {f"model.{name}": w for name, w in weights.items()}
        return functional_call(self.base, named, (x, y, epoch))

    def step(self, batches: list[torch.Tensor], epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of every seed on its batch (indices into its training images);
        returns the K losses and the K numbers correct, detached."""
        x = torch.stack([t.x[idx] for t, idx in zip(self.trainers, batches, strict=True)])
        y = torch.stack([t.y[idx] for t, idx in zip(self.trainers, batches, strict=True)])
        grads, (losses, hits) = self.grads(self.weights, x, y, epoch)
        if isinstance(grads, tuple):
            grads = grads[0]
        for k, t in enumerate(self.trainers):
            for name, p in t.model.named_parameters():
                p.grad = grads[name][k]
            t.optimizer.step()
        return losses, hits

    def train_epoch(self, epoch: int) -> list[EpochStats]:
        start = time.perf_counter()
        self.base.train()
        perms = [t.begin_epoch(epoch) for t in self.trainers]
        first = self.trainers[0]
        n, bs = len(first.y), self.params.batch_size
        steps = -(-n // bs)
        loss_sums = torch.zeros(len(self.trainers), dtype=torch.float64, device=first.device)
        correct = torch.zeros(len(self.trainers), dtype=torch.long, device=first.device)
        for step, i in enumerate(range(0, n, bs)):
            if per_step(self.params):
                for t in self.trainers:
                    set_lr(t.optimizer, self.params, epoch, step, steps)
            batches = [perm[i : i + bs] for perm in perms]
            losses, hits = self.step(batches, epoch)
            for t, value in zip(self.trainers, losses.tolist(), strict=True):
                t.check_loss(value, epoch, step)
            loss_sums += losses * len(batches[0])
            correct += hits
        stats = [t.end_epoch(epoch, loss_sums[k], correct[k], start) for k, t in enumerate(self.trainers)]
        share = (time.perf_counter() - start) / len(self.trainers)
        for s in stats:  # each seed's share of the epoch: the K logged times sum to its wall time
            s.seconds = share
        return stats

    # -- checkpoints -------------------------------------------------------------
    def save_checkpoint(self) -> None:
        # The K states share the stacked storages; torch.save writes each storage once.
        state = {"fingerprint": self.fingerprint, "runs": [t._state() for t in self.trainers]}
        if self.checkpoint is not None:
            write_with(self.checkpoint, lambda tmp: torch.save(state, tmp))

    def resume(self) -> bool:
        """Load the checkpoint if it belongs to these K runs; returns whether it did."""
        state = read_checkpoint(self.checkpoint, self.fingerprint, self.trainers[0].run_name, self.log)
        if state is None:
            return False
        for t, run in zip(self.trainers, state["runs"], strict=True):
            t.load_state(run)  # copies into the views: the stacked weights
        self.log(f"stacked {len(self.trainers)} seeds: resuming after epoch {len(run['history'])}")
        return True

    def discard_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)

    def fit(self) -> list[list[EpochStats]]:
        """Train the remaining epochs of every seed, checkpointing after each epoch; returns the
        K full histories."""
        self.resume()
        for epoch in range(len(self.trainers[0].history) + 1, self.params.epochs + 1):
            for t, stats in zip(self.trainers, self.train_epoch(epoch), strict=True):
                t.history.append(stats)
            self.save_checkpoint()
            for t in self.trainers:
                t.log_epoch()
        for t in self.trainers:  # each model its own weights again: saved alone, not the K stacked
            for p in t.model.parameters():
                p.data = p.data.clone()
        return [t.history for t in self.trainers]
