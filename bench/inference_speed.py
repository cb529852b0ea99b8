"""Inference speed of the trained models: test images per second per (dataset, variant).

    python bench/inference_speed.py                       # every dataset and variant of params.yaml
    python bench/inference_speed.py --datasets mnist rot  # a few datasets (a few minutes)

Every model is timed the same way: one pass over its dataset's whole test split (data/DATASET)
in batches of 1000 under `torch.inference_mode`, on the CPU with one thread unless --threads
says otherwise; best of --repeats rounds, each round timing every model once (the first warms
up). The model is the lowest seed's in models/DATASET/VARIANT-sSEED.pt: the seeds share the
architecture. A dataset that is not prepared, or a variant without a model, is skipped with a
message. The reports do not show these numbers (they depend on the machine and on what else it
runs); they show FLOPs per image instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from common import machine

from stn.analysis.evaluate import predict
from stn.datasets.normalization import Normalization
from stn.datasets.store import META, load_arrays, read_meta
from stn.layout import dataset_dir
from stn.models.builder import STNClassifier, load_model
from stn.params.study import StudyParams, load_params
from stn.run_paths import RunPaths


def pass_seconds(model: STNClassifier, images: np.ndarray, normalization: Normalization) -> float:
    """Seconds of one pass of `model` over uint8 `images` (N, H, W), batches of 1000."""
    start = time.perf_counter()
    with torch.inference_mode():
        predict(model, images, normalization)
    return time.perf_counter() - start


def runs_by_dataset(params: StudyParams) -> dict[str, tuple[list[str], Callable[[str], list[RunPaths]]]]:
    """dataset -> (variants, the runs of a variant) of the study that runs it, in params.yaml's order."""
    runs: dict[str, tuple[list[str], Callable[[str], list[RunPaths]]]] = {}
    for name, study in (("upright", params.studies.upright), ("distorted", params.studies.distorted)):
        for dataset in study.datasets:
            runs.setdefault(dataset, (list(study.variants), partial(study.runs, name, dataset)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", help="default: every dataset of the studies")
    parser.add_argument("--variants", nargs="+", help="default: every variant of the dataset's study")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all models")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    torch.set_num_threads(args.threads)
    runs = runs_by_dataset(load_params())
    models: dict[tuple[str, str], tuple[int, STNClassifier]] = {}  # (dataset, variant) -> (seed, model)
    tests: dict[str, tuple[np.ndarray, Normalization]] = {}
    for dataset in args.datasets or list(runs):
        if dataset not in runs:
            print(f"{dataset}: not a dataset of the studies in params.yaml; skipped", flush=True)
            continue
        if not (dataset_dir(dataset) / META).is_file():
            print(f"{dataset}: {dataset_dir(dataset)} is not prepared (dvc repro prepare@{dataset}); skipped")
            continue
        variants, runs_of = runs[dataset]
        for variant in args.variants or variants:
            paths = [p for p in runs_of(variant) if p.model.is_file()]
            if not paths:
                print(f"{dataset:8s} {variant:24s} no model in models/; skipped", flush=True)
                continue
            models[dataset, variant] = (paths[0].seed, load_model(paths[0].model))
            if dataset not in tests:
                meta = read_meta(dataset_dir(dataset))
                tests[dataset] = (load_arrays(dataset_dir(dataset), "test")[0], meta.normalization)
    # Rounds over all models, best per model: a slow spell of the machine then costs every
    # model one round instead of all of one model's passes.
    best = dict.fromkeys(models, float("inf"))
    for _ in range(args.repeats):
        for (dataset, variant), (_, model) in models.items():
            best[dataset, variant] = min(best[dataset, variant], pass_seconds(model, *tests[dataset]))
    for (dataset, variant), (seed, _) in models.items():
        count = len(tests[dataset][0])
        print(
            f"{dataset:8s} {variant:24s} s{seed} {count / best[dataset, variant]:9,.0f} images/s "
            f"({count} test images, {args.threads} CPU thread(s), best of {args.repeats} rounds)"
        )


if __name__ == "__main__":
    main()
