"""The distorted-MNIST benchmark: every (dataset, variant) over seeds, against the paper.

Each variant is compared with the conventional STN (`compare.baseline`) on the same
dataset, paired by seed (same seed, same test images): the accuracy difference with its
t-interval, a paired t-test Holm-corrected over every comparison in the table, and
McNemar's exact test per seed on the test images where exactly one model is right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stn.analysis.figures import plt
from stn.analysis.significance import format_p
from stn.analysis.stats import (
    load_histories,
    load_runs,
    mcnemar_every_seed,
    paired_comparisons,
    summarize_variants,
    with_holm,
)
from stn.layout import RunPaths
from stn.params import StudySpec

# Jaderberg et al. 2015, Table 1: test error (%) on distorted MNIST, keyed by distortion.
PAPER_TABLE1 = {
    "CNN": {"rot": 1.2, "rts": 0.8, "proj": 1.5, "elastic": 1.4},
    "ST-CNN affine": {"rot": 0.7, "rts": 0.5, "proj": 0.8, "elastic": 1.2},
    "ST-CNN projective": {"rot": 0.8, "rts": 0.6, "proj": 0.8, "elastic": 1.3},
    "ST-CNN TPS": {"rot": 0.7, "rts": 0.5, "proj": 0.8, "elastic": 1.1},
}
PAPER_ITERATIONS, PAPER_BATCH = 150_000, 256  # its training budget


def load_study(study: StudySpec, root: Path = Path(".")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's runs (one row per run: test accuracy, loss, ...) and their training
    histories (one row per epoch), every variant with its own seeds (extra seeds included)."""
    pairs = [(d, v) for d in study.datasets for v in study.variants]
    runs = [load_runs(d, [v], study.seeds_for(v), root) for d, v in pairs]
    histories = [load_histories([d], [v], study.seeds_for(v), root) for d, v in pairs]
    return pd.concat(runs, ignore_index=True), pd.concat(histories, ignore_index=True)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, variant): the summary over seeds, as summarize_variants gives it."""
    parts = []
    for dataset, group in runs.groupby("dataset", sort=False):
        parts.append(summarize_variants(group).assign(dataset=dataset))
    return pd.concat(parts).rename_axis("variant").reset_index()


def compare_all(runs: pd.DataFrame, baseline: str, root: Path = Path(".")) -> pd.DataFrame:
    """Every variant against the baseline on every dataset; Holm over the whole table."""
    tables = [paired_comparisons(group, baseline, root) for _, group in runs.groupby("dataset", sort=False)]
    return with_holm(pd.concat(tables, ignore_index=True).drop(columns="paired_t_p_holm"))


def verdict(row: pd.Series, alpha: float = 0.05) -> str:
    """How `baseline` fares against `variant`, in words, from the error difference."""
    better = -row["diff_mean"]  # accuracy(baseline) - accuracy(variant), in [0, 1]
    # McNemar on every seed, with the discordant images tipping the same way as the mean.
    every_seed = mcnemar_every_seed(row, alpha)
    word = "lower" if better > 0 else "higher"
    strength = (
        "significant after Holm correction"
        if row["paired_t_p_holm"] < alpha
        else "significant in McNemar's test on every seed, not in the Holm-corrected seed-paired test"
        if every_seed
        else "not distinguishable from noise"
    )
    ci = f"{100 * -row['diff_ci95_high']:+.2f} to {100 * -row['diff_ci95_low']:+.2f} pp"
    n = int(row["seeds_paired"])
    pairs = f"{n} seed{'s' if n != 1 else ''} paired"
    return f"{word} error by {100 * abs(better):.2f} pp ({pairs}; 95% CI of the gain {ci}): {strength}"


def error_table(summary: pd.DataFrame, datasets: list[str], kinds: dict[str, str]) -> str:
    """Test error % (mean ± sd over seeds, 95% CI) per variant (rows) and dataset (columns)."""
    head = "| variant | seeds | " + " | ".join(datasets) + " |"
    lines = [head, "| --- | ---: |" + " ---: |" * len(datasets)]
    for variant in dict.fromkeys(summary["variant"]):
        counts = summary[summary["variant"] == variant]["n_seeds"].unique()
        cells = ["/".join(str(int(n)) for n in counts)]  # one number: every dataset has as many
        for d in datasets:
            row = summary[(summary["variant"] == variant) & (summary["dataset"] == d)].iloc[0]
            err, sd = 100 * (1 - row["accuracy_mean"]), 100 * row["accuracy_std"]
            low, high = 100 * (1 - row["ci95_high"]), 100 * (1 - row["ci95_low"])
            cells.append(f"{err:.2f} ± {sd:.2f} ({low:.2f}–{high:.2f})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    for model, errors in PAPER_TABLE1.items():
        cells = [f"{errors[kinds[d]]:.1f}" if kinds.get(d) in errors else "—" for d in datasets]
        lines.append(f"| *paper: {model}* | — | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons_table(comparisons: pd.DataFrame) -> str:
    lines = [
        "| dataset | variant − baseline | seeds | error diff (pp) | 95% CI | paired t p | Holm p "
        "| only variant right / only baseline right | McNemar p per seed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, r in comparisons.iterrows():
        ps = ", ".join(format_p(p, 2) for p in r["mcnemar_p_per_seed"])
        p_t, p_h = format_p(r["paired_t_p"]), format_p(r["paired_t_p_holm"])
        lines.append(
            f"| {r['dataset']} | {r['variant']} − {r['baseline']} | {r['seeds_paired']} "
            f"| {-100 * r['diff_mean']:+.2f} "
            f"| {-100 * r['diff_ci95_high']:+.2f} to {-100 * r['diff_ci95_low']:+.2f} | {p_t} | {p_h} "
            f"| {r['only_variant_right']} / {r['only_baseline_right']} | {ps} |"
        )
    return "\n".join(lines)


def error_figure(runs: pd.DataFrame, summary: pd.DataFrame, dataset: str, kind: str) -> plt.Figure:
    """Test error per variant on one dataset: runs (dots), mean with 95% CI, the paper's numbers."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    for i, row in rows.iterrows():
        err = 100 * (1 - runs[(runs["dataset"] == dataset) & (runs["variant"] == row["variant"])]["accuracy"])
        ax.scatter(np.full(len(err), i), err, color="grey", s=16, zorder=2)
        mean = 100 * (1 - row["accuracy_mean"])
        low, high = 100 * (1 - row["ci95_high"]), 100 * (1 - row["ci95_low"])
        ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], fmt="o", color="C0", capsize=6, zorder=3)
    for (model, errors), style in zip(PAPER_TABLE1.items(), ("--", ":", "-.", (0, (1, 3))), strict=True):
        if kind in errors and model in ("CNN", "ST-CNN affine"):
            ax.axhline(errors[kind], linestyle=style, color="C3", alpha=0.7, label=f"paper {model}")
    ax.set_xticks(range(len(rows)), rows["variant"], rotation=15)
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{dataset}: test error per run (grey), mean with 95% CI over seeds (blue)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def load_rotation_curves(datasets: list[str], variants: dict[str, list[str]], seeds: dict[str, list[int]]):
    frames = []
    for d in datasets:
        for v in variants[d]:
            for s in seeds[d]:
                path = RunPaths(d, v, s).rotation
                if path.is_file():
                    frames.append(pd.read_csv(path).assign(dataset=d, variant=v, seed=s))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def rotation_figure(curves: pd.DataFrame) -> plt.Figure:
    """Accuracy on the upright test set rotated by 0..180 degrees: mean over seeds, min-max band."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False, sharey=True)
    for ax, d in zip(axes[0], datasets, strict=True):
        for v, rows in curves[curves["dataset"] == d].groupby("variant", sort=False):
            by_angle = rows.groupby("angle")["accuracy"]
            mean, low, high = (100 * f() for f in (by_angle.mean, by_angle.min, by_angle.max))
            ax.plot(mean.index, mean, label=v)
            ax.fill_between(mean.index, low, high, alpha=0.2)
        ax.set(
            xlabel="rotation of the test digits (degrees)", title=f"trained on {d}", xticks=range(0, 181, 30)
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("test accuracy (%)")
    return fig


def rotation_table(curves: pd.DataFrame, angles=(0, 30, 45, 60, 90, 180)) -> str:
    lines = ["| trained on | variant | " + " | ".join(f"{a}°" for a in angles) + " |"]
    lines.append("| --- | --- |" + " ---: |" * len(angles))
    mean = curves.groupby(["dataset", "variant", "angle"], sort=False)["accuracy"].mean()
    for (d, v), _ in curves.groupby(["dataset", "variant"], sort=False):
        cells = [f"{100 * mean[(d, v, a)]:.1f}" if (d, v, a) in mean else "—" for a in angles]
        lines.append(f"| {d} | {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
