"""The optimizer and learning-rate schedule, built from params.

The spatial transformer's parameters form their own group, so a variant can give the
localization net a lower learning rate (`loc_lr_scale`), the fix most often recommended
for unstable STNs.
"""

from __future__ import annotations

import math

import torch

from stn.models.builder import STNClassifier
from stn.params.run import TrainParams


def build_optimizer(model: STNClassifier, params: TrainParams) -> torch.optim.SGD:
    scale = model.spec.loc_lr_scale
    if model.stn is None or scale == 1.0:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:
        groups = [
            {"params": list(model.stn.parameters()), "lr_scale": scale},
            {"params": list(model.classifier.parameters()), "lr_scale": 1.0},
        ]
    return torch.optim.SGD(groups, lr=params.lr, momentum=params.momentum)


def lr_factor(params: TrainParams, epoch: int) -> float:
    """The schedule's multiplier of train.lr during `epoch` (1-based)."""
    if params.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / params.epochs))
    return 1.0


def set_epoch_lr(optimizer: torch.optim.Optimizer, params: TrainParams, epoch: int) -> None:
    """A pure function of the epoch, so a resumed run needs no scheduler state."""
    for group in optimizer.param_groups:
        group["lr"] = params.lr * group["lr_scale"] * lr_factor(params, epoch)
