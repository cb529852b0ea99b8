"""The classifier's first convolution: nn.Conv2d's function with a cheaper input gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stn.models.single_input_conv import SingleInputConv2d, conv_input_grad


def _pair(out_channels: int = 10, kernel: int = 5) -> tuple[SingleInputConv2d, nn.Conv2d]:
    torch.manual_seed(0)
    fast = SingleInputConv2d(out_channels, kernel)
    plain = nn.Conv2d(1, out_channels, kernel)
    plain.load_state_dict(fast.state_dict())  # same keys and shapes as nn.Conv2d
    return fast, plain


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_same_outputs_and_gradients_as_conv2d(memory_format: torch.memory_format) -> None:
    fast, plain = _pair()
    fast.to(memory_format=memory_format)
    plain.to(memory_format=memory_format)
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=memory_format)
    x_fast, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_fast, out_plain = fast(x_fast), plain(x_plain)
    assert torch.equal(out_fast, out_plain)  # the forward pass is PyTorch's own
    grad_out = torch.randn_like(out_plain)
    out_fast.backward(grad_out)
    out_plain.backward(grad_out)
    torch.testing.assert_close(x_fast.grad, x_plain.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad)
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad)


def test_gradcheck_in_double_precision() -> None:
    fast, _ = _pair(out_channels=3, kernel=3)
    fast.double()
    x = torch.randn(2, 1, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast, (x,))


def test_input_gradient_formula_against_autograd() -> None:
    weight = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 9, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 4, 6, 7, dtype=torch.float64)
    (expected,) = torch.autograd.grad(torch.nn.functional.conv2d(x, weight), x, grad_out)
    torch.testing.assert_close(conv_input_grad(grad_out, weight), expected)


def test_plain_path_without_input_gradient() -> None:
    fast, plain = _pair()
    x = torch.randn(4, 1, 28, 28)
    out = fast(x)  # input needs no gradient: nn.Conv2d's own forward and backward
    assert out.grad_fn is not None and "SingleInput" not in type(out.grad_fn).__name__
    with torch.inference_mode():
        assert torch.equal(fast(x), plain(x))
