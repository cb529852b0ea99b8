"""The spatial transformer: localization net -> transform -> resampled input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stn.models.coordconv import CoordConv2d
from stn.models.transforms import TRANSFORMS, sampling_grid
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


class SpatialTransformer(nn.Module):
    """The tutorial's localization net, sized from the input, predicting one transform family.

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
        self.out_size = tuple(spec.output_size or in_size)
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
        # Start from the identity transform so early training sees the unwarped digit.
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor(self.family.identity))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The localization net's raw output: (N, n_params) numbers of the family."""
        return self.fc_loc(self.localization(x).flatten(1))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2, 3) affine rows, or (N, 3, 3) matrices for a projective family or iterations."""
        if self.iterations == 1 and not self.family.projective:
            return self.family.rows(self.predict(x))
        matrix = torch.eye(3, dtype=x.dtype, device=x.device).expand(len(x), 3, 3)
        for step in range(self.iterations):
            current = x if step == 0 else self.sample(x, matrix, x.shape)
            # I_k(u) = I(M_k u); the update acts in I_k's frame: I_k(D u) = I(M_k D u).
            matrix = matrix @ self.family.matrix(self.predict(current))
        return matrix

    def sample(self, x: torch.Tensor, matrix: torch.Tensor, size: torch.Size | tuple) -> torch.Tensor:
        grid = sampling_grid(matrix, tuple(size), self.align_corners)
        if self.padding == "background":
            # grid_sample pads with 0; shifting by the background makes the padding the background.
            return (
                F.grid_sample(x - self.background, grid, align_corners=self.align_corners) + self.background
            )
        return F.grid_sample(x, grid, align_corners=self.align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sample(x, self.transform(x), (len(x), x.shape[1], *self.out_size))
