"""What `dvc plots show` and `dvc exp show` display: a few aggregated views of a study.

The report stages (`compare` for the upright study, `benchmark` for the distorted one) already
hold every run's training history, rotation curve and the summary over seeds as DataFrames; the
functions here turn those frames into small long-format tables, one row per (dataset, variant,
x), that dvc.yaml's top-level `plots` draws with the templates in `.dvc/plots/` (a colour per
variant, a panel per dataset), and into the headline accuracies that dvc.yaml's top-level `metrics`
lists. Pure functions: frames in, frames (or a dict) out; `write_views` writes the CSVs.

Determinism: rows come out in the order the study lists its datasets and variants (the order
of first appearance in the input frames), then by x; numbers are written with a fixed format.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from stn.atomic import write_with

FLOAT_FORMAT = "%.4f"  # percentages to 1e-4 pp: far below any difference worth reading

# The files of one study's views (under plots/views/<study>/), as dvc.yaml's `plots` names them.
VALIDATION = "validation.csv"
ERROR = "error.csv"
ROTATION = "rotation.csv"


def _in_study_order(frame: pd.DataFrame, by: list[str], x: str | None = None) -> pd.DataFrame:
    """Rows sorted by `by` in order of first appearance (the study's order), then by `x`."""
    keys = {c: pd.Categorical(frame[c], categories=list(dict.fromkeys(frame[c]))) for c in by}
    ordered = frame.assign(**{f"_{c}": k for c, k in keys.items()})
    order = [f"_{c}" for c in by] + ([x] if x else [])
    ordered = ordered.sort_values(order, kind="stable").drop(columns=[f"_{c}" for c in by])
    return ordered.reset_index(drop=True)


def validation_curves(histories: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy and error (%) per epoch, mean over seeds, one row per (dataset,
    variant, epoch).

    `histories`: one row per (dataset, variant, seed, epoch) with `val_accuracy` in [0, 1]
    (stats.load_histories). Columns out: dataset, variant, epoch, val_accuracy, val_error,
    seeds. Runs without a validation split (no `val_accuracy`) give no rows.
    """
    columns = ["dataset", "variant", "epoch", "val_accuracy", "val_error", "seeds"]
    if "val_accuracy" not in histories:
        return pd.DataFrame(columns=columns)
    rows = histories.dropna(subset=["val_accuracy"])
    grouped = rows.groupby(["dataset", "variant", "epoch"], sort=False)["val_accuracy"]
    out = grouped.agg(val_accuracy="mean", seeds="count").reset_index()
    out["val_accuracy"] *= 100
    out["val_error"] = 100 - out["val_accuracy"]
    return _in_study_order(out, ["dataset", "variant"], "epoch")[columns]


def error_per_variant(summary: pd.DataFrame) -> pd.DataFrame:
    """Test error (%) per (dataset, variant): mean over seeds with its 95% t-interval.

    `summary`: one row per (dataset, variant) with n_seeds, accuracy_mean, ci95_low, ci95_high
    (benchmark.summarize; for one dataset, stats.summarize_variants indexed by variant, with a
    `dataset` column added). The interval is clipped to 0..100 (a collapsed run makes it span far
    beyond); with one seed it is the mean itself. Columns out: dataset, variant, seeds, error,
    error_low, error_high.
    """
    error = 100 * (1 - summary["accuracy_mean"].to_numpy(dtype=float))
    low = 100 * (1 - summary["ci95_high"].to_numpy(dtype=float))
    high = 100 * (1 - summary["ci95_low"].to_numpy(dtype=float))
    out = pd.DataFrame(
        {
            "dataset": summary["dataset"].to_numpy(),
            "variant": summary["variant"].to_numpy(),
            "seeds": summary["n_seeds"].astype(int).to_numpy(),
            "error": error,
            "error_low": np.clip(np.where(np.isnan(low), error, low), 0, 100),
            "error_high": np.clip(np.where(np.isnan(high), error, high), 0, 100),
        }
    )
    return _in_study_order(out, ["dataset", "variant"])


def rotation_robustness(curves: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) on the rotated upright test set per angle, mean and range over seeds.

    `curves`: one row per (dataset, variant, seed, angle) with `accuracy` in [0, 1]
    (benchmark.load_rotation_curves), `dataset` being the training set. Columns out: dataset,
    variant, angle, accuracy, accuracy_min, accuracy_max, seeds.
    """
    columns = ["dataset", "variant", "angle", "accuracy", "accuracy_min", "accuracy_max", "seeds"]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    grouped = curves.groupby(["dataset", "variant", "angle"], sort=False)["accuracy"]
    out = grouped.agg(accuracy="mean", accuracy_min="min", accuracy_max="max", seeds="count").reset_index()
    out[["accuracy", "accuracy_min", "accuracy_max"]] *= 100
    return _in_study_order(out, ["dataset", "variant"], "angle")[columns]


def accuracy_headline(summary: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Mean test accuracy (%, 3 decimals) per dataset, then per variant, in the study's order.

    Written as one JSON per study (metrics/upright.json, metrics/distorted.json), so that every
    number has a short key of its own, `dataset.variant` (e.g. `rot.stn-conv`): the column name
    `dvc exp show` gives it, with no file path, as no other metrics file has that key.
    """
    out: dict[str, dict[str, float | None]] = {}
    for dataset, variant, accuracy in zip(
        summary["dataset"], summary["variant"], summary["accuracy_mean"], strict=True
    ):
        value = None if pd.isna(accuracy) else round(100 * float(accuracy), 3)
        out.setdefault(str(dataset), {})[str(variant)] = value
    return out


def study_views(
    summary: pd.DataFrame, histories: pd.DataFrame, curves: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """A study's views by file name: validation curves and test error, and the rotation curves
    when given. `summary` as error_per_variant takes it, `histories` and `curves` as
    validation_curves and rotation_robustness take them."""
    views = {VALIDATION: validation_curves(histories), ERROR: error_per_variant(summary)}
    if curves is not None:
        views[ROTATION] = rotation_robustness(curves)
    return views


def write_views(folder: Path, views: Mapping[str, pd.DataFrame]) -> None:
    """Write each view as `folder/name` (CSV, fixed float format), in the given row order."""
    for name, frame in views.items():
        write_with(folder / name, lambda tmp, f=frame: f.to_csv(tmp, index=False, float_format=FLOAT_FORMAT))
