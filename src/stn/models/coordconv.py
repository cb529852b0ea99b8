"""CoordConv (Liu et al. 2018): give a convolution access to where it is looking."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

    def planes(self, like: torch.Tensor) -> torch.Tensor:
        """The coordinate channels for inputs shaped like `like`: (1, extra_channels, H, W)."""
        height, width = like.shape[-2:]
        xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
        ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        coords = [xx, yy]
        if self.with_radius:
            coords.append(torch.sqrt(xx * xx + yy * yy))
        return torch.stack(coords).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.planes(x).expand(x.shape[0], -1, -1, -1)
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
        conv = self.conv
        if conv.groups != 1 or conv.padding_mode != "zeros":
            return conv(self.add_coords(x))
        # Convolution is linear in its input channels, and the coordinate channels are the
        # same for every image: convolve them once per batch, not once per image. Same
        # function as conv(cat([x, coords])), with the extra channels' work cut by the batch size.
        c = x.shape[1]
        kwargs = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation}
        image_part = F.conv2d(x, conv.weight[:, :c], conv.bias, **kwargs)
        coord_part = F.conv2d(self.add_coords.planes(x), conv.weight[:, c:], None, **kwargs)
        return image_part + coord_part
