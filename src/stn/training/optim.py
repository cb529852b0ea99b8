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


def build_optimizer(model: STNClassifier, params: TrainParams) -> torch.optim.Optimizer:
    """SGD (momentum, optionally Nesterov) or AdamW with torch's default betas; weight decay as given."""
    scale = model.spec.loc_lr_scale
    if model.stn is None or scale == 1.0:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:
        groups = [
            {"params": list(model.stn.parameters()), "lr_scale": scale},
            {"params": list(model.classifier.parameters()), "lr_scale": 1.0},
        ]
    if params.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=params.lr,
        momentum=params.momentum,
        nesterov=params.nesterov,
        weight_decay=params.weight_decay,
    )


# onecycle: torch.optim.lr_scheduler.OneCycleLR's defaults (cosine annealing both ways) for the
# learning rate only, as with cycle_momentum=False: AdamW's betas stay fixed.
ONECYCLE_WARMUP = 0.3  # pct_start: share of the steps spent warming up
ONECYCLE_START_DIV = 25.0  # div_factor: the first step's lr is lr / 25
ONECYCLE_END_DIV = 1e4  # final_div_factor: the last step's lr is lr / 25 / 1e4


def _cosine(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _one_cycle(step: int, total: int) -> float:
    """OneCycleLR's multiplier of the peak lr at 0-based `step` of `total` (Smith & Topin 2019)."""
    first, last = 1.0 / ONECYCLE_START_DIV, 1.0 / ONECYCLE_START_DIV / ONECYCLE_END_DIV
    warmup_end = float(ONECYCLE_WARMUP * total) - 1
    if step <= warmup_end:
        return _cosine(first, 1.0, step / warmup_end)
    return _cosine(1.0, last, (step - warmup_end) / (total - 1 - warmup_end))


def lr_factor(params: TrainParams, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
    """The schedule's multiplier of train.lr at 0-based `step` of (1-based) `epoch`.

    cosine and step change once per epoch; onecycle changes every step.
    """
    if params.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / params.epochs))
    if params.schedule == "step":  # /10 after each third of the epochs (STN paper, appendix)
        return 0.1 ** ((epoch - 1) * 3 // params.epochs)
    if params.schedule == "onecycle":
        return _one_cycle((epoch - 1) * steps_per_epoch + step, params.epochs * steps_per_epoch)
    return 1.0


def per_step(params: TrainParams) -> bool:
    """Whether the schedule changes the learning rate within an epoch."""
    return params.schedule == "onecycle"


def set_lr(
    optimizer: torch.optim.Optimizer, params: TrainParams, epoch: int, step: int = 0, steps_per_epoch: int = 1
) -> None:
    """A pure function of (epoch, step), so a resumed run needs no scheduler state."""
    factor = lr_factor(params, epoch, step, steps_per_epoch)
    for group in optimizer.param_groups:
        group["lr"] = params.lr * group["lr_scale"] * factor
