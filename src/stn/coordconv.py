"""CoordConv (Liu et al. 2018): give a convolution access to where it is looking."""

from __future__ import annotations

import torch
from torch import nn


class AddCoords(nn.Module):
    """Append x and y coordinate channels in [-1, 1] (and optionally a radius channel).

    Channel order after the input channels: x (varies along width), y (varies
    along height), then r = sqrt(x^2 + y^2) centred on the image centre. The
    channels are built on the input's device and dtype, so the layer works on
    GPU and under autocast without registering any buffer or parameter.
    """

    def __init__(self, with_radius: bool = False) -> None:
        super().__init__()
        self.with_radius = with_radius

    @property
    def extra_channels(self) -> int:
        return 3 if self.with_radius else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        xs = torch.linspace(-1.0, 1.0, width, device=x.device, dtype=x.dtype)
        ys = torch.linspace(-1.0, 1.0, height, device=x.device, dtype=x.dtype)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        coords = [xx, yy]
        if self.with_radius:
            coords.append(torch.sqrt(xx * xx + yy * yy))
        grid = torch.stack(coords).unsqueeze(0).expand(batch, -1, -1, -1)
        return torch.cat([x, grid], dim=1)

    def extra_repr(self) -> str:
        return f"with_radius={self.with_radius}"


class CoordConv2d(nn.Module):
    """AddCoords followed by an ordinary Conv2d that sees the extra channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        with_radius: bool = False,
        **conv_kwargs: object,
    ) -> None:
        super().__init__()
        self.add_coords = AddCoords(with_radius)
        self.conv = nn.Conv2d(
            in_channels + self.add_coords.extra_channels,
            out_channels,
            kernel_size,
            **conv_kwargs,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.add_coords(x))
