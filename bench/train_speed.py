"""Training speed and equivalence: the tutorial's loop vs the project's, side by side.

    python bench/train_speed.py            # targets 1, 2a, 4, 5 (a few minutes)
    python bench/train_speed.py --quality  # target 2b: test accuracy, 3 seeds x 20 epochs each

Run from the project root; MNIST comes from data/mnist (the pipeline's `mnist` dataset),
prepared from data/raw/mnist or MNIST_MIRROR if missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch
from common import machine, mnist_arrays, mnist_meta, scratch_dir
from reference import (
    TUTORIAL_NORMALIZATION,
    reference_step,
    tutorial_loader,
    tutorial_model,
    write_torchvision_root,
)

from stn.analysis.evaluate import predict
from stn.datasets.store import DatasetMeta
from stn.models.builder import build_model
from stn.params.run import TrainParams
from stn.training.loop import Trainer, train_step
from stn.variant import VariantSpec

SPEC = VariantSpec()  # stn-conv
CPU_THREADS = torch.get_num_threads()


def reference_epoch(root, seed: int, warmup_steps: int = 50) -> float:
    """Images/s of the tutorial loop over one epoch, after `warmup_steps` untimed batches."""
    torch.set_num_threads(CPU_THREADS)
    torch.manual_seed(seed)
    model = tutorial_model(SPEC)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for step, (x, y) in enumerate(tutorial_loader(root)):
        if step == warmup_steps:
            start, seen = time.perf_counter(), 0
        reference_step(model, optimizer, x, y)
        if step >= warmup_steps:
            seen += len(y)
    return seen / (time.perf_counter() - start)


def fast_epoch(meta: DatasetMeta, images, labels, threads: int, seed: int) -> float:
    """Images/s of the project's loop over its second full epoch (the first is warm-up)."""
    params = TrainParams(epochs=2, threads=threads)
    trainer = Trainer(SPEC, params, seed, meta, images, labels, log=lambda m: None)
    trainer.fit()
    return len(labels) / trainer.history[1].seconds


def _update(before: list[torch.Tensor], model: torch.nn.Module) -> torch.Tensor:
    """The step's change of every parameter, as one vector."""
    after = model.parameters()
    return torch.cat([(p.detach() - p0).flatten() for p0, p in zip(before, after, strict=True)])


def speed_in_fresh_process(which: str) -> float:
    """Images/s of one loop ("reference" or "fast-THREADS"), measured by a new Python process."""
    cmd = [sys.executable, __file__, "--speed-of", which]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def same_function(
    root, images, labels, fast_model, memory_format, fast_threads: int, synced: bool, steps: int = 200
) -> tuple[float, float]:
    """The tutorial loop vs `fast_model` in the project's loop: same init, same batches, no dropout.

    Returns the max |loss difference| over the first `steps` steps and, when synced, the largest
    relative difference of a step's weight update, ||fast update - reference update|| over
    ||reference update|| (all parameters as one vector). synced=False: both run free, so float
    rounding differences compound step by step. synced=True: `fast_model` is reset to the
    reference's weights before each step, which compares the step function itself.
    """
    torch.manual_seed(0)
    ref = tutorial_model(SPEC).eval()  # eval(): dropout off, nothing else changes in this model
    fast = fast_model.eval().to(memory_format=memory_format)
    fast.load_state_dict(ref.state_dict())
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.01)
    opt_fast = torch.optim.SGD(fast.parameters(), lr=0.01)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    loader = tutorial_loader(root, order=order.tolist())
    x_all = TUTORIAL_NORMALIZATION(images).contiguous(memory_format=memory_format)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    worst_loss = worst_update = 0.0
    for step, (x, y) in enumerate(loader):
        if step == steps:
            break
        idx = order[step * 64 : (step + 1) * 64]
        assert torch.equal(y_all[idx], y), "batch order differs"
        if synced:
            fast.load_state_dict(ref.state_dict())
        before = [p.detach().clone() for p in ref.parameters()]
        torch.set_num_threads(fast_threads)
        loss_fast = train_step(fast, opt_fast, x_all[idx], y_all[idx])[0].item()
        torch.set_num_threads(CPU_THREADS)
        loss_ref = reference_step(ref, opt_ref, x, y)
        worst_loss = max(worst_loss, abs(loss_ref - loss_fast))
        if synced:
            update_ref, update_fast = _update(before, ref), _update(before, fast)
            relative = ((update_fast - update_ref).norm() / update_ref.norm()).item()
            worst_update = max(worst_update, relative)
    return worst_loss, worst_update


def target_2a(root, images, labels) -> None:
    cl, contiguous = torch.channels_last, torch.contiguous_format
    checks = (
        ("project loop, free-running, contiguous", lambda: build_model(SPEC), contiguous, False),
        ("project loop, free-running, channels-last (the default)", lambda: build_model(SPEC), cl, False),
        ("project loop, each step from the reference's weights", lambda: build_model(SPEC), cl, True),
    )
    for label, make, memory_format, synced in checks:
        loss, update = same_function(root, images, labels, make(), memory_format, CPU_THREADS, synced)
        extra = f", weight updates within {update:.1e} (relative norm)" if synced else ""
        print(f"target 2a: {label}: max |loss difference| over 200 steps {loss:.1e}{extra}", flush=True)
    # For scale: the same comparisons between the tutorial's own loop with 1 thread and with 2,
    # whose only difference is the order of float additions.
    for synced, label in ((False, "free-running"), (True, "each step from the same weights")):
        loss, update = same_function(root, images, labels, tutorial_model(SPEC), contiguous, 1, synced)
        extra = f", weight updates within {update:.1e} (relative norm)" if synced else ""
        print(
            f"for scale: tutorial loop, 1 thread vs 2 threads, {label}: "
            f"max |loss difference| {loss:.1e}{extra}",
            flush=True,
        )


def evaluation_seconds(images: np.ndarray) -> float:
    torch.set_num_threads(CPU_THREADS)
    model = build_model(SPEC)
    predict(model, images[:1000], TUTORIAL_NORMALIZATION)  # warm-up
    start = time.perf_counter()
    predict(model, images, TUTORIAL_NORMALIZATION)
    return time.perf_counter() - start


def peak_memory_mib() -> float:
    """Peak RSS of a separate process that trains stn-conv for one full epoch."""
    code = (
        "import sys; sys.path.insert(0, 'bench');"
        "from common import mnist_arrays, mnist_meta; from stn.training.loop import Trainer;"
        "from stn.params.run import TrainParams; from stn.variant import VariantSpec;"
        "Trainer(VariantSpec(), TrainParams(epochs=1), 0, mnist_meta(), *mnist_arrays('train'),"
        " log=lambda m: None).fit();"
        "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def test_accuracy_after(
    meta: DatasetMeta, images, labels, test, epochs: int, seed: int, reference: bool, root
) -> float:
    torch.manual_seed(seed)
    if reference:
        torch.set_num_threads(CPU_THREADS)
        model = tutorial_model(SPEC)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = tutorial_loader(root)
        for _ in range(epochs):
            model.train()
            for x, y in loader:
                reference_step(model, optimizer, x, y)
    else:
        params = TrainParams(epochs=epochs, threads=CPU_THREADS)
        trainer = Trainer(SPEC, params, seed, meta, images, labels, log=lambda m: None)
        trainer.fit()
        model = trainer.model
    log_probs = predict(model.cpu(), test[0], meta.normalization)
    return float((log_probs.argmax(1) == test[1]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", action="store_true", help="run target 2b instead (long)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="turns of each loop for target 1")
    parser.add_argument("--speed-of", help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args()
    meta = mnist_meta()
    images, labels = mnist_arrays("train")
    root = write_torchvision_root(scratch_dir(), (images, labels))
    if args.speed_of:
        if args.speed_of == "reference":
            print(reference_epoch(root, seed=0))
        else:
            print(fast_epoch(meta, images, labels, int(args.speed_of.split("-")[1]), seed=0))
        return
    print(f"machine: {machine()}", flush=True)

    if args.quality:
        test = mnist_arrays("test")
        acc = {"reference": [], "fast": []}
        for seed in args.seeds:
            for name in acc:
                start = time.perf_counter()
                acc[name].append(
                    test_accuracy_after(
                        meta, images, labels, test, args.epochs, seed, name == "reference", root
                    )
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

    # Target 1. Each measurement runs in a fresh process, so that nothing one loop sets up
    # (threads, the malloc tuning the project's Trainer applies) carries over to the other. A
    # shared VM's speed drifts by 10% and more from minute to minute, so the loops take turns,
    # `rounds` times, and the ratio is taken of the medians.
    speeds: dict[str, list[float]] = {}
    labels_of = {"reference": f"reference loop (DataLoader, 4 workers, {CPU_THREADS} threads)"}
    for threads in sorted({1, CPU_THREADS}):
        labels_of[f"fast-{threads}"] = f"project loop, {threads} thread(s)"
    for round_ in range(1, args.rounds + 1):
        for which, label in labels_of.items():
            speeds.setdefault(label, []).append(speed_in_fresh_process(which))
            print(f"round {round_}: {label}: {speeds[label][-1]:7.0f} images/s", flush=True)
    medians = {label: float(np.median(values)) for label, values in speeds.items()}
    ref = medians[labels_of["reference"]]
    for label, median in medians.items():
        print(f"median {label}: {median:7.0f} images/s = {median / ref:.2f}x reference", flush=True)
    target_2a(root, images, labels)
    test_images, _ = mnist_arrays("test")
    print(f"target 4: evaluation of {len(test_images)} test images: {evaluation_seconds(test_images):.2f} s")
    print(f"target 5: peak memory of one training process: {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
