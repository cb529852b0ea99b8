"""The new STN ideas of the distorted study: what each changes, how stable it trains, which
wins on validation, and what the test set then says against the conventional STN.

An idea is any STN variant of the study other than the baseline; what it is follows from
the fields of its VariantSpec that differ from the baseline's, so a new idea is a params
entry, not code here (a field without a paragraph below is still listed by name).
"""

from __future__ import annotations

import pandas as pd

from stn.analysis.stats import mcnemar_every_seed
from stn.variant import VariantSpec

# Why each change might beat the conventional STN, keyed by the VariantSpec field it sets.
WHY = {
    "transform": {
        "attention": "Translation and isotropic scale only (3 parameters, the STN paper's "
        "attention): it cannot rotate, so on rotated digits it can only crop; fewer ways to go wrong.",
        "similarity": "Rotation, isotropic scale and translation (4 parameters): every pose "
        "change of R and RTS, but no shear or flip, which a digit classifier never needs.",
        "projective": "A homography (8 parameters): the family that generated P, at the risk "
        "of more directions in which the localization net can go astray.",
        "affine": "The full affine family (6 parameters).",
    },
    "iterations": "Inverse-compositional STN (Lin & Lucey 2017): the same localization net "
    "runs {value} times, each step looking at the image warped so far and predicting an update "
    "that is composed with the current transform; the input is resampled once, with the final "
    "transform, so no blur accumulates.",
    "padding": "Pixels read from outside the image take the background value instead of "
    "0, which after normalisation is a grey frame that the classifier can use as a cue and that "
    "rewards zooming out.",
    "loc_lr_scale": "The localization net learns at {value} times the rate of the classifier, "
    "the remedy most often given for STNs whose transform runs away early in training.",
    "identity_penalty": "A loss term (weight {value}) pulls the transform towards the identity, "
    "so that an early, badly trained localization net cannot throw the digit out of view.",
    "identity_penalty_epochs": "The pull fades linearly to zero over the first {value} epochs, "
    "leaving the transform free once the classifier is useful.",
    "layer": {
        "coordconv": "The localization net's convolutions get coordinate channels (CoordConv), "
        "since where the digit is is exactly what it has to output.",
        "conv": "Plain convolutions in the localization net.",
    },
}

COLLAPSE_ACCURACY = 0.2  # chance is 0.1: a run whose validation accuracy falls this low has collapsed


def changes(spec: VariantSpec, baseline: VariantSpec) -> dict[str, object]:
    """The fields of `spec` that differ from the baseline's (what the idea is)."""
    return {k: v for k, v in spec.model_dump().items() if v != getattr(baseline, k)}


def idea_paragraph(name: str, spec: VariantSpec, baseline: VariantSpec) -> str:
    parts = []
    for field, value in changes(spec, baseline).items():
        why = WHY.get(field)
        if isinstance(why, dict):
            why = why.get(value)
        parts.append(why.format(value=value) if why else f"`{field}: {value}`.")
    return (
        f"- **`{name}`** ({', '.join(f'{k}: {v}' for k, v in changes(spec, baseline).items())}): "
        + " ".join(parts)
    )


def stability(histories: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant, over all datasets and seeds: runs, collapsed runs, worst test accuracy.

    Collapsed: validation accuracy at or below COLLAPSE_ACCURACY at some epoch after the first,
    or test accuracy at or below it. (A run whose loss turns non-finite stops with an error and
    leaves no result, so a finished study has no diverged runs to count.)
    """
    keys = ["dataset", "variant", "seed"]
    later = histories[histories["epoch"] > 1]
    if "val_accuracy" in later:
        low_val = later.groupby(keys, sort=False)["val_accuracy"].min() <= COLLAPSE_ACCURACY
    else:
        low_val = pd.Series(False, index=runs.set_index(keys).index)
    test = runs.set_index(keys)["accuracy"]
    collapsed = low_val.reindex(test.index, fill_value=False) | (test <= COLLAPSE_ACCURACY)
    frame = pd.DataFrame({"collapsed": collapsed, "accuracy": test}).reset_index()
    return frame.groupby("variant", sort=False).agg(
        runs=("seed", "size"), collapsed=("collapsed", "sum"), worst_accuracy=("accuracy", "min")
    )


def stability_table(table: pd.DataFrame) -> str:
    lines = [
        "| variant | runs | collapsed | worst test error (%) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for variant, row in table.iterrows():
        worst = 100 * (1 - row["worst_accuracy"])
        lines.append(f"| {variant} | {int(row['runs'])} | {int(row['collapsed'])} | {worst:.2f} |")
    return "\n".join(lines)


def best_on_validation(histories: pd.DataFrame, ideas: list[str], seeds: list[int]) -> str | None:
    """The idea with the highest final validation accuracy, averaged over `seeds` and datasets.

    `seeds` are those every idea ran (the study's): extra seeds, run for the idea chosen
    here, must not take part in choosing it.
    """
    if not ideas or "val_accuracy" not in histories:
        return None
    last = histories[histories["epoch"] == histories["epoch"].max()]
    last = last[last["variant"].isin(ideas) & last["seed"].isin(seeds)]
    if last["val_accuracy"].isna().all():
        return None
    per_dataset = last.groupby(["variant", "dataset"], sort=False)["val_accuracy"].mean()
    return str(per_dataset.groupby(level="variant", sort=False).mean().idxmax())


def _mark(row: pd.Series, alpha: float = 0.05) -> str:
    """H: significant after Holm; M: McNemar p < alpha on every seed, each the way of the mean."""
    if row["paired_t_p_holm"] < alpha:
        return "H"
    return "M" if mcnemar_every_seed(row, alpha) else ""


def ideas_table(comparisons: pd.DataFrame, ideas: list[str], datasets: list[str]) -> str:
    """Error difference to the baseline (pp; negative: the idea errs less) per idea and dataset."""
    lines = ["| idea | " + " | ".join(datasets) + " |", "| --- |" + " ---: |" * len(datasets)]
    for idea in ideas:
        cells = []
        for d in datasets:
            row = comparisons[(comparisons["variant"] == idea) & (comparisons["dataset"] == d)]
            if row.empty:
                cells.append("—")
                continue
            r = row.iloc[0]
            mark = _mark(r)
            cells.append(f"{-100 * r['diff_mean']:+.2f}" + (f" {mark}" if mark else ""))
        lines.append(f"| {idea} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(
    comparisons: pd.DataFrame,
    summary: pd.DataFrame,
    best: str | None,
    baseline: str,
    paper: dict[str, float],
    alpha: float = 0.05,
) -> str:
    """Two sentences: which idea won on validation, and what the test set says about it."""
    if best is None:
        return f"No idea variant ran against `{baseline}` in this study."
    rows = comparisons[comparisons["variant"] == best]
    wins = rows[(rows["paired_t_p_holm"] < alpha) & (rows["diff_mean"] > 0)]["dataset"].tolist()
    losses = rows[(rows["paired_t_p_holm"] < alpha) & (rows["diff_mean"] < 0)]["dataset"].tolist()
    ours = summary[summary["variant"] == best].set_index("dataset")["accuracy_mean"]
    at_paper = [d for d in ours.index if d in paper and 100 * (1 - ours[d]) <= paper[d]]
    lower = (
        f"has a lower test error than the conventional STN (`{baseline}`), significantly after Holm "
        f"correction, on {', '.join(wins)}"
        if wins
        else f"does not lower the test error of the conventional STN (`{baseline}`) significantly "
        "after Holm correction on any dataset"
    )
    higher = f", and a significantly higher one on {', '.join(losses)}" if losses else ""
    first = f"Of the new STN ideas, `{best}` did best on the validation split; it {lower}{higher}."
    second = (
        f"It matches or beats the paper's ST-CNN (affine) error on {', '.join(at_paper)}."
        if at_paper
        else "Within our CPU budget it does not reach the paper's ST-CNN (affine) error on any dataset."
    )
    return f"{first} {second}"
