"""Test-set predictions and the metrics computed from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, recall_score

from stn.atomic import write_with
from stn.datasets.normalization import Normalization
from stn.datasets.warp import rotate
from stn.models.builder import STNClassifier

CLASSES = list(range(10))


@torch.inference_mode()
def predict(
    model: STNClassifier, images: np.ndarray, normalization: Normalization, batch_size: int = 1000
) -> np.ndarray:
    """Log-probabilities (N, classes) for uint8 images (N, H, W), in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    x = normalization(images).to(device)
    out = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).float().cpu().numpy()


def rotation_curve(
    model: STNClassifier,
    images: np.ndarray,
    labels: np.ndarray,
    normalization: Normalization,
    step: int = 15,
    batch_size: int = 1000,
) -> pd.DataFrame:
    """Test accuracy as the (upright) test images are rotated by 0, step, ..., 180 degrees."""
    rows = []
    for angle in range(0, 181, step):
        rotated = rotate(images, float(angle)) if angle else images
        predicted = predict(model, rotated, normalization, batch_size).argmax(1)
        rows.append({"angle": angle, "accuracy": float((predicted == labels).mean())})
    return pd.DataFrame(rows)


def predictions_table(log_probs: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per test image, in test-set order: what later statistics need, no retraining."""
    labels = np.asarray(labels, dtype=np.int64)
    return pd.DataFrame(
        {
            "actual": labels,
            "predicted": log_probs.argmax(1),
            "nll": -log_probs[np.arange(len(labels)), labels],
            "confidence": np.exp(log_probs.max(1)),  # the top class's probability, for calibration
        }
    )


def summarize(predictions: pd.DataFrame) -> dict:
    """Accuracy, error, mean NLL, per-class accuracy, with the binomial uncertainty of accuracy."""
    actual, predicted = predictions["actual"].to_numpy(), predictions["predicted"].to_numpy()
    n = len(actual)
    n_correct = int((actual == predicted).sum())
    ci = binomtest(n_correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    per_class = recall_score(actual, predicted, labels=CLASSES, average=None, zero_division=0)
    accuracy = n_correct / n
    return {
        "accuracy": accuracy,
        "error_rate": 1 - accuracy,
        "loss": float(predictions["nll"].mean()),
        "n_correct": n_correct,
        "n": n,
        # Test-set sampling uncertainty of this one run (Wilson 95% interval, binomial s.e.).
        "accuracy_ci95": [float(ci.low), float(ci.high)],
        "accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / n)),
        "per_class_accuracy": {str(c): float(a) for c, a in zip(CLASSES, per_class, strict=False)},
    }


def confusion(predictions: pd.DataFrame) -> np.ndarray:
    return confusion_matrix(predictions["actual"], predictions["predicted"], labels=CLASSES)


def save_predictions(predictions: pd.DataFrame, path: Path) -> None:
    write_with(path, lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6g"))


def load_predictions(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)
