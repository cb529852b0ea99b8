"""Across runs: mean and spread over seeds, and paired tests against a baseline variant.

Why these statistics: on 10000 test images one binomial standard error at 99% accuracy
is about 0.1 percentage points (10 images), about the size of the differences the
original study reported from single runs. So each variant is summarised over seeds
(mean, standard deviation, 95% t-interval), and each variant is compared with the
baseline on the *same* seeds and the *same* test images: the seed-paired difference
with its t-interval (run-to-run noise) and McNemar's exact test on the images where
exactly one of the two models is right (test-set noise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from stn.analysis.calibration import ece_from_predictions
from stn.analysis.classification import macro_f1, per_class_report
from stn.analysis.significance import format_p, holm, mcnemar_exact, minimum_detectable_difference
from stn.atomic import write_json
from stn.errors import StnError
from stn.run_paths import RunPaths


class OriginalRun(NamedTuple):
    """One of the original study's single 50-epoch runs (its README) and our variant that
    reproduces its configuration as it actually ran."""

    accuracy: float
    loss: float
    variant: str


ORIGINAL_RUNS = {
    "Conv": OriginalRun(0.9921, 0.0296, "stn-conv"),
    # produced by an earlier commit that also used CoordConv in the classifier
    "CoordConv": OriginalRun(0.9908, 0.0312, "stn-coordconv-cls"),
    # CoordConv with nn.LeakyReLU(True): negative slope 1, no nonlinearity in the localization net
    "Leaky ReLU": OriginalRun(0.9913, 0.0293, "stn-coordconv-linear"),
}

# The original study's conclusions, each tested on the comparisons (variant, reference) that
# bear on it: first as the original ran, then as it was meant.
ORIGINAL_CLAIMS = {
    "CoordConv does not improve on Conv": [("stn-coordconv-cls", "stn-conv"), ("stn-coordconv", "stn-conv")],
    "Leaky ReLU does not improve the STN": [
        ("stn-coordconv-linear", "stn-conv"),  # the original's comparison
        ("stn-coordconv-linear", "stn-coordconv"),  # the activation alone, as it ran
        ("stn-coordconv-leakyrelu", "stn-coordconv"),  # the activation alone, as it was meant
    ],
}


def load_runs(runs: list[RunPaths]) -> pd.DataFrame:
    """One row per run: dataset, variant, seed, stage group, test accuracy and NLL, ECE, macro-F1,
    and the device type it was trained on (`trained_on`).

    Raises StnError naming the first run that has not been evaluated, and when the runs were
    trained on more than one device type (one_device).
    """
    rows = []
    for paths in runs:
        if not paths.metrics.is_file():
            raise StnError(f"{paths.metrics}: missing; run dvc repro to evaluate {paths.name}")
        m = json.loads(paths.metrics.read_text())
        predictions = pd.read_csv(paths.predictions)
        actual, predicted = predictions["actual"].to_numpy(), predictions["predicted"].to_numpy()
        rows.append(
            {
                "dataset": paths.dataset,
                "variant": paths.variant,
                "seed": paths.seed,
                "group": paths.group,
                "accuracy": m["accuracy"],
                "loss": m["loss"],
                "parameters": m.get("parameters"),
                "ece": ece_from_predictions(predictions) if "confidence" in predictions else float("nan"),
                "macro_f1": macro_f1(actual, predicted),
                "trained_on": m.get("trained_on", "cpu"),
            }
        )
    frame = pd.DataFrame(rows)
    one_device(frame)
    return frame


def one_device(*frames: pd.DataFrame) -> None:
    """Raises StnError when the runs of `frames` (load_runs or load_histories frames; one
    without a `trained_on` column trained on the CPU) were trained on more than one device
    type: CPU and CUDA round differently, so comparing across them would mix that into the
    seeds' spread."""
    example: dict[str, str] = {}
    for frame in frames:
        devices = frame["trained_on"] if "trained_on" in frame else "cpu"
        for _, row in frame.assign(trained_on=devices).drop_duplicates("trained_on").iterrows():
            example.setdefault(row["trained_on"], f"{row['dataset']}/{row['variant']}-s{row['seed']}")
    if len(example) > 1:
        raise StnError(
            "runs trained on different devices in one comparison ("
            + ", ".join(f"{d}: e.g. {run}" for d, run in sorted(example.items()))
            + "); retrain them on one device (train.device)"
        )


def load_histories(runs: list[RunPaths]) -> pd.DataFrame:
    """Every run's per-epoch training history, one row per (dataset, variant, seed, epoch).

    Raises StnError naming the first run that has not been trained, and when the runs were
    trained on more than one device type (one_device).
    """
    frames = []
    for paths in runs:
        if not paths.history.is_file():
            raise StnError(f"{paths.history}: missing; run dvc repro to train {paths.name}")
        frames.append(
            pd.read_csv(paths.history).assign(dataset=paths.dataset, variant=paths.variant, seed=paths.seed)
        )
    histories = pd.concat(frames, ignore_index=True)
    if "trained_on" in histories:  # only CUDA runs' curves have the column (loop.save_history)
        histories["trained_on"] = histories["trained_on"].fillna("cpu")
    one_device(histories)
    return histories


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided t-interval of the mean; (nan, nan) with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean() - half), float(values.mean() + half)


def summary_json(summary: pd.DataFrame) -> dict:
    """The summary as JSON-ready numbers (null where a statistic needs more seeds)."""
    table = summary.round(6).astype(object).where(summary.notna(), None)
    return table.to_dict(orient="index")


def headline(row: pd.Series) -> dict:
    """The few numbers `dvc metrics show` lists per (dataset, variant): accuracy in %, NLL."""

    def pct(x: float) -> float | None:
        return None if pd.isna(x) else round(100 * float(x), 3)

    return {
        "seeds": int(row["n_seeds"]),
        "acc": pct(row["accuracy_mean"]),
        "sd": pct(row["accuracy_std"]),
        "ci_low": pct(row["ci95_low"]),
        "ci_high": pct(row["ci95_high"]),
        "nll": round(float(row["loss_mean"]), 4),
        "ece": pct(row["ece_mean"]),
        "macro_f1": round(float(row["macro_f1_mean"]), 4),
    }


def write_summary(folder: Path, summary: pd.DataFrame, prefix: str = "") -> None:
    """One small JSON per variant, so `dvc metrics show` is a narrow table with a row each."""
    for variant, row in summary.iterrows():
        write_json(folder / f"{prefix}{variant}.json", headline(row))


def summarize_variants(runs: pd.DataFrame) -> pd.DataFrame:
    rows = {}
    for variant, group in runs.groupby("variant", sort=False):
        low, high = t_interval(group["accuracy"].to_numpy())
        rows[variant] = {
            "n_seeds": len(group),
            "accuracy_mean": group["accuracy"].mean(),
            "accuracy_std": group["accuracy"].std(ddof=1) if len(group) > 1 else float("nan"),
            "ci95_low": low,
            "ci95_high": high,
            "loss_mean": group["loss"].mean(),
            "loss_std": group["loss"].std(ddof=1) if len(group) > 1 else float("nan"),
            "ece_mean": group["ece"].mean(),
            "macro_f1_mean": group["macro_f1"].mean(),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def paired_comparisons(runs: pd.DataFrame, baseline: str, root: Path = Path(".")) -> pd.DataFrame:
    """Each variant against `baseline` on the same dataset, paired by test image and by seed:
    on the seeds both ran (a variant may have more seeds than another)."""
    dataset = runs["dataset"].iloc[0]
    # the stage group of each run: a variant's extra seeds live in another stage's folders
    stage_group = {
        (v, int(s)): g for v, s, g in zip(runs["variant"], runs["seed"], runs["group"], strict=True)
    }
    paths = lambda variant, seed: RunPaths(stage_group[variant, int(seed)], dataset, variant, seed, root)  # noqa: E731
    base = runs[runs["variant"] == baseline].set_index("seed")["accuracy"]
    base_correct: dict[int, np.ndarray] = {}
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        if variant == baseline:
            continue
        accuracy = group.set_index("seed")["accuracy"]
        seeds = [s for s in accuracy.index if s in base.index]
        if not seeds:
            raise StnError(f"{dataset}: {variant} and {baseline} share no seed to pair their runs on")
        diff = accuracy[seeds] - base[seeds]
        low, high = t_interval(diff.to_numpy())
        p_t = (
            float(stats.ttest_rel(accuracy[seeds], base[seeds]).pvalue)
            if len(seeds) > 1 and np.any(diff.to_numpy() != 0)
            else float("nan")
        )
        only_v = only_b = 0
        pvalues, directions = [], []
        for seed in seeds:
            if seed not in base_correct:
                base_correct[seed] = _correct(paths(baseline, seed))
            a, b, p = mcnemar_exact(_correct(paths(variant, seed)), base_correct[seed])
            only_v, only_b = only_v + a, only_b + b
            pvalues.append(p)
            directions.append(int(np.sign(a - b)))  # +1: the variant is right more often
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "baseline": baseline,
                "seeds_paired": len(seeds),
                "diff_mean": float(diff.mean()),
                "diff_ci95_low": low,
                "diff_ci95_high": high,
                "paired_t_p": p_t,
                "only_variant_right": only_v,
                "only_baseline_right": only_b,
                "mcnemar_p_per_seed": pvalues,
                "mcnemar_direction_per_seed": directions,
                # The smallest true difference this many seeds detect with 80% power, given the spread.
                "detectable": (
                    minimum_detectable_difference(float(diff.std(ddof=1)), len(diff))
                    if len(diff) > 1 and diff.std(ddof=1) > 0
                    else float("nan")
                ),
            }
        )
    return with_holm(pd.DataFrame(rows))


def mcnemar_every_seed(row: pd.Series, alpha: float = 0.05) -> bool:
    """McNemar's test significant on every seed, each seed tipping the way the mean difference does."""
    sign = int(np.sign(row["diff_mean"]))
    return sign != 0 and all(
        p < alpha and d == sign
        for p, d in zip(row["mcnemar_p_per_seed"], row["mcnemar_direction_per_seed"], strict=True)
    )


def with_holm(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Add Holm-adjusted paired-t p-values over all the comparisons in the table."""
    out = comparisons.copy()
    out["paired_t_p_holm"] = holm(out["paired_t_p"].to_numpy()) if len(out) else []
    return out


def _correct(paths: RunPaths) -> np.ndarray:
    predictions = pd.read_csv(paths.predictions)
    return (predictions["actual"] == predictions["predicted"]).to_numpy()


def _pct(x: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.{digits}f}"


def results_table(summary: pd.DataFrame) -> str:
    """The markdown results table (also copied into the README)."""
    lines = [
        "| variant | seeds | test accuracy % (mean ± sd) | 95% CI of mean | test NLL (mean ± sd) "
        "| original study (1 run) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, row in summary.iterrows():
        original = next((r for r in ORIGINAL_RUNS.values() if r.variant == variant), None)
        orig = f"{100 * original.accuracy:.2f}% / {original.loss:.4f}" if original else "—"
        lines.append(
            f"| {variant} | {int(row['n_seeds'])} "
            f"| {_pct(row['accuracy_mean'])} ± {_pct(row['accuracy_std'])} "
            f"| {_pct(row['ci95_low'])} – {_pct(row['ci95_high'])} "
            f"| {row['loss_mean']:.4f} ± {row['loss_std']:.4f} | {orig} |"
        )
    return "\n".join(lines)


def comparisons_table(comparisons: pd.DataFrame) -> str:
    lines = [
        "| variant − baseline | accuracy diff (pp, mean over seeds) | 95% CI | paired t p | Holm p "
        "| detectable diff (pp, 80% power) | images only variant right / only baseline right "
        "| McNemar p per seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, row in comparisons.iterrows():
        ps = ", ".join(format_p(p) for p in row["mcnemar_p_per_seed"])
        p_t, p_h = format_p(row["paired_t_p"]), format_p(row["paired_t_p_holm"])
        mdd = "n/a" if np.isnan(row["detectable"]) else f"{100 * row['detectable']:.2f}"
        lines.append(
            f"| {row['variant']} − {row['baseline']} | {100 * row['diff_mean']:+.3f} "
            f"| {100 * row['diff_ci95_low']:+.3f} to {100 * row['diff_ci95_high']:+.3f} | {p_t} | {p_h} "
            f"| {mdd} | {row['only_variant_right']} / {row['only_baseline_right']} | {ps} |"
        )
    return "\n".join(lines)


def per_class_means(runs: list[RunPaths]) -> dict:
    """Per-class test accuracy of each variant, mean over its runs (keys: the digit as a string)."""
    per_run: dict[str, list[dict]] = {}
    for paths in runs:
        per_run.setdefault(paths.variant, []).append(
            json.loads(paths.metrics.read_text())["per_class_accuracy"]
        )
    return {variant: pd.DataFrame(rows).mean().rename(index=int) for variant, rows in per_run.items()}


def per_class_scores(runs: list[RunPaths]) -> pd.DataFrame:
    """Precision, recall, F1 and support per digit for every run: one row per (variant, seed, class)."""
    frames = []
    for paths in runs:
        predictions = pd.read_csv(paths.predictions)
        scores = per_class_report(predictions["actual"].to_numpy(), predictions["predicted"].to_numpy())
        frames.append(scores.reset_index().assign(variant=paths.variant, seed=paths.seed))
    columns = ["variant", "seed", "class", "precision", "recall", "f1", "support"]
    return pd.concat(frames, ignore_index=True)[columns]


def quality_table(summary: pd.DataFrame) -> str:
    """Calibration and per-class balance beside accuracy: ECE (15 bins) and macro-F1, mean over seeds."""
    lines = [
        "| variant | expected calibration error (%) | macro-F1 | test NLL |",
        "| --- | ---: | ---: | ---: |",
    ]
    for variant, row in summary.iterrows():
        lines.append(
            f"| {variant} | {100 * row['ece_mean']:.3f} | {row['macro_f1_mean']:.4f} "
            f"| {row['loss_mean']:.4f} |"
        )
    return "\n".join(lines)


def _place(value: float, seeds: pd.Series) -> str:
    """Where a single number falls among the seeds' values: above, equal to, below how many."""
    counts = {"above": int((seeds < value).sum()), "equal to": int((seeds == value).sum())}
    counts["below"] = len(seeds) - counts["above"] - counts["equal to"]
    if counts["above"] == len(seeds):
        return f"above all {len(seeds)} seeds"
    if counts["below"] == len(seeds):
        return f"below all {len(seeds)} seeds"
    return ", ".join(f"{word} {n}" for word, n in counts.items() if n) + f" of {len(seeds)} seeds"


def original_side_by_side(runs: pd.DataFrame) -> str:
    """Each of the original study's single runs beside the seeds of the variant that reproduces it."""
    lines = [
        "| original run | its accuracy / NLL | our variant | our seeds: accuracy % (mean ± sd; range) "
        "| our NLL (mean ± sd) | where the original falls |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for name, run in ORIGINAL_RUNS.items():
        ours = runs[runs["variant"] == run.variant]
        if ours.empty:
            continue
        acc, loss = ours["accuracy"], ours["loss"]
        place = _place(run.accuracy, acc)
        lines.append(
            f"| {name} | {100 * run.accuracy:.2f}% / {run.loss:.4f} | {run.variant} "
            f"| {_pct(acc.mean())} ± {_pct(acc.std(ddof=1))}; {_pct(acc.min())}–{_pct(acc.max())} "
            f"| {loss.mean():.4f} ± {loss.std(ddof=1):.4f} | {place} |"
        )
    return "\n".join(lines)


def claim_comparisons(runs: pd.DataFrame, root: Path = Path(".")) -> pd.DataFrame:
    """The paired comparisons behind the original study's conclusions (those whose variants
    ran), Holm-corrected over these comparisons; column `claim` says which conclusion."""
    frames = []
    for claim, pairs in ORIGINAL_CLAIMS.items():
        for variant, reference in pairs:
            both = runs[runs["variant"].isin([variant, reference])]
            if both["variant"].nunique() == 2:
                one = paired_comparisons(both, reference, root).assign(claim=claim)
                frames.append(one.drop(columns="paired_t_p_holm"))
    return with_holm(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()


def missing_claim_comparisons(runs: pd.DataFrame) -> list[str]:
    """The comparisons behind the original study's conclusions whose variants did not run."""
    ran = set(runs["variant"])
    return [f"`{v}` − `{r}`" for pairs in ORIGINAL_CLAIMS.values() for v, r in pairs if not {v, r} <= ran]


def claim_verdicts(claims: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence per conclusion of the original study: does it hold on our seeds?"""
    if claims.empty:
        return "The variants that reproduce the original study's configurations are not in this study."
    lines = []
    for claim, rows in claims.groupby("claim", sort=False):
        parts, better = [], []
        for _, row in rows.iterrows():
            seeds_significant = sum(p < alpha for p in row["mcnemar_p_per_seed"])
            parts.append(
                f"`{row['variant']}` − `{row['baseline']}` {100 * row['diff_mean']:+.2f} pp "
                f"(95% CI {100 * row['diff_ci95_low']:+.2f} to {100 * row['diff_ci95_high']:+.2f}, "
                f"Holm p {format_p(row['paired_t_p_holm'], 2)}, McNemar p < {alpha} on "
                f"{seeds_significant} of {len(row['mcnemar_p_per_seed'])} seeds)"
            )
            if row["paired_t_p_holm"] < alpha and row["diff_mean"] > 0:
                better.append(f"`{row['variant']}`")
        verdict = (
            f"does not hold: {', '.join(better)} is significantly better"
            if better
            else "holds: no improvement is distinguishable from noise"
        )
        lines.append(f"- *{claim}* — {verdict}; " + "; ".join(parts) + ".")
    return "\n".join(lines)


def data_note(provenance: dict) -> str:
    """Which MNIST produced the numbers, from the download stage's provenance record."""
    return f"Data: MNIST, {provenance['note']}."
