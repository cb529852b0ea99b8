"""Pictures of one run: what its STN does to test digits, and its confusion matrix."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import ConfusionMatrixDisplay
from torchvision.utils import make_grid

from stn.analysis.plotting import plt
from stn.datasets.normalization import Normalization
from stn.models.builder import STNClassifier


@torch.inference_mode()
def stn_figure(
    model: STNClassifier, images: np.ndarray, normalization: Normalization, title: str
) -> plt.Figure:
    """A batch of test inputs beside the STN's output, shown in pixel space."""
    model.eval()
    device = next(model.parameters()).device
    x = normalization(images).to(device)
    warped = model.transform(x)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, batch, name in zip(axes, (x, warped), ("input", "transformed"), strict=False):
        grid = make_grid(normalization.invert(batch).cpu(), nrow=int(np.ceil(np.sqrt(len(batch)))), padding=2)
        ax.imshow(grid.permute(1, 2, 0).numpy())
        ax.set_title(name)
        ax.axis("off")
    if model.stn is None:
        title += " (no spatial transformer: output = input)"
    fig.suptitle(title)
    return fig


def confusion_figure(matrix: np.ndarray, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay(matrix, display_labels=range(10)).plot(ax=ax, colorbar=False, values_format="d")
    ax.set_title(title)
    return fig
