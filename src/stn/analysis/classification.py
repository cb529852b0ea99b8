"""Per-class metrics and the original study's per-class accuracy table.

Accuracy alone hides which digits a variant gets wrong; per-class precision, recall and F1
(and their macro average, which weighs each digit equally) show it. The markdown table has
the original study's shape: one row per variant, one column per digit, one decimal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_recall_fscore_support

CLASSES = tuple(range(10))


def per_class_report(
    actual: np.ndarray, predicted: np.ndarray, labels: Iterable[int] = CLASSES
) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (0 where undefined, e.g. never predicted)."""
    labels = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=labels, average=None, zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)},
        index=pd.Index(labels, name="class"),
    )


def macro_f1(actual: np.ndarray, predicted: np.ndarray, labels: Iterable[int] = CLASSES) -> float:
    """Unweighted mean of the per-class F1 scores: every digit counts the same."""
    return float(f1_score(actual, predicted, labels=list(labels), average="macro", zero_division=0))


def format_percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal, rounded half up: 0.9876 -> "98.8%".

    Rounds the decimal number the float prints as (its shortest repr), not its binary value,
    so 0.9805 -> "98.1%" as on paper (f"{0.9805 * 100:.1f}" gives "98.0"). NaN -> "n/a".
    """
    if math.isnan(fraction):
        return "n/a"
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{fraction}: want a fraction in [0, 1], not a percentage")
    percent = (Decimal(repr(float(fraction))) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{percent}%"


def per_class_accuracy_row(
    per_class_accuracy: Mapping[int, float] | pd.Series, name: str | None = None
) -> str:
    """One markdown row, | name | 99.1% | 98.7% | ... |, classes in sorted order.

    ``name`` defaults to the Series' name.
    """
    series = pd.Series(per_class_accuracy, dtype=float).sort_index()
    if name is None:
        name = str(series.name) if series.name is not None else ""
    cells = [name, *(format_percent(v) for v in series.to_numpy())]
    return "| " + " | ".join(cells) + " |"


def per_class_accuracy_table(rows: Mapping[str, Mapping[int, float] | pd.Series]) -> str:
    """Markdown table: header | variant | 0 | ... | 9 |, centred columns, one row per variant."""
    if not rows:
        raise ValueError("no rows")
    classes = None
    lines = []
    for name, accuracy in rows.items():
        series = pd.Series(accuracy, dtype=float).sort_index()
        if classes is None:
            classes = list(series.index)
        elif list(series.index) != classes:
            raise ValueError(f"{name}: classes {list(series.index)} differ from {classes}")
        lines.append(per_class_accuracy_row(series, name))
    header = "| " + " | ".join(["variant", *(str(c) for c in classes)]) + " |"
    align = "|" + "|".join([" :---: "] * (len(classes) + 1)) + "|"
    return "\n".join([header, align, *lines]) + "\n"


def per_class_scores_table(scores: pd.DataFrame) -> str:
    """Markdown: precision, recall and F1 per digit (%, mean over seeds), three rows per variant.

    ``scores`` has one row per (variant, seed, class) with columns precision, recall, f1.
    """
    means = scores.groupby(["variant", "class"], sort=False)[["precision", "recall", "f1"]].mean()
    classes = sorted(scores["class"].unique())
    lines = [
        "| variant | score | " + " | ".join(str(c) for c in classes) + " |",
        "| --- | --- |" + " ---: |" * len(classes),
    ]
    for variant, rows in means.groupby(level="variant", sort=False):
        rows = rows.droplevel("variant")
        for score in ("precision", "recall", "f1"):
            cells = " | ".join(f"{100 * rows.loc[c, score]:.1f}" for c in classes)
            lines.append(f"| {variant} | {score} | {cells} |")
    return "\n".join(lines)
