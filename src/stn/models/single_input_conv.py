"""A Conv2d with one input channel whose input gradient is cheap on the CPU.

The classifier's first convolution (1 -> 10 channels, 5x5) needs the gradient with respect
to its input, because that input is the spatial transformer's output. oneDNN computes it as
a transposed convolution with a single output channel, which runs several times slower than
the forward pass (about 2 ms of a 9 ms training step on one core). Here it is one matrix
product (kernel taps x channels) @ (channels x pixels) followed by k*k shifted additions.
Forward pass and weight gradient are PyTorch's own, so outputs are unchanged; the input
gradient differs from oneDNN's only by the order of float additions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_input_grad(grad_out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """d(loss)/d(input) of a stride-1, unpadded conv2d with one input channel."""
    n, c, h, w = grad_out.shape
    k = weight.shape[-1]
    # taps[i, j] = sum over output channels of weight[c, 0, i, j] * grad_out[:, c]
    taps = weight.reshape(c, k * k).t() @ grad_out.transpose(0, 1).reshape(c, n * h * w)
    taps = taps.view(k, k, n, h, w)
    grad_in = grad_out.new_zeros(n, h + k - 1, w + k - 1)
    for i in range(k):
        for j in range(k):
            grad_in[:, i : i + h, j : j + w] += taps[i, j]
    return grad_in.unsqueeze(1)


class _SingleInputConv(torch.autograd.Function):
    # setup_context and a generated vmap rule: the stacked-seeds trainer (stn.training.stacked)
    # differentiates it under torch.func.vmap.
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            weight,
            [weight.shape[0]],
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            1,
            [False, need_w, need_b],
        )
        grad_x = conv_input_grad(grad_out, weight) if need_x else None
        return grad_x, grad_w, grad_b


class SingleInputConv2d(nn.Conv2d):
    """nn.Conv2d(1, out_channels, kernel_size) with the cheap input gradient on the CPU.

    Same parameters and state_dict keys as nn.Conv2d; on other devices, or when the input
    needs no gradient, it is plain nn.Conv2d.
    """

    def __init__(self, out_channels: int, kernel_size: int) -> None:
        super().__init__(1, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled():
            return _SingleInputConv.apply(x, self.weight, self.bias)
        return super().forward(x)
