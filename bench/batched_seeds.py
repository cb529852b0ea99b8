"""Seeds trained together: K copies of a model family as one batched model, images/s summed.

    python bench/batched_seeds.py --families cnn-28      # CPU, a smoke test
    python bench/batched_seeds.py --device cuda --seeds 1 5 16 64

The study trains each seed of a (dataset, variant) in its own run, one after another. On a GPU
a small model's step is bound by kernel launches (bench/README.md, "GPU path"), so K seeds
stacked into one model (`torch.func.stack_module_state`) and stepped with `vmap(grad(...))`
launch each layer's kernels once for all K. For each family and K this measures the training
step (forward, backward, SGD with momentum on the stacked weights, the loss read every step as
the Trainer does) on random data, K x batch images per step, and prints images/s summed over
the K models, beside the plain step of one model (`stn.training.loop.train_step`, the same SGD
with momentum): the ratios are to that plain step. It first checks that the batched step computes
what K separate steps compute (dropout off; largest difference of the gradients). Not the
project's trainer: this measures what such a trainer would gain, before the stage layout is
changed for it. On the CPU the tutorial STNs do not batch (their first-layer input-gradient is a
custom autograd function without a vmap rule).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from common import machine  # noqa: E402
from speed import FAMILIES, synchronize  # noqa: E402

from stn.models.builder import InputShape, build_model  # noqa: E402
from stn.training.loop import train_step  # noqa: E402
from stn.variant import VariantSpec  # noqa: E402


def models_of(family: str, k: int, device: torch.device) -> list[torch.nn.Module]:
    fields, side, _ = FAMILIES[family]
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(build_model(VariantSpec(**fields), InputShape(size=(side, side))).to(device))
    return models


def batched_step(models: list[torch.nn.Module], lr: float = 0.01, momentum: float = 0.9) -> tuple:
    """(step, stacked params, vmapped grad-and-loss function, stacked buffers) of the K models:
    step(x (K, B, 1, H, W), y (K, B)) updates the stacked weights and returns the losses (K,)."""
    params, buffers = stack_module_state(models)
    params = {name: p.detach() for name, p in params.items()}  # updated in place, outside autograd
    base = copy.deepcopy(models[0]).to("meta")
    base.train(models[0].training)

    def loss(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(functional_call(base, (p, b), (x,)), y)

    # With a transformer, the input's gradient too (unused): without it grid_sample's batched
    # backward gets an undefined input gradient and fails (torch 2.11).
    argnums = (0, 2) if getattr(models[0], "stn", None) is not None else (0,)
    grads_and_loss = vmap(grad_and_value(loss, argnums=argnums), randomness="different")
    names = list(params)
    velocity = [torch.zeros_like(params[n]) for n in names]

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        (grads, *_), value = grads_and_loss(params, buffers, x, y)
        g = [grads[n] for n in names]
        torch._foreach_mul_(velocity, momentum)
        torch._foreach_add_(velocity, g)
        torch._foreach_add_([params[n] for n in names], velocity, alpha=-lr)
        return value

    return step, params, grads_and_loss, buffers


def same_gradients(family: str, device: torch.device, k: int = 3, batch: int = 16) -> float:
    """Largest |difference| between the batched gradients and K separate backward passes."""
    models = [m.eval() for m in models_of(family, k, device)]
    side = FAMILIES[family][1]
    x = torch.randn(k, batch, 1, side, side, device=device)
    y = torch.randint(0, 10, (k, batch), device=device)
    _, params, grads_and_loss, buffers = batched_step(models)
    (grads, *_), _ = grads_and_loss(params, buffers, x, y)
    worst = 0.0
    for i, model in enumerate(models):
        model.zero_grad()
        F.nll_loss(model(x[i]), y[i]).backward()
        for name, p in model.named_parameters():
            worst = max(worst, (grads[name][i] - p.grad).abs().max().item())
    return worst


def _rate(step: Callable[[], torch.Tensor], images: int, device: torch.device, seconds: float) -> float:
    """Images/s of `step` (`images` per call) after 5 warm-up calls, reading each call's loss as
    the Trainer does."""
    for _ in range(5):
        step().sum().item()
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        step().sum().item()
        steps += 1
    synchronize(device)
    return steps * images / (time.perf_counter() - start)


def plain_images_per_second(family: str, batch: int, device: torch.device, seconds: float) -> float:
    """One model, the project's training step, the same SGD with momentum as batched_step."""
    (model,) = models_of(family, 1, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    side = FAMILIES[family][1]
    x = torch.randn(batch, 1, side, side, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return _rate(lambda: train_step(model, optimizer, x, y)[0], batch, device, seconds)


def images_per_second(family: str, k: int, batch: int, device: torch.device, seconds: float) -> float:
    """K models stacked, one batched step for all (batched_step)."""
    models = [m.train() for m in models_of(family, k, device)]
    side = FAMILIES[family][1]
    x = torch.randn(k, batch, 1, side, side, device=device)
    y = torch.randint(0, 10, (k, batch), device=device)
    step = batched_step(models)[0]
    return _rate(lambda: step(x, y), k * batch, device, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--families", nargs="+", default=["stn-28", "cnn-28", "paper-stn-28", "paper-cnn-28"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 5], help="K, models stacked")
    parser.add_argument("--batch", type=int, default=64, help="images per model per step")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32
    if device.type == "cpu":
        torch.set_num_threads(1)
    print(f"machine: {machine()}; batch {args.batch} per model; fp32", flush=True)
    for family in args.families:
        try:
            check = f"batched gradients within {same_gradients(family, device):.1e} of separate ones"
        except Exception as exc:  # noqa: BLE001 -- an op without a batching rule: say which, go on
            print(f"{family}: not batched: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            continue
        plain = plain_images_per_second(family, args.batch, device, args.seconds)
        rates = {k: images_per_second(family, k, args.batch, device, args.seconds) for k in args.seeds}
        cells = [f"K={k}: {r:8.0f} img/s ({r / plain:4.1f}x)" for k, r in rates.items()]
        print(f"{family:13s} {check}; plain step {plain:8.0f} img/s; " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
