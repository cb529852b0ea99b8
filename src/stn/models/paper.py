"""The STN paper's distorted-MNIST models (Jaderberg et al. 2015, appendix A, Table 1), param-matched.

CNN: conv 9x9 -> ReLU -> max-pool 2 -> conv 7x7 -> ReLU -> max-pool 2 -> fully connected ->
softmax. ST-CNN: the spatial transformer on the input (its localisation net is built in
stn.models.localization from the sizes below), then the same CNN with its second conv
slimmed, or widened, so that the whole model has as many parameters as the experiment's CNN
(Table 1's caption: the models of one experiment have the same number of parameters).

Max-pools round up (ceil_mode): RTS's transformer output pooled to 21x21 would otherwise be
6x6 after the first conv and pool, too small for the 7x7 conv; the only public code
(chainer-spatial-transformer-networks) pools the same way (chainer's cover_all). For 28x28
inputs rounding up or down gives the same sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stn.models.single_input_conv import SingleInputConv2d

# --- Every size of the paper's models, in one place (Jaderberg et al. 2015, appendix A, distorted
# MNIST; the appendix's text was not at hand: kernel sizes and the localisation net as secondary
# sources report them, CNN filter counts those of public reimplementations).
CNN_KERNELS = (9, 7)  # conv 9x9 -> max-pool 2 -> conv 7x7 -> max-pool 2
CNN_FILTERS = (32, 64)  # the CNN baseline's filters; an ST-CNN keeps the first and matches the second
LOC_DOWNSAMPLE = 2  # the localisation net looks at the input max-pooled 2x
LOC_KERNEL = 5  # two 5x5 convs with 20 filters each, each followed by a max-pool 2
LOC_FILTERS = 20
RTS_POOL = 2  # a transformer output larger than 28x28 (RTS: 42x42) is average-pooled 2x
NATIVE_SIDE = 28  # MNIST's digit size: outputs larger than this are pooled
MATCH_TOLERANCE = 0.05  # an ST-CNN's parameter count is within 5% of its experiment's CNN


def pooled_side(side: int) -> int:
    """Side length after a 2x2 max-pool that rounds up."""
    return math.ceil(side / 2)


def classifier_feature_side(side: int) -> int:
    """Side of the paper classifier's last feature map for an input side (2 for 28, 6 for 42, 1 for 21)."""
    for kernel in CNN_KERNELS:
        side = side - kernel + 1
        if side < 1:
            return 0
        side = pooled_side(side)
    return side


def classifier_parameters(in_size: tuple[int, int], filters: tuple[int, int], classes: int) -> int:
    """Parameters of `PaperClassifier(in_size, classes, filters)`, without building it."""
    c1, c2 = filters
    (k1, k2), (h, w) = CNN_KERNELS, (classifier_feature_side(s) for s in in_size)
    return (k1 * k1 + 1) * c1 + (c1 * k2 * k2 + 1) * c2 + (c2 * h * w + 1) * classes


def matched_filters(
    input_size: tuple[int, int], classifier_size: tuple[int, int], classes: int, stn_parameters: int
) -> tuple[int, int]:
    """The ST-CNN classifier's filters: the first conv's as the CNN's, the second's chosen so that the
    ST-CNN (`stn_parameters` + its classifier on `classifier_size`) has about as many parameters as
    the CNN on `input_size`. Raises ValueError when no count is within MATCH_TOLERANCE."""
    target = classifier_parameters(input_size, CNN_FILTERS, classes)
    c1 = CNN_FILTERS[0]

    def gap(c2: int) -> int:
        return abs(classifier_parameters(classifier_size, (c1, c2), classes) + stn_parameters - target)

    best = min(range(1, 4 * CNN_FILTERS[1] + 1), key=gap)
    if gap(best) > MATCH_TOLERANCE * target:
        raise ValueError(
            f"no ST-CNN classifier matches the CNN's {target} parameters within {MATCH_TOLERANCE:.0%} "
            f"(input {input_size}, localisation net {stn_parameters} parameters)"
        )
    return c1, best


def output_pool(architecture: str, requested: int | None, out_size: tuple[int, int]) -> int:
    """The average-pool factor of a transformer's output: `requested`, or derived (RTS_POOL for the
    paper's models on outputs larger than 28x28, as the paper's RTS model; else 1)."""
    if requested is not None:
        return requested
    return RTS_POOL if architecture == "paper" and max(out_size) > NATIVE_SIDE else 1


class PaperClassifier(nn.Module):
    """conv 9x9 -> ReLU -> max-pool 2 -> conv 7x7 -> ReLU -> max-pool 2 -> fc -> log-softmax.

    Input (N, 1, H, W); output (N, classes) log-probabilities. `filters` are the two convs'.
    """

    def __init__(
        self, in_size: tuple[int, int] = (28, 28), classes: int = 10, filters: tuple[int, int] = CNN_FILTERS
    ) -> None:
        super().__init__()
        height, width = (classifier_feature_side(s) for s in in_size)
        if height < 1 or width < 1:
            raise ValueError(f"the paper's classifier needs inputs of at least 21x21 pixels, got {in_size}")
        c1, c2 = filters
        # nn.Conv2d(1, c1, 9) with a faster input gradient (it feeds the STN's gradient).
        self.conv1 = SingleInputConv2d(c1, kernel_size=CNN_KERNELS[0])
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=CNN_KERNELS[1])
        self.fc = nn.Linear(c2 * height * width, classes)

    @property
    def filters(self) -> tuple[int, int]:
        return self.conv1.out_channels, self.conv2.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max-pool then ReLU equals ReLU then max-pool (ReLU is monotone), values and gradients bit
        # for bit, and the ReLU touches a quarter of the values.
        x = F.relu(F.max_pool2d(self.conv1(x), 2, ceil_mode=True))
        x = F.relu(F.max_pool2d(self.conv2(x), 2, ceil_mode=True))
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)
