"""What a variant costs: trainable parameters and floating-point operations per image.

Both are functions of the architecture and the dataset's image size alone (the image size read
off the dataset's params, so the report needs no data files), so a report that
shows them is the same on every rerun and every machine. Measured speed depends on the
machine and the moment: `bench/inference_speed.py` measures it (bench/README.md).

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode`, which counts convolutions and
matrix products only (a multiply-add is 2 FLOPs); grid sampling, pooling, activations and the
loss are left out. CoordConv convolves its coordinate channels once per batch, not once per
image, so a count on one batch divided by its size would depend on the batch size; the count
here is the marginal cost of one more image (two batch sizes, the difference), which leaves
that per-batch work out.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from stn.datasets.distortions.base import MNIST_SIZE
from stn.models.builder import InputShape, STNClassifier, build_model
from stn.params.run import DatasetSpec
from stn.variant import VariantSpec

MNIST_CLASSES = 10

# What the Cost sections of the reports say above the table.
COST_INTRO = """Trainable parameters and floating-point operations per image, counted on each variant's model
for the dataset's image size: training is one forward and backward pass (the optimizer step
not included), inference one forward pass. Only convolutions and matrix products are counted
(a multiply-add is 2 FLOPs; grid sampling, pooling and activations are left out), and work
done once per batch (CoordConv's coordinate channels) is left out too, so the numbers depend
on the architecture alone. Measured speed depends on the machine: images/s of the trained
models are in `bench/README.md` (`python bench/inference_speed.py`)."""

# Two small batches: the difference of their counts is the cost of `_STEP` more images.
_BATCH, _STEP = 2, 2


def _flops(model: STNClassifier, shape: InputShape, batch: int, training: bool) -> int:
    """FLOPs of one pass over `batch` blank images: forward + backward of the training loss
    (first epoch's, as the optimizer sees it; the step itself not counted), or one forward pass."""
    x = torch.zeros(batch, 1, *shape.size)
    y = torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        if training:
            model.train()
            loss, _ = model.training_loss(x, y, epoch=1)
            loss.backward()
        else:
            model.eval()
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def flops_per_image(spec: VariantSpec, shape: InputShape) -> tuple[float, float]:
    """(training, inference) FLOPs per image of the model that `spec` builds for `shape`."""
    # The counts do not depend on the weights; fork the RNG so that building and running the
    # model (initialisation, dropout) leaves the caller's random state as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(spec, shape)
        counts = []
        for training in (True, False):
            small, large = (_flops(model, shape, b, training) for b in (_BATCH, _BATCH + _STEP))
            counts.append((large - small) / _STEP)
    return counts[0], counts[1]


def input_shape_of(dataset: DatasetSpec) -> InputShape:
    """The model input a dataset's params imply: MNIST's 28x28 digits (10 classes), resized as
    its distortion says (RTS: a 42x42 canvas). The background value is left at 0: it changes
    no FLOP count."""
    size = (MNIST_SIZE, MNIST_SIZE)
    if dataset.distortion is not None:
        size = dataset.distortion.output_size(*size)
    return InputShape(size=tuple(size), classes=MNIST_CLASSES)


def cost_frame(
    runs: pd.DataFrame, specs: Mapping[str, VariantSpec], shapes: Mapping[str, InputShape]
) -> pd.DataFrame:
    """One row per (dataset, variant) of `runs`: trainable parameters (from the runs' metrics),
    training and inference FLOPs per image (counted on the model built from `specs[variant]` for
    `shapes[dataset]`, e.g. from `input_shape_of`).

    Raises KeyError for a variant missing from `specs` or a dataset missing from `shapes`.
    """
    keys = ["dataset", "variant"]
    frame = runs.groupby(keys, sort=False).agg(parameters=("parameters", "first"))
    counts = [flops_per_image(specs[v], shapes[d]) for d, v in frame.index]
    frame["train_flops"] = [train for train, _ in counts]
    frame["inference_flops"] = [inference for _, inference in counts]
    return frame


def cost_table(frame: pd.DataFrame) -> str:
    """Markdown, one row per (dataset, variant): parameters, training and inference MFLOPs per image."""
    lines = [
        "| dataset | variant | trainable parameters | training MFLOPs/image (forward + backward) "
        "| inference MFLOPs/image |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for (d, v), row in frame.iterrows():
        lines.append(
            f"| {d} | {v} | {int(row['parameters']):,} | {row['train_flops'] / 1e6:.2f} "
            f"| {row['inference_flops'] / 1e6:.2f} |"
        )
    return "\n".join(lines)
