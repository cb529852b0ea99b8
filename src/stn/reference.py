"""The PyTorch STN tutorial's way of feeding and training, kept as the yardstick.

torchvision.datasets.MNIST with ToTensor + Normalize through a DataLoader (batch 64,
shuffle, 4 workers). Used by the speed benchmark and by the test that checks the fast
path computes the same loss for the same batch and weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from stn.idx import encode_idx
from stn.normalization import MNIST_MEAN, MNIST_STD

TUTORIAL_TRANSFORM = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
)


def write_torchvision_root(root: Path, train: tuple[np.ndarray, np.ndarray]) -> Path:
    """Lay out uncompressed IDX files where torchvision.datasets.MNIST looks for them."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = train
    (raw / "train-images-idx3-ubyte").write_bytes(encode_idx(images))
    (raw / "train-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    # torchvision checks that the test files exist too; they are not read for training.
    (raw / "t10k-images-idx3-ubyte").write_bytes(encode_idx(images[:1]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels[:1]))
    return Path(root)


def tutorial_dataset(root: Path) -> datasets.MNIST:
    return datasets.MNIST(str(root), train=True, download=False, transform=TUTORIAL_TRANSFORM)


def tutorial_loader(
    root: Path, batch_size: int = 64, num_workers: int = 4, order: list[int] | None = None
) -> DataLoader:
    """The tutorial's loader; `order` fixes the batch order (else shuffled as the tutorial does)."""
    return DataLoader(
        tutorial_dataset(root),
        batch_size=batch_size,
        shuffle=order is None,
        sampler=order,
        num_workers=num_workers,
    )


def reference_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> float:
    """The tutorial's training step, verbatim in spirit."""
    optimizer.zero_grad()
    output = model(x)
    loss = F.nll_loss(output, y)
    loss.backward()
    optimizer.step()
    return loss.item()
