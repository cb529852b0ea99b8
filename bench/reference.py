"""The PyTorch STN tutorial's way of feeding and training, kept as the yardstick.

torchvision.datasets.MNIST with ToTensor + Normalize through a DataLoader (batch 64,
shuffle, 4 workers), and the network built from stock layers as the tutorial and the
original study wrote it. Used by the speed benchmarks and by the test that checks the fast
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

from stn.datasets.idx import encode_idx
from stn.datasets.normalization import Normalization
from stn.models.builder import STNClassifier, build_model
from stn.models.coordconv import AddCoords, CoordConv2d
from stn.models.single_input_conv import SingleInputConv2d
from stn.variant import VariantSpec

# The tutorial's normalisation constants (MNIST's training-set mean and std, rounded).
TUTORIAL_MEAN, TUTORIAL_STD = 0.1307, 0.3081
TUTORIAL_NORMALIZATION = Normalization(TUTORIAL_MEAN, TUTORIAL_STD)  # the same, as the project computes it
TUTORIAL_TRANSFORM = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize((TUTORIAL_MEAN,), (TUTORIAL_STD,))]
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


class ConcatCoordConv2d(nn.Module):
    """CoordConv as the original study computed it: convolve [input, coordinates]."""

    def __init__(self, layer: CoordConv2d) -> None:
        super().__init__()
        self.add_coords: AddCoords = layer.add_coords
        self.conv: nn.Conv2d = layer.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.add_coords(x))


def _stock_conv(layer: SingleInputConv2d) -> nn.Conv2d:
    conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size)
    conv.load_state_dict(layer.state_dict())
    return conv


def tutorial_model(spec: VariantSpec) -> STNClassifier:
    """build_model(spec) with the project's faster layers swapped for stock ones.

    Same weights, same state_dict keys, same global RNG state afterwards as build_model(spec),
    so a seed gives the same initial network and the same dropout masks in both.
    """
    model = build_model(spec)
    with torch.random.fork_rng(devices=[]):  # building the stock conv must not draw from the RNG
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if isinstance(child, SingleInputConv2d):
                    setattr(parent, name, _stock_conv(child))
                elif isinstance(child, CoordConv2d):
                    setattr(parent, name, ConcatCoordConv2d(child))
    return model


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
