"""Table 1 of the STN paper at its protocol (studies.table1) and the budget curve (studies.budget).

Both studies run the paper's models (stn.models.paper) with named recipes. Table 1 uses one
recipe for every dataset, chosen on the validation split (reports/recipe-search.md); the
budget curve trains some of its variants with the same recipe for fewer epochs, so that test
error can be read against the training budget beside the paper's numbers. Comparisons are
seed-paired with the study's baseline (the ST-CNN, affine) as in the benchmark
(stn.analysis.benchmark), Holm-corrected over the whole table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stn.analysis.benchmark import PAPER_BATCH, PAPER_ITERATIONS, PAPER_TABLE1, summarize
from stn.analysis.figures import plt
from stn.analysis.palette import variant_colors
from stn.analysis.significance import format_p
from stn.analysis.stats import load_histories, load_runs
from stn.params.study import RecipeStudySpec
from stn.run_paths import RunPaths

# Our variants that are the paper's Table 1 rows.
PAPER_ROWS = {
    "paper-cnn": "CNN",
    "paper-st-affine": "ST-CNN affine",
    "paper-st-projective": "ST-CNN projective",
    "paper-st-tps": "ST-CNN TPS",
}
# Verdicts of the tutorial-budget benchmark (variant vs its stn-conv baseline) and the variant
# that re-tests each at the paper's protocol (vs the ST-CNN affine).
RECHECKS = {
    "stn-ic-loclr": "paper-st-ic-loclr",
    "stn-loclr": "paper-st-loclr",
    "stn-coordconv": "paper-st-coordconv",
    "stn-projective": "paper-st-projective",
    "cnn": "paper-cnn",
    "cnn-aug": "paper-cnn-aug",
}
ALPHA = 0.05


def recipe_study_runs(
    name: str, study: RecipeStudySpec, recipe: str, root: Path = Path(".")
) -> list[RunPaths]:
    """Every run of the study with `recipe`: datasets, then variants in the study's order."""
    return [p for d in study.datasets for v in study.variants for p in study.runs(name, d, v, recipe, root)]


def load_recipe_study(
    name: str, study: RecipeStudySpec, recipe: str, root: Path = Path(".")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, histories) of the study with `recipe`, as benchmark.load_study gives them."""
    paths = recipe_study_runs(name, study, recipe, root)
    return load_runs(paths), load_histories(paths)


def paper_share(epochs: int, train_images: int) -> float:
    """The share of the paper's training images (150k iterations of batch 256) that `epochs`
    epochs of `train_images` images are."""
    return epochs * train_images / (PAPER_ITERATIONS * PAPER_BATCH)


def reached(summary: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """For each of our paper rows and dataset: our mean test error (%) with its 95% t-interval,
    the paper's, `reached` (our mean, rounded to 0.1 as the paper's numbers are, is at or below
    it) and `interval`: "below", "above" or "overlaps" (where the paper's number lies against
    our interval). Rows only where both exist."""
    columns = ["model", "dataset", "ours", "ours_low", "ours_high", "paper", "reached", "interval"]
    rows = []
    for _, r in summary.iterrows():
        model = PAPER_ROWS.get(r["variant"])
        kind = kinds.get(r["dataset"])
        if model is None or kind not in PAPER_TABLE1[model]:
            continue
        ours, paper = 100 * (1 - r["accuracy_mean"]), PAPER_TABLE1[model][kind]
        low, high = 100 * (1 - r["ci95_high"]), 100 * (1 - r["ci95_low"])
        interval = "below" if high < paper else "above" if low > paper else "overlaps"
        rows.append(
            {
                "model": model,
                "dataset": r["dataset"],
                "ours": ours,
                "ours_low": low,
                "ours_high": high,
                "paper": paper,
                "reached": round(ours, 1) <= paper,
                "interval": interval,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def short_verdict(row: pd.Series) -> str:
    """A comparison in a table cell: error difference (variant - baseline, pp), Holm p, word."""
    diff = -100 * row["diff_mean"]
    significant = row["paired_t_p_holm"] < ALPHA
    word = ("lower" if diff < 0 else "higher") + " error" if significant else "no clear difference"
    return f"{diff:+.2f} pp, Holm p {format_p(row['paired_t_p_holm'])}: {word}"


def recheck_table(tutorial: pd.DataFrame, paper: pd.DataFrame, datasets: list[str]) -> str:
    """The tutorial-budget verdicts (each variant vs stn-conv) beside the paper-protocol ones
    (its counterpart vs the ST-CNN affine), one row per (pair, dataset) present in both."""
    lines = [
        "| tutorial variant (vs `stn-conv`) | paper-protocol variant (vs ST-CNN affine) | dataset "
        "| tutorial budget | paper protocol |",
        "| --- | --- | --- | --- | --- |",
    ]

    def row(frame: pd.DataFrame, variant: str, dataset: str) -> pd.DataFrame:
        if frame.empty:  # a study of the baseline alone compares nothing (and has no columns)
            return frame
        return frame[(frame["variant"] == variant) & (frame["dataset"] == dataset)]

    for old, new in RECHECKS.items():
        for d in datasets:
            a, b = row(tutorial, old, d), row(paper, new, d)
            if len(a) and len(b):
                lines.append(
                    f"| `{old}` | `{new}` | {d} | {short_verdict(a.iloc[0])} | {short_verdict(b.iloc[0])} |"
                )
    return "\n".join(lines)


def budget_frame(by_epochs: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Test error (%) per (epochs, dataset, variant): mean over seeds and its 95% t-interval.
    `by_epochs`: the runs (load_runs) trained for each number of epochs."""
    parts = []
    for epochs, runs in sorted(by_epochs.items()):
        s = summarize(runs)
        parts.append(
            pd.DataFrame(
                {
                    "epochs": epochs,
                    "dataset": s["dataset"],
                    "variant": s["variant"],
                    "error": 100 * (1 - s["accuracy_mean"]),
                    "error_low": 100 * (1 - s["ci95_high"]),
                    "error_high": 100 * (1 - s["ci95_low"]),
                    "seeds": s["n_seeds"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def budget_figure(frame: pd.DataFrame, kinds: dict[str, str]) -> plt.Figure:
    """Test error against training epochs (both log scale), a panel per dataset, a line per
    variant with its 95% t-interval; the paper's CNN and ST-CNN affine as horizontal lines."""
    datasets = list(dict.fromkeys(frame["dataset"]))
    colors = variant_colors(frame["variant"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        on = frame[frame["dataset"] == dataset]
        for variant, rows in on.groupby("variant", sort=False):
            rows = rows.sort_values("epochs")
            ax.plot(rows["epochs"], rows["error"], marker="o", color=colors[variant], label=variant)
            ax.fill_between(
                rows["epochs"],
                np.clip(rows["error_low"], 1e-3, None),
                rows["error_high"],
                color=colors[variant],
                alpha=0.15,
            )
        for model, style in (("CNN", "--"), ("ST-CNN affine", ":")):
            error = PAPER_TABLE1[model].get(kinds.get(dataset, ""))
            if error is not None:
                ax.axhline(error, linestyle=style, color="black", alpha=0.6, label=f"paper: {model}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted(on["epochs"].unique()), [str(e) for e in sorted(on["epochs"].unique())])
        ax.minorticks_off()
        ax.set_xlabel("training epochs")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{dataset}: test error vs budget (mean over seeds, 95% CI)", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ranking_table(frame: pd.DataFrame) -> str:
    """Per dataset and budget, the variants from lowest to highest mean test error."""
    lines = ["| dataset | epochs | ranking (lowest test error first) |", "| --- | ---: | --- |"]
    for dataset in dict.fromkeys(frame["dataset"]):
        on = frame[frame["dataset"] == dataset]
        for epochs in sorted(on["epochs"].unique()):
            rows = on[on["epochs"] == epochs].sort_values("error", kind="stable")
            order = " < ".join(f"`{v}` {e:.2f}%" for v, e in zip(rows["variant"], rows["error"], strict=True))
            lines.append(f"| {dataset} | {epochs} | {order} |")
    return "\n".join(lines)


def ranking_changes(frame: pd.DataFrame) -> list[str]:
    """The datasets on which the order of the mean test errors of the variants present at every
    budget differs between budgets (whether beyond seed noise or not)."""
    changed = []
    for dataset in dict.fromkeys(frame["dataset"]):
        on = frame[frame["dataset"] == dataset]
        budgets = on["epochs"].unique()
        counts = on.groupby("variant")["epochs"].nunique()
        on = on[on["variant"].isin(counts[counts == len(budgets)].index)]
        orders = {
            tuple(on[on["epochs"] == e].sort_values("error", kind="stable")["variant"]) for e in budgets
        }
        if len(orders) > 1:
            changed.append(dataset)
    return changed


def still_falling(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, variant): mean test error (%) at the two largest budgets, and whether it
    falls between them at all (`falls`) or `clearly` (the two 95% t-intervals do not overlap: a
    conservative test, as the runs of two budgets are not paired)."""
    rows = []
    for (dataset, variant), on in frame.groupby(["dataset", "variant"], sort=False):
        on = on.sort_values("epochs")
        if len(on) < 2:
            continue
        before, last = on.iloc[-2], on.iloc[-1]
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "from_epochs": int(before["epochs"]),
                "to_epochs": int(last["epochs"]),
                "from_error": before["error"],
                "to_error": last["error"],
                "falls": last["error"] < before["error"],
                "clearly": last["error_high"] < before["error_low"],
            }
        )
    return pd.DataFrame(rows)


def fit_gap(histories: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, variant), in the summary's order: the mean over seeds of the training error
    in each run's last epoch (`train_error`, %, on the batches as they were trained) and the mean
    test error (`test_error`, %). A training error near zero with a test error far above it says
    the model fits its (fixed) training images and more epochs of the same images add little."""
    last = histories.loc[histories.groupby(["dataset", "variant", "seed"])["epoch"].idxmax()]
    train = 100 * (1 - last.groupby(["dataset", "variant"])["accuracy"].mean())
    rows = []
    for _, r in summary.iterrows():
        key = (r["dataset"], r["variant"])
        if key in train.index:
            rows.append(
                {
                    "dataset": key[0],
                    "variant": key[1],
                    "train_error": float(train[key]),
                    "test_error": 100 * (1 - r["accuracy_mean"]),
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "variant", "train_error", "test_error"])


def fit_gap_table(frame: pd.DataFrame, datasets: list[str], marked: frozenset[str] = frozenset()) -> str:
    """fit_gap as markdown: variants (rows, those in `marked` with a *) x datasets, each cell
    `train % / test %`."""
    lines = ["| variant | " + " | ".join(datasets) + " |", "| --- |" + " ---: |" * len(datasets)]
    for variant in dict.fromkeys(frame["variant"]):
        cells = []
        for d in datasets:
            row = frame[(frame["variant"] == variant) & (frame["dataset"] == d)]
            r = None if row.empty else row.iloc[0]
            cells.append("—" if r is None else f"{r['train_error']:.2f} / {r['test_error']:.2f}")
        lines.append(f"| {variant}{' *' if variant in marked else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
