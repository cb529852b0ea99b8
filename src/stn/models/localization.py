"""The spatial transformer: localization net -> transform -> resampled input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn.models import paper
from stn.models.coordconv import CoordConv2d
from stn.models.transforms import TRANSFORMS
from stn.variant import VariantSpec


def _conv(spec: VariantSpec, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    if spec.layer == "coordconv":
        return CoordConv2d(in_channels, out_channels, kernel_size, with_radius=spec.coord_radius)
    return nn.Conv2d(in_channels, out_channels, kernel_size)


def _activation(spec: VariantSpec) -> nn.Module:
    if spec.activation == "identity":  # the original study's LeakyReLU(True): slope 1
        return nn.Identity()
    if spec.activation == "leakyrelu":
        # negative_slope by keyword: LeakyReLU(True) would mean slope 1 (no nonlinearity).
        return nn.LeakyReLU(negative_slope=spec.negative_slope)
    return nn.ReLU()


def _paper_localization(spec: VariantSpec, in_channels: int) -> nn.Sequential:
    """The STN paper's localisation net (Jaderberg et al. 2015, appendix A, distorted MNIST): the input
    max-pooled 2x, then two 5x5 convs with 20 filters, each followed by a max-pool 2 (rounding up, see
    stn.models.paper) and the activation. (N, C, H, W) -> (N, 20, h, w): 1x1 for 28x28, 3x3 for 42x42."""
    return nn.Sequential(
        nn.MaxPool2d(paper.LOC_DOWNSAMPLE),
        _conv(spec, in_channels, paper.LOC_FILTERS, paper.LOC_KERNEL),
        nn.MaxPool2d(2, stride=2, ceil_mode=True),
        _activation(spec),
        _conv(spec, paper.LOC_FILTERS, paper.LOC_FILTERS, paper.LOC_KERNEL),
        nn.MaxPool2d(2, stride=2, ceil_mode=True),
        _activation(spec),
    )


class SpatialTransformer(nn.Module):
    """A localization net, sized from the input, predicting one transform family; the input resampled.

    The tutorial's net (conv 7x7 -> conv 5x5 -> fc 32 -> fc) or, with `architecture: paper`, the STN
    paper's (`_paper_localization` -> fc), whose last layer starts at the family's identity. Input
    (N, C, H, W); output (N, C, *out_size): the resampled `grid_size` image, average-pooled by `pool`.

    With `iterations` > 1 it is an inverse-compositional STN (Lin & Lucey 2017): the same
    net looks at the input warped by the current transform, predicts an update that is
    composed with it, and the original input is resampled once with the final transform.
    """

    def __init__(
        self, spec: VariantSpec, in_size: tuple[int, int], in_channels: int = 1, background: float = 0.0
    ) -> None:
        super().__init__()
        self.family = TRANSFORMS[spec.transform]
        self.align_corners = spec.align_corners
        self.iterations = spec.iterations
        self.padding = spec.padding
        self.background = float(background)
        self.grid_size = tuple(spec.output_size or in_size)
        self.pool = paper.output_pool(spec.architecture, spec.output_pool, self.grid_size)
        self.out_size = tuple(s // self.pool for s in self.grid_size)
        if spec.architecture == "paper":
            self.localization = _paper_localization(spec, in_channels)
            with torch.no_grad():
                features = self.localization(torch.zeros(1, in_channels, *in_size)).numel()
            self.fc_loc = nn.Sequential(nn.Linear(features, self.family.n_params))
        else:
            self._tutorial_localization(spec, in_size, in_channels)
        # Start from the identity transform so early training sees the unwarped digit.
        nn.init.zeros_(self.fc_loc[-1].weight)
        with torch.no_grad():
            self.fc_loc[-1].bias.copy_(torch.tensor(self.family.identity))

    def _tutorial_localization(self, spec: VariantSpec, in_size: tuple[int, int], in_channels: int) -> None:
        """The PyTorch tutorial's localization net (module names and creation order are the original's)."""
        self.localization = nn.Sequential(
            _conv(spec, in_channels, 8, 7),
            nn.MaxPool2d(2, stride=2),
            _activation(spec),
            _conv(spec, 8, 10, 5),
            nn.MaxPool2d(2, stride=2),
            _activation(spec),
        )
        with torch.no_grad():  # the flattened size for this input size (90 for 28x28)
            features = self.localization(torch.zeros(1, in_channels, *in_size)).numel()
        self.fc_loc = nn.Sequential(
            nn.Linear(features, 32), _activation(spec), nn.Linear(32, self.family.n_params)
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The localization net's raw output: (N, n_params) numbers of the family."""
        return self.fc_loc(self.localization(x).flatten(1))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The warp: (N, 2, 3) affine rows, (N, 3, 3) matrices for a projective family or iterations,
        or the (N, K, 2) control points of a TPS."""
        if not self.family.composable:
            return self.family.warp(self.predict(x))
        if self.iterations == 1 and not self.family.projective:
            return self.family.rows(self.predict(x))
        matrix = torch.eye(3, dtype=x.dtype, device=x.device).expand(len(x), 3, 3)
        for step in range(self.iterations):
            current = x if step == 0 else self.sample(x, matrix, x.shape)
            # I_k(u) = I(M_k u); the update acts in I_k's frame: I_k(D u) = I(M_k D u).
            matrix = matrix @ self.family.matrix(self.predict(current))
        return matrix

    def sample(self, x: torch.Tensor, theta: torch.Tensor, size: torch.Size | tuple) -> torch.Tensor:
        """x (N, C, H, W) resampled through the warp `theta` into an output of `size` (N, C, h, w)."""
        grid = self.family.grid(theta, tuple(size), self.align_corners)
        if self.padding == "background":
            # grid_sample pads with 0; shifting by the background makes the padding the background.
            return (
                F.grid_sample(x - self.background, grid, align_corners=self.align_corners) + self.background
            )
        return F.grid_sample(x, grid, align_corners=self.align_corners)

    def resample(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """What the classifier sees for the warp `theta`: (N, C, *grid_size), pooled to (N, C, *out_size)."""
        out = self.sample(x, theta, (len(x), x.shape[1], *self.grid_size))
        return F.avg_pool2d(out, self.pool) if self.pool > 1 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resample(x, self.transform(x))
