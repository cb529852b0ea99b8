"""The tutorial's LeNet-style classifier, sized from its input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn.models.coordconv import CoordConv2d
from stn.models.single_input_conv import SingleInputConv2d


def _after_conv_pool(size: int) -> int:
    """Side length after a 5x5 valid conv and a 2x2 max-pool."""
    return (size - 4) // 2


class Classifier(nn.Module):
    """conv 5x5 -> pool -> ReLU -> conv 5x5 -> dropout -> pool -> ReLU -> fc 50 -> fc classes."""

    def __init__(self, in_size: tuple[int, int] = (28, 28), classes: int = 10, layer: str = "conv") -> None:
        super().__init__()
        height, width = (_after_conv_pool(_after_conv_pool(s)) for s in in_size)
        if height < 1 or width < 1:
            raise ValueError(f"the classifier needs inputs of at least 16x16 pixels, got {in_size}")
        if layer == "coordconv":  # coordinate channels into both convolutions
            self.conv1: nn.Module = CoordConv2d(1, 10, 5)
            self.conv2: nn.Module = CoordConv2d(10, 20, 5)
        else:
            # nn.Conv2d(1, 10, 5) with a faster input gradient (it feeds the STN's gradient).
            self.conv1 = SingleInputConv2d(10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(20 * height * width, 50)  # 320 for 28x28 inputs
        self.fc2 = nn.Linear(50, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)
