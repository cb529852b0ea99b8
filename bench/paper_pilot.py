"""Pilot timing for Table 1 at the paper's protocol (Jaderberg et al. 2015): what a study would cost.

    python bench/paper_pilot.py                      # 1 and 2 threads, 40 timed steps per model
    python bench/paper_pilot.py --steps 200 --threads 1

For each of the paper's models (stn.models.paper: the CNN, the ST-CNN with an affine, projective
and TPS transformer, and stn-ic-loclr rebuilt on the paper's localisation net) on 28x28 (rot,
proj, elastic) and 42x42 (rts) inputs: training images/s at batch 256 with SGD (momentum 0.9) on
random data, seconds per epoch of each dataset's train split (params.yaml: 60000 minus its
validation images), and the core-hours of a study of 4 datasets x 7 variants x 3 seeds at 10, 20
and 40 epochs. Run from the project root with PYTHONPATH=src. Other jobs on the machine slow it:
the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from stn.models.builder import InputShape, build_model
from stn.params.run import DatasetSpec, MnistParams, TrainParams
from stn.training.loop import train_step
from stn.training.optim import build_optimizer, set_lr
from stn.variant import VariantSpec

ROOT = Path(__file__).resolve().parents[1]
BATCH = 256  # the paper's batch size
PAPER = {"architecture": "paper"}
MODELS = {
    "cnn": VariantSpec(stn=False, **PAPER),
    "st-affine": VariantSpec(transform="affine", **PAPER),
    "st-projective": VariantSpec(transform="projective", **PAPER),
    "st-tps": VariantSpec(transform="tps", **PAPER),
    "stn-ic-loclr": VariantSpec(iterations=2, loc_lr_scale=0.1, **PAPER),
}
DATASETS = {"rot": 28, "rts": 42, "proj": 28, "elastic": 28}  # input side of each distorted set
STUDY_VARIANTS, STUDY_SEEDS, STUDY_EPOCHS = 7, 3, (10, 20, 40)


def train_counts() -> dict[str, int]:
    """Training images of each distorted dataset: MNIST's train split minus its validation images."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    total = MnistParams(**raw.get("mnist", {})).train_count
    return {name: total - DatasetSpec(**raw["datasets"][name]).validation for name in DATASETS}


def images_per_second(spec: VariantSpec, side: int, threads: int, steps: int, warmup: int) -> float:
    """Training throughput of `spec` on random (BATCH, 1, side, side) batches, median of 3 timed thirds."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(spec, InputShape(size=(side, side))).to(memory_format=torch.channels_last).train()
    params = TrainParams(lr=0.01, momentum=0.9, batch_size=BATCH)
    optimizer = build_optimizer(model, params)
    set_lr(optimizer, params, 1)
    x = torch.randn(BATCH, 1, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    for _ in range(warmup):
        train_step(model, optimizer, x, y)
    rates = []
    for part in range(3):
        n = steps // 3 + (1 if part < steps % 3 else 0)
        start = time.perf_counter()
        for _ in range(n):
            train_step(model, optimizer, x, y)
        rates.append(n * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model (in 3 parts)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    counts = train_counts()
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}; torch {torch.__version__}")
    print(f"batch {BATCH}, {args.steps} timed steps after {args.warmup} warm-up; train images: {counts}")
    rates: dict[tuple[str, int, int], float] = {}
    print(f"\n{'model':15s} {'side':>4s} {'threads':>7s} {'images/s':>9s} {'s/epoch (55k)':>14s}")
    for threads in args.threads:
        for side in sorted(set(DATASETS.values())):
            for name, spec in MODELS.items():
                rate = images_per_second(spec, side, threads, args.steps, args.warmup)
                rates[name, side, threads] = rate
                epoch = counts["rot" if side == 28 else "rts"] / rate
                print(f"{name:15s} {side:4d} {threads:7d} {rate:9.0f} {epoch:14.1f}", flush=True)
    print(f"\nload average after: {os.getloadavg()}")
    print(
        f"\nStudy of {len(DATASETS)} datasets x {STUDY_VARIANTS} variants x {STUDY_SEEDS} seeds; a variant "
        f"costs the mean of the {len(MODELS)} models above on its dataset's input size (training only)."
    )
    header = " ".join(f"{f'E={e} core-h':>12s}" for e in STUDY_EPOCHS)
    print(f"{'threads/run':>11s} {header}  wall-h at E={', '.join(map(str, STUDY_EPOCHS))}")
    for threads in args.threads:
        epoch_seconds = sum(
            counts[name] / statistics.mean(rates[m, side, threads] for m in MODELS)
            for name, side in DATASETS.items()
        )  # one epoch of one variant and seed on every dataset
        per_epoch = epoch_seconds * STUDY_VARIANTS * STUDY_SEEDS  # wall seconds of one study epoch
        core_h = [per_epoch * e * threads / 3600 for e in STUDY_EPOCHS]
        wall_h = [per_epoch * e / 3600 for e in STUDY_EPOCHS]
        print(
            f"{threads:11d} "
            + " ".join(f"{c:12.1f}" for c in core_h)
            + "  "
            + ", ".join(f"{w:.1f}" for w in wall_h)
            + " (one run at a time)"
        )


if __name__ == "__main__":
    main()
