"""Calibration: is a classifier's confidence as high as its accuracy?

Expected calibration error (ECE) with 15 equal-width bins, as in Guo et al. 2017 ("On
Calibration of Modern Neural Networks"), so the numbers are comparable with the literature.
Bin convention: the edges are ``np.linspace(0, 1, n_bins + 1)``; bin i holds confidences in
(edge_i, edge_{i+1}], except the first, which is the closed [0, edge_1]. So a confidence of
exactly 0.0 lands in the first bin and exactly 1.0 in the last.

At ~99% accuracy nearly all test images sit in the top bin, so the figure also plots the gap
(accuracy - confidence) per bin in percentage points, which is where the differences show.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

N_BINS = 15  # Guo et al. 2017


def _check(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, dtype=float).ravel()
    correct = np.asarray(correct).ravel()
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence has {confidence.size} entries, correct has {correct.size}")
    if confidence.size == 0:
        raise ValueError("no predictions")
    if not np.all((confidence >= 0) & (confidence <= 1)):  # also rejects NaN
        raise ValueError("confidences must lie in [0, 1]")
    return confidence, correct.astype(bool)


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin of each confidence: (lo, hi] bins, the first closed at 0 (see module docstring)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") gives i with edges[i-1] < c <= edges[i]; c == 0 gives 0
    return np.clip(
        np.searchsorted(edges, np.asarray(confidence, dtype=float), side="left") - 1, 0, n_bins - 1
    )


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per-bin count, mean confidence and accuracy (NaN where a bin is empty)."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    confidence, correct = _check(confidence, correct)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = bin_index(confidence, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct.astype(float), minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": count.astype(int),
            "mean_confidence": np.where(count > 0, mean_conf, np.nan),
            "accuracy": np.where(count > 0, accuracy, np.nan),
        }
    )


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """Sum over bins of (count / N) * |accuracy - mean confidence| (Guo et al. 2017)."""
    bins = reliability_bins(confidence, correct, n_bins)
    filled = bins[bins["count"] > 0]
    weights = filled["count"] / bins["count"].sum()
    return float((weights * (filled["accuracy"] - filled["mean_confidence"]).abs()).sum())


def confidence_and_correct(log_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max softmax probability and whether the argmax is the label.

    The softmax is taken again (stably), so log-softmax outputs and raw logits both work.
    """
    log_probs = np.asarray(log_probs, dtype=float)
    labels = np.asarray(labels)
    if log_probs.ndim != 2 or labels.shape != (log_probs.shape[0],):
        raise ValueError(f"want log_probs (N, C) and labels (N,), got {log_probs.shape} and {labels.shape}")
    confidence = np.exp(log_probs.max(axis=1) - logsumexp(log_probs, axis=1))
    return confidence, log_probs.argmax(axis=1) == labels


def ece_from_predictions(predictions: pd.DataFrame, n_bins: int = N_BINS) -> float:
    """ECE from a per-run predictions table (columns actual, predicted, confidence)."""
    missing = {"actual", "predicted", "confidence"} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions table lacks column(s) {sorted(missing)}; re-run the evaluation")
    correct = predictions["actual"].to_numpy() == predictions["predicted"].to_numpy()
    return expected_calibration_error(predictions["confidence"].to_numpy(), correct, n_bins)


def reliability_figure(bins_by_variant: dict[str, pd.DataFrame], title: str) -> Figure:
    """Reliability diagram (left) and the per-bin gap accuracy - confidence in points (right).

    Marker area grows with the share of predictions in the bin, so the top bin, which holds
    almost everything for an MNIST classifier, stands out; empty bins are not drawn.
    """
    fig, (ax_rel, ax_gap) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    ax_rel.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    ax_gap.axhline(0.0, color="0.6", linestyle="--", linewidth=1)
    low = 1.0
    for name, bins in bins_by_variant.items():
        filled = bins[bins["count"] > 0]
        if filled.empty:
            continue
        share = filled["count"] / filled["count"].sum()
        size = 15 + 250 * np.sqrt(share)
        ece = float((share * (filled["accuracy"] - filled["mean_confidence"]).abs()).sum())
        label = f"{name} (ECE {100 * ece:.2f} pts)"
        (line,) = ax_rel.plot(filled["mean_confidence"], filled["accuracy"], linewidth=1, label=label)
        ax_rel.scatter(
            filled["mean_confidence"], filled["accuracy"], s=size, color=line.get_color(), alpha=0.7
        )
        gap = 100 * (filled["accuracy"] - filled["mean_confidence"])
        ax_gap.plot(filled["mean_confidence"], gap, linewidth=1, color=line.get_color(), label=name)
        ax_gap.scatter(filled["mean_confidence"], gap, s=size, color=line.get_color(), alpha=0.7)
        low = min(low, float(filled["bin_low"].min()))
    ax_rel.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean confidence in bin", ylabel="accuracy in bin")
    ax_rel.set_aspect("equal")
    ax_rel.legend(loc="upper left", fontsize="small")
    ax_rel.set_title("reliability diagram (marker area ~ share of predictions)", fontsize="medium")
    ax_gap.set(xlim=(low, 1.0), xlabel="mean confidence in bin", ylabel="accuracy - confidence (points)")
    ax_gap.set_title("gap per bin (above 0: underconfident)", fontsize="medium")
    ax_gap.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig
