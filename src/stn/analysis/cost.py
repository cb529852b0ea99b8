"""What a variant costs: trainable parameters, training seconds per epoch, inference images/s.

Seconds per epoch come from the runs' own training logs (wall time on the machine that
trained them). Inference speed is measured when the report is made, for every variant the
same way: one thread, the whole test split in batches, best of a few repeats, so that a
momentary slowdown of the machine does not count against one variant.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from stn.analysis.evaluate import predict
from stn.datasets.store import load_arrays, read_meta
from stn.layout import RunPaths, dataset_dir
from stn.models.builder import load_model


def inference_rate(model_path: Path, dataset: str, root: Path = Path("."), repeats: int = 3) -> float:
    """Test images per second that the saved model classifies on one CPU thread (best of `repeats`)."""
    meta = read_meta(dataset_dir(dataset, root))
    images, _ = load_arrays(dataset_dir(dataset, root), "test")
    model = load_model(model_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            predict(model, images, meta.normalization)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return len(images) / best


def cost_frame(runs: pd.DataFrame, histories: pd.DataFrame, root: Path = Path(".")) -> pd.DataFrame:
    """One row per (dataset, variant): parameters, median training s/epoch, inference images/s.

    Inference is timed on each variant's first seed: the seeds share the architecture.
    """
    keys = ["dataset", "variant"]
    frame = runs.groupby(keys, sort=False).agg(parameters=("parameters", "first"), seed=("seed", "min"))
    frame["train_s_per_epoch"] = histories.groupby(keys, sort=False)["seconds"].median()
    frame["images_per_s"] = [
        inference_rate(RunPaths(d, v, int(row.seed), root).model, d, root) for (d, v), row in frame.iterrows()
    ]
    return frame.drop(columns="seed")


def cost_table(frame: pd.DataFrame) -> str:
    """Markdown: | dataset | variant | parameters | training s/epoch | inference images/s |."""
    lines = [
        "| dataset | variant | trainable parameters | training s/epoch (median) | inference images/s |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for (d, v), row in frame.iterrows():
        lines.append(
            f"| {d} | {v} | {int(row['parameters']):,} | {row['train_s_per_epoch']:.1f} "
            f"| {row['images_per_s']:,.0f} |"
        )
    return "\n".join(lines)
