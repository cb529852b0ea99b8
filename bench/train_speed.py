"""Training speed and equivalence: the tutorial's loop vs the project's, side by side.

    python bench/train_speed.py            # targets 1, 2a, 4, 5 (a few minutes)
    python bench/train_speed.py --quality  # target 2b: test accuracy, 3 seeds x 20 epochs each

Run from the project root; MNIST comes from data/mnist or MNIST_MIRROR.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time

import numpy as np
import torch
from common import machine, mnist_arrays, scratch_dir

from stn.evaluate import predict
from stn.model import build_model
from stn.normalization import normalize
from stn.params import TrainParams
from stn.reference import reference_step, tutorial_loader, write_torchvision_root
from stn.train import Trainer, train_step
from stn.variant import VariantSpec

SPEC = VariantSpec()  # stn-conv
CPU_THREADS = torch.get_num_threads()


def reference_epoch(root, seed: int, warmup_steps: int = 50) -> float:
    """Images/s of the tutorial loop over one epoch, after `warmup_steps` untimed batches."""
    torch.set_num_threads(CPU_THREADS)
    torch.manual_seed(seed)
    model = build_model(SPEC)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for step, (x, y) in enumerate(tutorial_loader(root)):
        if step == warmup_steps:
            start, seen = time.perf_counter(), 0
        reference_step(model, optimizer, x, y)
        if step >= warmup_steps:
            seen += len(y)
    return seen / (time.perf_counter() - start)


def fast_epoch(images, labels, threads: int, seed: int) -> float:
    """Images/s of the project's loop over its second full epoch (the first is warm-up)."""
    trainer = Trainer(SPEC, TrainParams(epochs=2, threads=threads), seed, images, labels, log=lambda m: None)
    trainer.fit()
    return len(labels) / trainer.history[1].seconds


def same_function(root, images, labels, channels_last: bool, steps: int = 200, seed: int = 0) -> float:
    """Max |loss difference| over the first `steps` steps: same init, same batch order, no dropout.

    channels_last=False: both loops run free for `steps` steps. channels_last=True: the
    memory format changes the order of float sums, and training amplifies such rounding
    differences step after step (as a different thread count does), so the fast model is
    reset to the reference's weights before each step: the per-step function is compared.
    """
    torch.set_num_threads(CPU_THREADS)
    torch.manual_seed(seed)
    ref = build_model(SPEC).eval()  # eval(): dropout off, nothing else changes in this model
    fast = copy.deepcopy(ref)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    fast = fast.to(memory_format=memory_format)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.01)
    opt_fast = torch.optim.SGD(fast.parameters(), lr=0.01)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    loader = tutorial_loader(root, order=order.tolist())
    x_all = normalize(images).contiguous(memory_format=memory_format)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    worst = 0.0
    for step, (x, y) in enumerate(loader):
        if step == steps:
            break
        idx = order[step * 64 : (step + 1) * 64]
        assert torch.equal(y_all[idx], y), "batch order differs"
        if channels_last:
            fast.load_state_dict(ref.state_dict())
        loss_fast = train_step(fast, opt_fast, x_all[idx], y_all[idx])[0].item()
        loss_ref = reference_step(ref, opt_ref, x, y)
        worst = max(worst, abs(loss_ref - loss_fast))
    return worst


def evaluation_seconds(images: np.ndarray) -> float:
    torch.set_num_threads(CPU_THREADS)
    model = build_model(SPEC)
    predict(model, images[:1000])  # warm-up
    start = time.perf_counter()
    predict(model, images)
    return time.perf_counter() - start


def peak_memory_mib() -> float:
    """Peak RSS of a separate process that trains stn-conv for one full epoch."""
    code = (
        "import sys; sys.path.insert(0, 'bench');"
        "from common import mnist_arrays; from stn.train import Trainer; from stn.params import TrainParams;"
        "from stn.variant import VariantSpec;"
        "Trainer(VariantSpec(), TrainParams(epochs=1), 0, *mnist_arrays('train'), log=lambda m: None).fit();"
        "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def test_accuracy_after(images, labels, test, epochs: int, seed: int, reference: bool, root) -> float:
    torch.manual_seed(seed)
    if reference:
        torch.set_num_threads(CPU_THREADS)
        model = build_model(SPEC)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = tutorial_loader(root)
        for _ in range(epochs):
            model.train()
            for x, y in loader:
                reference_step(model, optimizer, x, y)
    else:
        trainer = Trainer(
            SPEC, TrainParams(epochs=epochs, threads=CPU_THREADS), seed, images, labels, log=lambda m: None
        )
        trainer.fit()
        model = trainer.model
    log_probs = predict(model.cpu(), test[0])
    return float((log_probs.argmax(1) == test[1]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", action="store_true", help="run target 2b instead (long)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    images, labels = mnist_arrays("train")
    root = write_torchvision_root(scratch_dir(), (images, labels))

    if args.quality:
        test = mnist_arrays("test")
        acc = {"reference": [], "fast": []}
        for seed in args.seeds:
            for name in acc:
                start = time.perf_counter()
                acc[name].append(
                    test_accuracy_after(images, labels, test, args.epochs, seed, name == "reference", root)
                )
                print(
                    f"seed {seed} {name:9s}: test accuracy {100 * acc[name][-1]:.2f}% "
                    f"after {args.epochs} epochs ({time.perf_counter() - start:.0f}s)",
                    flush=True,
                )
        ref, fast = np.array(acc["reference"]), np.array(acc["fast"])
        diff = fast - ref
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        margin = max(0.0015, se)
        print(
            f"mean test accuracy: reference {100 * ref.mean():.2f}%, fast {100 * fast.mean():.2f}%; "
            f"fast - reference = {100 * diff.mean():+.2f} pp "
            f"(s.e. of the paired difference {100 * se:.2f} pp)"
        )
        verdict = "met" if diff.mean() >= -margin else "NOT met"
        print(
            f"target 2b (fast not lower by more than max(0.15 pp, 1 s.e.) = {100 * margin:.2f} pp): {verdict}"
        )
        return

    ref = reference_epoch(root, seed=0)
    print(f"reference loop (DataLoader, 4 workers, {CPU_THREADS} threads): {ref:7.0f} images/s", flush=True)
    for threads in sorted({1, CPU_THREADS}):
        fast = fast_epoch(images, labels, threads, seed=0)
        print(
            f"project loop, {threads} thread(s):                    {fast:7.0f} images/s  "
            f"= {fast / ref:.2f}x reference",
            flush=True,
        )
    free = same_function(root, images, labels, channels_last=False)
    print(f"target 2a: max |loss difference| over 200 free-running steps, contiguous tensors: {free:.2e}")
    synced = same_function(root, images, labels, channels_last=True)
    print(
        f"target 2a: max |loss difference| over 200 steps from the same weights, channels_last: {synced:.2e}"
    )
    test_images, _ = mnist_arrays("test")
    print(f"target 4: evaluation of {len(test_images)} test images: {evaluation_seconds(test_images):.2f} s")
    print(f"target 5: peak memory of one training process: {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
