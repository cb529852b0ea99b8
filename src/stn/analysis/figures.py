"""Study-level pictures: variant comparisons across seeds, training curves (no models needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stn.analysis.plotting import plt, save_figure

__all__ = ["accuracy_figure", "curves_figure", "plt", "save_figure"]


def accuracy_figure(
    runs: pd.DataFrame, summary: pd.DataFrame, references: dict[str, tuple[str, float]] | None = None
) -> plt.Figure:
    """Test accuracy of every run (dots) and each variant's mean with its 95% t-interval;
    `references` (variant -> (label, accuracy)) marks single published runs beside them."""
    fig, ax = plt.subplots(figsize=(8, 4))
    order = list(summary.index)
    for variant, (label, accuracy) in (references or {}).items():
        if variant in order:
            i = order.index(variant)
            ax.scatter(i + 0.2, 100 * accuracy, marker="*", s=120, color="C3", zorder=4)
            ax.annotate(
                label,
                (i + 0.2, 100 * accuracy),
                xytext=(6, 0),
                textcoords="offset points",
                fontsize=8,
                color="C3",
                va="center",
            )
    for i, variant in enumerate(order):
        acc = 100 * runs.loc[runs["variant"] == variant, "accuracy"]
        ax.scatter(np.full(len(acc), i), acc, color="grey", zorder=2, s=18)
        row = summary.loc[variant]
        ax.errorbar(
            i,
            100 * row["accuracy_mean"],
            yerr=[
                [100 * (row["accuracy_mean"] - row["ci95_low"])],
                [100 * (row["ci95_high"] - row["accuracy_mean"])],
            ],
            fmt="o",
            color="C0",
            capsize=6,
            zorder=3,
        )
    ax.set_xticks(range(len(order)), order, rotation=20)
    ax.set_ylabel("test accuracy (%)")
    title = "Test accuracy per run (grey) and mean with 95% CI over seeds (blue)"
    ax.set_title(title + ("\noriginal study's single runs (red stars)" if references else ""))
    ax.grid(axis="y", alpha=0.3)
    return fig


def curves_figure(history: pd.DataFrame) -> plt.Figure:
    """Mean training loss and accuracy per epoch for each variant (averaged over seeds)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
    mean = history.groupby(["variant", "epoch"], sort=False)[["loss", "accuracy"]].mean().reset_index()
    for variant, rows in mean.groupby("variant", sort=False):
        ax_loss.plot(rows["epoch"], rows["loss"], label=variant)
        ax_acc.plot(rows["epoch"], 100 * rows["accuracy"], label=variant)
    ax_loss.set(xlabel="epoch", ylabel="training NLL", yscale="log", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="training accuracy (%)", title="Training accuracy")
    ax_acc.legend()
    return fig
