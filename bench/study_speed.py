"""Target 3: the upright study (every variant x every seed) with fewer epochs, reference vs project.

    python bench/study_speed.py --epochs 2

The reference trains the runs one after another with the tutorial's loop and stock layers
(2 threads, DataLoader with 4 workers). The project trains the same runs two at a time,
one thread each, each worker taking the next run when it is free, longest first (`stn-repro
--workers 2` runs the pipeline's stages side by side too); and, for comparison, one at a time with
2 threads. Every timing includes model set-up; the project's side-by-side total also
includes starting the worker processes and loading the data in each.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from common import machine, mnist_arrays, mnist_meta, scratch_dir
from reference import reference_step, tutorial_loader, tutorial_model, write_torchvision_root

from stn.params.run import TrainParams
from stn.params.study import load_params
from stn.training.loop import Trainer
from stn.variant import VariantSpec


def reference_run(root, spec: VariantSpec, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = tutorial_model(spec)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = tutorial_loader(root)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            reference_step(model, optimizer, x, y)


def project_run(spec: VariantSpec, epochs: int, seed: int, threads: int = 1) -> float:
    meta = mnist_meta()
    images, labels = mnist_arrays("train")
    start = time.perf_counter()
    params = TrainParams(epochs=epochs, threads=threads)
    Trainer(spec, params, seed, meta, images, labels, log=lambda m: None).fit()
    return time.perf_counter() - start


def longest_first(runs: list[tuple[str, VariantSpec, int]]) -> list[tuple[str, VariantSpec, int]]:
    """STN runs before plain-CNN runs (about half as long), so the last runs are short ones."""
    return sorted(runs, key=lambda run: not run[1].stn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    params = load_params()
    study = params.studies.upright  # upright MNIST: the setting the tutorial's loop trains on
    variants = {name: params.variant(name) for name in study.variants}
    runs = [(name, spec, seed) for name, spec in variants.items() for seed in study.seeds]
    images, labels = mnist_arrays("train")
    root = write_torchvision_root(scratch_dir(), (images, labels))

    start = time.perf_counter()
    for name, spec, seed in runs:
        t = time.perf_counter()
        reference_run(root, spec, args.epochs, seed)
        print(f"reference {name:24s} seed {seed} {time.perf_counter() - t:6.1f} s", flush=True)
    reference = time.perf_counter() - start

    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        queue = longest_first(runs)  # the pool hands each free worker the next one
        jobs = [(name, seed, pool.submit(project_run, spec, args.epochs, seed)) for name, spec, seed in queue]
        for name, seed, job in jobs:
            seconds = job.result()
            print(f"project   {name:24s} seed {seed} {seconds:6.1f} s (1 thread, side by side)", flush=True)
    side_by_side = time.perf_counter() - start

    start = time.perf_counter()
    for name, spec, seed in runs:
        seconds = project_run(spec, args.epochs, seed, threads=args.workers)
        mode = f"{args.workers} threads, one at a time"
        print(f"project   {name:24s} seed {seed} {seconds:6.1f} s ({mode})", flush=True)
    one_at_a_time = time.perf_counter() - start

    print(
        f"study with {args.epochs} epochs per run ({len(variants)} variants x "
        f"{len(study.seeds)} seeds): reference {reference:.0f} s"
    )
    for label, seconds in (
        ("1-thread runs side by side", side_by_side),
        ("2-thread runs one at a time", one_at_a_time),
    ):
        ratio = seconds / reference
        print(f"  project, {label}: {seconds:.0f} s = {ratio:.2f} of the reference (target <= 0.33)")


if __name__ == "__main__":
    main()
