"""Target 3: a reduced study (every variant, one seed, a few epochs), reference vs project.

    python bench/study_speed.py --epochs 2

The reference trains the runs one after another with the tutorial's loop (2 threads,
DataLoader with 4 workers). The project trains the same runs two at a time, one thread
each, as `scripts/repro_side_by_side.py` runs the pipeline. Both include model set-up.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from common import machine, mnist_arrays, scratch_dir

from stn.model import build_model
from stn.params import TrainParams, load_params
from stn.reference import reference_step, tutorial_loader, write_torchvision_root
from stn.train import Trainer
from stn.variant import VariantSpec


def reference_run(root, spec: VariantSpec, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = build_model(spec)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = tutorial_loader(root)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            reference_step(model, optimizer, x, y)


def project_run(spec: VariantSpec, epochs: int, seed: int, threads: int = 1) -> float:
    images, labels = mnist_arrays("train")
    start = time.perf_counter()
    Trainer(spec, TrainParams(epochs=epochs, threads=threads), seed, images, labels, log=lambda m: None).fit()
    return time.perf_counter() - start


def longest_first(variants: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
    """STN runs (CoordConv the slowest) before the plain CNN, so the last run is a short one."""
    cost = lambda spec: (spec.stn, spec.layer == "coordconv")  # noqa: E731
    return dict(sorted(variants.items(), key=lambda item: cost(item[1]), reverse=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    variants = load_params().variants
    images, labels = mnist_arrays("train")
    root = write_torchvision_root(scratch_dir(), (images, labels))

    start = time.perf_counter()
    for name, spec in variants.items():
        t = time.perf_counter()
        reference_run(root, spec, args.epochs, seed=0)
        print(f"reference {name:24s} {time.perf_counter() - t:6.1f} s", flush=True)
    reference = time.perf_counter() - start

    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        queue = longest_first(variants)
        jobs = {name: pool.submit(project_run, spec, args.epochs, 0) for name, spec in queue.items()}
        for name, job in jobs.items():
            print(f"project   {name:24s} {job.result():6.1f} s (1 thread, side by side)", flush=True)
    side_by_side = time.perf_counter() - start

    start = time.perf_counter()
    for name, spec in variants.items():
        seconds = project_run(spec, args.epochs, 0, threads=args.workers)
        print(f"project   {name:24s} {seconds:6.1f} s ({args.workers} threads, one at a time)", flush=True)
    one_at_a_time = time.perf_counter() - start

    print(
        f"reduced study ({len(variants)} variants x 1 seed x {args.epochs} epochs): "
        f"reference {reference:.0f} s"
    )
    for label, seconds in (
        ("1-thread runs side by side", side_by_side),
        ("multi-thread runs one at a time", one_at_a_time),
    ):
        print(
            f"  project, {label}: {seconds:.0f} s = "
            f"{seconds / reference:.2f} of the reference (target <= 0.33)"
        )


if __name__ == "__main__":
    main()
