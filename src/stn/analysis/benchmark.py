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
from stn.analysis.ideas import COLLAPSE_ACCURACY
from stn.analysis.palette import LINESTYLES, group_of, variant_colors
from stn.analysis.significance import format_p
from stn.analysis.stats import (
    load_histories,
    load_runs,
    mcnemar_every_seed,
    paired_comparisons,
    summarize_variants,
    with_holm,
)
from stn.params.study import StudySpec
from stn.run_paths import RunPaths

# Jaderberg et al. 2015, Table 1: test error (%) on distorted MNIST, keyed by distortion.
PAPER_TABLE1 = {
    "CNN": {"rot": 1.2, "rts": 0.8, "proj": 1.5, "elastic": 1.4},
    "ST-CNN affine": {"rot": 0.7, "rts": 0.5, "proj": 0.8, "elastic": 1.2},
    "ST-CNN projective": {"rot": 0.8, "rts": 0.6, "proj": 0.8, "elastic": 1.3},
    "ST-CNN TPS": {"rot": 0.7, "rts": 0.5, "proj": 0.8, "elastic": 1.1},
}
PAPER_ITERATIONS, PAPER_BATCH = 150_000, 256  # its training budget


def load_study(name: str, study: StudySpec, root: Path = Path(".")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of the study called `name` (one row per run: test accuracy, loss, ...) and their
    training histories (one row per epoch), every variant with its own seeds (extra seeds included)."""
    runs = [paths for d in study.datasets for v in study.variants for paths in study.runs(name, d, v, root)]
    return load_runs(runs), load_histories(runs)


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


# How each distortion kind reads in a figure title.
KIND_WORDS = {
    "rot": "rotated digits",
    "rts": "rotated, translated and scaled digits",
    "proj": "projectively distorted digits",
    "elastic": "elastically distorted digits",
}


def error_figure(runs: pd.DataFrame, summary: pd.DataFrame, dataset: str, kind: str) -> plt.Figure:
    """Test error (%) per variant on `dataset`, variants top to bottom: every run (dot), the mean
    over seeds with its 95% t-interval (diamond and bar), the paper's CNN and ST-CNN (lines).

    Collapsed runs (test accuracy at or below ideas.COLLAPSE_ACCURACY, the report's threshold) sit
    at chance, far off every other run: they are counted at the right edge instead of setting the
    scale. (A run the report counts for a collapse during training only is drawn at its test error.)
    """
    rows = summary[summary["dataset"] == dataset].reset_index(drop=True)
    # Every dataset's variants, so that a variant has the same colour in all the error figures.
    colors = variant_colors(summary["variant"])
    on = runs[runs["dataset"] == dataset]
    accuracy = {v: on.loc[on["variant"] == v, "accuracy"].to_numpy() for v in rows["variant"]}
    collapsed = {v: a <= COLLAPSE_ACCURACY for v, a in accuracy.items()}
    mean = 100 * (1 - rows["accuracy_mean"].to_numpy())
    # A t-interval over a collapsed run spans far beyond what an error can be: clipped to 0..100.
    low = np.clip(100 * (1 - rows["ci95_high"].to_numpy()), 0, 100)
    high = np.clip(100 * (1 - rows["ci95_low"].to_numpy()), 0, 100)
    paper = {m: e[kind] for m, e in PAPER_TABLE1.items() if kind in e and m in ("CNN", "ST-CNN affine")}

    # The scale fits the runs that did not collapse, the intervals of variants without a collapsed
    # run, and the paper's numbers; a variant with a collapsed run has its interval cut at the edge.
    fitted = [100 * (1 - a[~collapsed[v]]) for v, a in accuracy.items()]
    fitted += [high[i : i + 1] for i, v in enumerate(rows["variant"]) if not collapsed[v].any()]
    fitted.append(np.array(list(paper.values()), dtype=float))
    values = np.concatenate(fitted)
    # A little room beyond the largest value; at least 1% (every run perfect), at most 100%.
    top = min(100.0, max(1.0, 1.08 * float(values.max()))) if values.size else 100.0

    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.34 * len(rows)))
    for (model, error), style in zip(paper.items(), ("--", ":"), strict=False):
        ax.axvline(
            error, linestyle=style, color="black", alpha=0.6, lw=1.1, label=f"paper: {model}", zorder=1
        )
    for i, variant in enumerate(rows["variant"]):
        color, down = colors[variant], collapsed[variant]
        ok = 100 * (1 - accuracy[variant][~down])
        # Dots a little below the bar, so that neither hides the other.
        ax.scatter(ok, np.full(len(ok), i + 0.22), s=18, color=color, alpha=0.8, linewidths=0, zorder=3)
        n_down = int(down.sum())
        if n_down < len(down):  # with every run collapsed there is no interval worth drawing
            ax.plot([low[i], min(high[i], top)], [i, i], color=color, lw=2.2, solid_capstyle="butt", zorder=2)
            for end, cut in ((low[i], low[i] <= 0), (high[i], high[i] >= top)):
                if not cut:  # a cap only where the interval really ends, not where it was cut
                    ax.plot([end, end], [i - 0.14, i + 0.14], color=color, lw=1.2, zorder=2)
            if mean[i] <= top:
                ax.scatter(
                    mean[i], i, marker="D", s=30, color=color, edgecolors="black", linewidths=0.6, zorder=4
                )
        if n_down:
            ax.plot(top, i, marker=">", ms=7, color=color, mec="black", mew=0.6, clip_on=False, zorder=5)
            note = f"{n_down} collapsed"
            if n_down < len(down) and mean[i] > top:
                note += f", mean {mean[i]:.1f}%"
            ax.annotate(
                note,
                (top, i),
                xytext=(8, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                annotation_clip=False,
            )
    ax.set_xlim(0, top)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first variant on top
    ax.set_yticks(range(len(rows)), rows["variant"])
    ax.set_xlabel("test error (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        f"{dataset} ({KIND_WORDS.get(kind, f'{kind} distortion')}): test error per variant\n"
        "dots: one run per seed; diamond and bar: mean with 95% t-interval over seeds\n"
        f"\u25b6 at the edge: runs that collapsed (test accuracy \u2264 {100 * COLLAPSE_ACCURACY:.0f}%), "
        "off the scale",
        fontsize=9,
        loc="left",
    )
    if paper:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(paper), frameon=False)
    return fig


def load_rotation_curves(runs: list[RunPaths]) -> pd.DataFrame:
    """The rotation curves of those runs that have one (one row per (run, angle)); empty if none."""
    frames = [
        pd.read_csv(p.rotation).assign(dataset=p.dataset, variant=p.variant, seed=p.seed)
        for p in runs
        if p.rotation.is_file()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def rotation_figure(curves: pd.DataFrame) -> plt.Figure:
    """Accuracy (%) on the upright test set rotated by 0..180 degrees, one panel per training set:
    mean over seeds (line), min to max over seeds (band); chance (10%) dotted."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    # One colour per variant over all panels, so a variant trained on two sets looks the same.
    colors = variant_colors(curves["variant"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False, sharey=True)
    handles: dict[str, object] = {}
    for ax, d in zip(axes[0], datasets, strict=True):
        ax.axhline(10, color="black", lw=0.8, linestyle=":", zorder=1)
        for v, rows in curves[curves["dataset"] == d].groupby("variant", sort=False):
            by_angle = rows.groupby("angle")["accuracy"]
            mean, low, high = (100 * f() for f in (by_angle.mean, by_angle.min, by_angle.max))
            style = LINESTYLES[group_of(v)]
            (line,) = ax.plot(mean.index, mean, color=colors[v], linestyle=style, lw=1.6, label=v)
            ax.fill_between(mean.index, low, high, color=colors[v], alpha=0.12, linewidth=0)
            handles.setdefault(v, line)
        ax.set(
            xlabel="rotation of the test digits (degrees)", title=f"trained on {d}", xticks=range(0, 181, 30)
        )
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].set_ylim(0, 100)
    # The legend by group (controls, conventional STNs, ideas), in order of appearance within each.
    order = sorted(handles, key=lambda v: ("control", "conventional", "idea").index(group_of(v)))
    chance = plt.Line2D([], [], color="black", lw=0.8, linestyle=":")
    fig.legend(
        [handles[v] for v in order] + [chance],
        order + ["chance (10%)"],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        title="variant",
        title_fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        "Accuracy on the rotated upright MNIST test set: mean over seeds (line), range over seeds (band)"
    )
    fig.tight_layout()
    return fig


def rotation_table(curves: pd.DataFrame, angles=(0, 30, 45, 60, 90, 180)) -> str:
    lines = ["| trained on | variant | " + " | ".join(f"{a}°" for a in angles) + " |"]
    lines.append("| --- | --- |" + " ---: |" * len(angles))
    mean = curves.groupby(["dataset", "variant", "angle"], sort=False)["accuracy"].mean()
    for (d, v), _ in curves.groupby(["dataset", "variant"], sort=False):
        cells = [f"{100 * mean[(d, v, a)]:.1f}" if (d, v, a) in mean else "—" for a in angles]
        lines.append(f"| {d} | {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
